//! A filter built with a second SDK, AssemblyScript's `@solo-io/proxy-runtime`
//! (`tests/filters/as-features`, built by `scripts/build-filters.sh`), through
//! the real proxy: headers, a local reply, HTTP callouts (from an HTTP context,
//! delivered to the root context, resuming its own stream; and from the root
//! context on a tick), ticks, shared data with CAS, a metric, logs and
//! property reads.
//!
//! The SDK looks the context id of `proxy_on_http_call_response` up as a root
//! context: a host that delivered it to the HTTP context would make every
//! callout trap.

use std::net::SocketAddr;
use std::sync::Arc;

use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Resp, Route, Upstream, Wasp,
    filter_module, free_addr,
};

/// wasp running as-features on every route to `app`, with a `callout`
/// cluster and a `nowhere` cluster nothing listens on.
struct AsFeatures {
    wasp: Wasp,
    listen: SocketAddr,
    app: Upstream,
    callout: Upstream,
    client: Client,
}

impl AsFeatures {
    /// `configuration` is the filter's space-separated `key=value` settings.
    async fn start(configuration: &str) -> AsFeatures {
        let listen = free_addr();
        let app = Upstream::start("app").await;
        let callout = Upstream::start("callout").await;
        let plugin = Plugin::new("as-features", filter_module("as_features"))
            .set("root_id", "as_features")
            .configuration(configuration);
        let config = Config::new()
            .filter_chain(FilterChain::new("as").plugin(plugin))
            .listener(
                Listener::new("main", listen)
                    .route(Route::prefix("/").filter_chain("as").cluster("app")),
            )
            .cluster(Cluster::new("app").endpoint(app.addr))
            .cluster(Cluster::new("callout").endpoint(callout.addr))
            .cluster(
                Cluster::new("nowhere")
                    .endpoint(free_addr())
                    .connect_timeout("1s"),
            );
        let wasp = Wasp::start(&config).await;
        AsFeatures {
            wasp,
            listen,
            app,
            callout,
            client: Client::http1(),
        }
    }

    /// GET `path` with `headers`; fails the test when no answer comes in time.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let request = http::Request::get(format!("http://{}{path}", self.listen));
        self.client.answer(request, headers, Vec::new()).await
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

    /// No VM of the filter failed (a trap would have answered 503 and
    /// been logged).
    fn assert_no_trap(&self) {
        let log = self.wasp.log();
        assert!(!log.contains("filter VM failed"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_filter_changes_request_and_response_headers() {
    let features = AsFeatures::start("").await;
    let resp = features
        .get(
            "/headers",
            &[
                ("x-test", "headers"),
                ("x-as-in", "echoed"),
                ("x-as-remove", "gone"),
            ],
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-as-filter"), Some("response"));
    assert_eq!(resp.header("x-as-echo"), Some("echoed"));
    let echo = resp.json();
    assert_eq!(echo["headers"]["x-as-filter"], "request", "{echo}");
    assert!(echo["headers"].get("x-as-remove").is_none(), "{echo}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_filter_local_reply_answers_without_the_upstream() {
    let features = AsFeatures::start("").await;
    let resp = features.get("/teapot", &[("x-test", "local-reply")]).await;
    assert_eq!(resp.status, 418);
    assert_eq!(resp.header("x-local-reply"), Some("yes"));
    assert_eq!(resp.text(), "short and stout");
    assert_eq!(features.app.hits(), 0);
}

/// The callout's response arrives on the root context; the SDK switches to
/// the stream (`proxy_set_effective_context`), which changes its request
/// headers and continues: the upstream sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_filter_callout_from_a_stream_is_delivered_to_the_root_and_resumes_the_stream() {
    let features = AsFeatures::start("callout_cluster=callout").await;
    for n in 1..=3 {
        let resp = features
            .get(
                "/with-callout",
                &[("x-test", "callout"), ("x-callout-path", "/looked-up")],
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("x-callout-status"), Some("200"));
        let body_bytes: usize = resp
            .header("x-callout-body-bytes")
            .unwrap()
            .parse()
            .unwrap();
        assert!(body_bytes > 0, "the callout's body was read");
        assert_eq!(resp.header("x-upstream"), Some("app"));
        assert_eq!(resp.json()["headers"]["x-as-callout-status"], "200");
        assert_eq!(features.callout.hits(), n);
        assert_eq!(features.app.hits(), n);
    }
    features.assert_no_trap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_filter_failed_callout_answers_its_local_reply() {
    let features = AsFeatures::start("callout_cluster=nowhere").await;
    let resp = features.get("/x", &[("x-test", "callout")]).await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.text(), "callout failed");
    assert_eq!(features.app.hits(), 0);
    features.assert_no_trap();
}

/// Ticks run on the root context, which calls out on them; the answers
/// reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_filter_root_context_ticks_and_calls_out_on_them() {
    let features =
        AsFeatures::start("callout_cluster=callout tick_ms=20 tick_callout_path=/from-a-tick")
            .await;
    features
        .eventually(&[("x-test", "ticks")], "ticks", |resp| {
            resp.header("x-ticks")
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|t| t >= 3)
        })
        .await;
    features
        .eventually(&[("x-test", "tick-callout")], "a tick callout", |resp| {
            resp.header("x-tick-callout") == Some("200")
        })
        .await;
    assert!(features.callout.hits() >= 1);
    features.assert_no_trap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_filter_shared_counter_loses_no_update_under_concurrency() {
    let features = Arc::new(AsFeatures::start("").await);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let features = Arc::clone(&features);
        tasks.push(tokio::spawn(async move {
            let resp = features.get("/count", &[("x-test", "shared-data")]).await;
            assert_eq!(resp.status, 200, "{}", resp.text());
            resp.header("x-shared-hits")
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_filter_metric_is_exported_on_the_admin_server() {
    let features = AsFeatures::start("").await;
    for n in 1..=3 {
        let resp = features.get("/m", &[("x-test", "metrics")]).await;
        assert_eq!(
            resp.header("x-metric-requests"),
            Some(n.to_string().as_str())
        );
    }
    let metrics = features.wasp.metrics().await;
    assert_eq!(
        metrics.sum("as_features_requests_total", &[]),
        3.0,
        "{}",
        metrics.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_filter_reads_properties_and_logs() {
    let features = AsFeatures::start("").await;
    let resp = features
        .get("/props?q=1", &[("x-test", "properties,log")])
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-prop-path"), Some("/props?q=1"));
    assert_eq!(resp.header("x-prop-method"), Some("GET"));
    assert_eq!(resp.header("x-prop-root-id"), Some("as_features"));
    let log = features.wasp.log();
    assert!(log.contains("as-features: /props?q=1"), "{log}");
    assert!(
        log.contains("as-features configured"),
        "the root context's log at configure: {log}"
    );
}
