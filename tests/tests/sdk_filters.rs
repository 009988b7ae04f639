//! Filters built with the SDK, through the real proxy: the filter template
//! (a configured response header, its configuration errors, a reload that
//! changes it) and `tests/filters/sdk-features`, which exercises every SDK
//! feature (HTTP and gRPC callouts, from a stream and from the root context
//! on a tick, timers, ticks, shared data with CAS,
//! shared queues, metrics, properties, local replies, body rewrites, logs,
//! panics). The modules come from `scripts/build-filters.sh`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Request;
use serde_json::json;
use wasp_e2e::chunked::{CHUNKS, ECHO_BODY};
use wasp_e2e::{
    ChunkedEcho, Client, Cluster, Config, FilterChain, GrpcHealth, Listener, Plugin, Resp, Route,
    Upstream, Wasp, filter_module, free_addr,
};

/// The filter template adding `header: value` to responses on every route.
fn template_config(listen: SocketAddr, upstream: SocketAddr, header: &str, value: &str) -> Config {
    let plugin = Plugin::new("add-header", filter_module("wasp_filter_template"))
        .configuration(json!({ "header": header, "value": value }));
    Config::new()
        .filter_chain(FilterChain::new("template").plugin(plugin))
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/").filter_chain("template").cluster("app")),
        )
        .cluster(Cluster::new("app").endpoint(upstream))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_filter_adds_its_configured_header_and_follows_a_reload() {
    let listen = free_addr();
    let upstream = Upstream::start("app").await;
    let wasp = Wasp::start(template_config(
        listen,
        upstream.addr,
        "x-served-by",
        "wasp",
    ))
    .await;
    let client = Client::http1();
    let url = format!("http://{listen}/hello");

    let resp = client.get(&url).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-served-by"), Some("wasp"));
    assert_eq!(resp.header("x-upstream"), Some("app"));

    let version = wasp.version().await;
    wasp.write_config(template_config(
        listen,
        upstream.addr,
        "x-served-by",
        "reloaded",
    ));
    wasp.sighup();
    wasp.wait_version(version + 1, Duration::from_secs(20))
        .await;
    let resp = client.get(&url).await.unwrap();
    assert_eq!(resp.header("x-served-by"), Some("reloaded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_filter_rejects_a_bad_header_name_and_keeps_the_running_config() {
    let listen = free_addr();
    let upstream = Upstream::start("app").await;
    let wasp = Wasp::start(template_config(
        listen,
        upstream.addr,
        "x-served-by",
        "good",
    ))
    .await;
    let version = wasp.version().await;

    let bad = template_config(listen, upstream.addr, "bad name", "x");
    wasp.write_config(&bad);
    wasp.sighup();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let dump = wasp.config_dump().await;
        let error = dump["last_reload_error"].as_str().unwrap_or_default();
        if !error.is_empty() {
            assert!(error.contains("add-header"), "{error}");
            break;
        }
        assert!(Instant::now() < deadline, "reload was not rejected: {dump}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(wasp.version().await, version);
    assert!(wasp.log().contains("not a valid header name"));
    let resp = Client::http1()
        .get(&format!("http://{listen}/"))
        .await
        .unwrap();
    assert_eq!(resp.header("x-served-by"), Some("good"));
}

/// wasp running sdk-features on every route, with the clusters it calls.
struct Features {
    wasp: Wasp,
    listen: SocketAddr,
    app: Upstream,
    callout: Upstream,
    _grpc: GrpcHealth,
    client: Client,
}

impl Features {
    /// `app` (the route's cluster) is `upstream` when given, else an echo
    /// [`Upstream`]; `callout_cluster` names the cluster for HTTP callouts.
    async fn start(callout_cluster: &str, app: Option<SocketAddr>) -> Features {
        Features::start_with(callout_cluster, app, json!({})).await
    }

    /// [`Features::start`] with more settings in the plugin configuration.
    async fn start_with(
        callout_cluster: &str,
        app: Option<SocketAddr>,
        settings: serde_json::Value,
    ) -> Features {
        let listen = free_addr();
        let echo = Upstream::start("app").await;
        let callout = Upstream::start("callout").await;
        let grpc = GrpcHealth::start().await;
        let nowhere = free_addr();
        let mut configuration =
            json!({ "callout_cluster": callout_cluster, "grpc_cluster": "grpc", "tick_ms": 20 });
        for (key, value) in settings.as_object().into_iter().flatten() {
            configuration[key] = value.clone();
        }
        let plugin =
            Plugin::new("features", filter_module("sdk_features")).configuration(configuration);
        let config = Config::new()
            .filter_chain(FilterChain::new("features").plugin(plugin))
            .listener(
                Listener::new("main", listen)
                    .route(Route::prefix("/").filter_chain("features").cluster("app")),
            )
            .cluster(Cluster::new("app").endpoint(app.unwrap_or(echo.addr)))
            .cluster(Cluster::new("callout").endpoint(callout.addr))
            .cluster(
                Cluster::new("nowhere")
                    .endpoint(nowhere)
                    .connect_timeout("1s"),
            )
            .cluster(Cluster::new("grpc").endpoint(grpc.addr).http2());
        let wasp = Wasp::start(&config).await;
        Features {
            wasp,
            listen,
            app: echo,
            callout,
            _grpc: grpc,
            client: Client::http1(),
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Request::get(self.url(path)), headers, Vec::new())
            .await
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
        self.send(Request::post(self.url(path)), headers, body)
            .await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    /// Sends the request through wasp; fails the test when no answer comes
    /// in time.
    async fn send(
        &self,
        request: http::request::Builder,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        self.client.answer(request, headers, body).await
    }

    /// Repeats a GET of `/eventually` with `headers` until `done` holds of
    /// its answer (5 s).
    async fn eventually(
        &self,
        headers: &[(&str, &str)],
        what: &str,
        done: impl Fn(&Resp) -> bool,
    ) -> Resp {
        let url = format!("http://{}/eventually", self.listen);
        self.client.get_until(&url, headers, what, done).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_http_callout_pauses_the_request_until_the_answer() {
    let features = Features::start("callout", None).await;
    let resp = features
        .get(
            "/with-callout",
            &[("x-test", "callout"), ("x-callout-path", "/looked-up")],
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-callout-status"), Some("200"));
    assert_eq!(resp.header("x-upstream"), Some("app"));
    assert_eq!(features.callout.hits(), 1);
    assert_eq!(features.app.hits(), 1);
}

/// The root context calls out on its ticks; the answers reach it (the SDK
/// maps the token to the root filter's callback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_root_context_calls_out_on_ticks() {
    let settings = json!({ "tick_callout_path": "/from-a-tick" });
    let features = Features::start_with("callout", None, settings).await;
    features
        .eventually(&[("x-test", "tick-callout")], "a tick callout", |resp| {
            resp.header("x-tick-callout") == Some("200")
        })
        .await;
    assert!(features.callout.hits() >= 1);
    let log = features.wasp.log();
    assert!(!log.contains("filter VM failed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_failed_callout_answers_its_local_reply() {
    let features = Features::start("nowhere", None).await;
    let resp = features.get("/x", &[("x-test", "callout")]).await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.text(), "callout failed");
    assert_eq!(features.app.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_grpc_callout_reaches_a_grpc_server() {
    let features = Features::start("callout", None).await;
    // grpc.health.v1.HealthCheckRequest { service: "" }: field 1, empty string.
    let resp = features
        .post(
            "/grpc",
            &[
                ("x-test", "grpc"),
                ("x-grpc-service", "grpc.health.v1.Health"),
                ("x-grpc-method", "Check"),
            ],
            vec![0x0a, 0x00],
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-grpc-status"), Some("0"));
    // HealthCheckResponse { status: SERVING }: 0x08 0x01.
    assert_eq!(resp.header("x-grpc-message-bytes"), Some("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_timer_resumes_the_request_after_its_delay() {
    let features = Features::start("callout", None).await;
    let started = Instant::now();
    let resp = features
        .get("/timer", &[("x-test", "timer"), ("x-delay-ms", "150")])
        .await;
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-timer-fired"), Some("yes"));
    assert!(
        took >= Duration::from_millis(150),
        "answered after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_root_ticks_run_on_their_period() {
    let features = Features::start("callout", None).await;
    features
        .eventually(&[("x-test", "ticks")], "ticks", |resp| {
            resp.header("x-ticks")
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|t| t >= 3)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_shared_counter_loses_no_update_under_concurrency() {
    let features = std::sync::Arc::new(Features::start("callout", None).await);
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let features = std::sync::Arc::clone(&features);
        tasks.push(tokio::spawn(async move {
            let resp = features.get("/hits", &[("x-test", "shared-data")]).await;
            assert_eq!(resp.status, 200, "{}", resp.text());
            resp.header("x-shared-hits")
                .and_then(|h| h.parse::<u64>().ok())
                .expect("x-shared-hits")
        }));
    }
    let mut hits = Vec::new();
    for task in tasks {
        hits.push(task.await.unwrap());
    }
    hits.sort_unstable();
    assert_eq!(hits, (1..=40).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_queue_message_reaches_the_root_context() {
    let features = Features::start("callout", None).await;
    features
        .eventually(
            &[("x-test", "queue"), ("x-message", "hello queue")],
            "queued message",
            |resp| resp.header("x-queue-last") == Some("hello queue"),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_metrics_are_exported_on_the_admin_server() {
    let features = Features::start("callout", None).await;
    for n in 1..=3 {
        let resp = features.get("/m", &[("x-test", "metrics")]).await;
        assert_eq!(
            resp.header("x-metric-requests"),
            Some(n.to_string().as_str())
        );
    }
    let metrics = features.wasp.metrics().await;
    assert_eq!(
        metrics.sum("sdk_features_requests_total", &[]),
        3.0,
        "{}",
        metrics.text
    );
    assert_eq!(metrics.sum("sdk_features_active", &[]), 0.0);
    // Exported under the filter's own names, as Envoy does.
    assert!(metrics.has("sdk_features_active"), "{}", metrics.text);
    assert!(
        !metrics.text.contains("wasp_filter_metric_"),
        "{}",
        metrics.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_reads_request_and_plugin_properties() {
    let features = Features::start("callout", None).await;
    let resp = features
        .get("/props?q=1", &[("x-test", "properties")])
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-prop-path"), Some("/props?q=1"));
    assert_eq!(resp.header("x-prop-plugin"), Some("features"));
    // No client certificate on a plain listener: no principal.
    assert_eq!(resp.header("x-prop-principal"), Some(""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_local_reply_answers_without_the_upstream() {
    let features = Features::start("callout", None).await;
    let resp = features.get("/teapot", &[("x-test", "local-reply")]).await;
    assert_eq!(resp.status, 418);
    assert_eq!(resp.header("x-local-reply"), Some("yes"));
    assert_eq!(resp.text(), "short and stout");
    assert_eq!(features.app.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_rewrites_both_bodies() {
    let upstream = ChunkedEcho::start().await;
    let features = Features::start("callout", Some(upstream.addr)).await;
    let resp = features
        .post(
            "/loud",
            &[("x-test", "body-rewrite")],
            b"make me loud".to_vec(),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header(ECHO_BODY), Some("MAKE ME LOUD"));
    assert_eq!(resp.text(), format!("{} [rewritten]", CHUNKS.concat()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_filter_logs_and_panics_reach_the_proxy_log() {
    let features = Features::start("callout", None).await;
    let resp = features.get("/logged", &[("x-test", "log")]).await;
    assert_eq!(resp.status, 200);
    let resp = features.get("/boom", &[("x-test", "panic")]).await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(resp.text().contains("features"), "{}", resp.text());
    let log = features.wasp.log();
    assert!(log.contains("sdk-features: /logged"), "{log}");
    assert!(log.contains("sdk-features asked to panic"), "{log}");
    // The crashed VM is replaced after its restart back-off (until then
    // requests that land on it get the failure policy): then every request
    // is served again, whichever VM it lands on.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut statuses = Vec::new();
        for _ in 0..10 {
            statuses.push(features.get("/after", &[]).await.status);
        }
        if statuses.iter().all(|s| *s == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "requests after the panic: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
