//! The shipped `mirror` filter through the real binary: every request (body
//! included) reaches the shadow with the `-shadow` authority; a shadow that
//! hangs or fails changes neither the client's status nor its latency;
//! percentages; bodies over the limit go headers-only. The module comes
//! from `scripts/build-filters.sh`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Request;
use serde_json::{Value, json};
use wasp_e2e::client::full;
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Mode, Plugin, Route, Upstream, Wasp,
    filter_module, free_addr,
};

/// A filter chain `name` mirroring to `cluster` with more `settings`.
fn chain(name: &str, cluster: &str, settings: Value) -> FilterChain {
    let mut configuration = json!({ "cluster": cluster });
    for (key, value) in settings.as_object().into_iter().flatten() {
        configuration[key] = value.clone();
    }
    let plugin =
        Plugin::new(name, filter_module("wasp_filter_mirror")).configuration(configuration);
    FilterChain::new(name).plugin(plugin)
}

async fn post(client: &Client, url: &str, body: Vec<u8>) -> (u16, Duration) {
    let started = Instant::now();
    let request = Request::post(url).body(full(body)).unwrap();
    let resp = client.request(request).await.expect("request");
    (resp.status, started.elapsed())
}

/// Waits until `upstream` has received `n` requests (10 s).
async fn wait_hits(upstream: &Upstream, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.hits() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} copies arrived",
            upstream.hits()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// wasp sending every request to `app` through the mirror chain `name`
/// (copies to `shadow`, more `settings`).
fn single_route(
    listen: SocketAddr,
    name: &str,
    settings: Value,
    app: &Upstream,
    shadow: &Upstream,
) -> Config {
    Config::new()
        .filter_chain(chain(name, "shadow", settings))
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/").filter_chain(name).cluster("app")),
        )
        .cluster(Cluster::new("app").endpoint(app.addr))
        .cluster(Cluster::new("shadow").endpoint(shadow.addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_reaches_the_shadow_with_its_body_and_shadow_authority() {
    let listen = free_addr();
    let app = Upstream::start("app").await;
    let shadow = Upstream::start("shadow").await;
    let config = single_route(listen, "shadowing", json!({}), &app, &shadow);
    let wasp = Wasp::start(config).await;
    let client = Client::http1();
    for i in 0..40 {
        let body = format!("order number {i}").into_bytes();
        let (status, _) = post(&client, &format!("http://{listen}/orders/{i}?x=1"), body).await;
        assert_eq!(status, 200);
    }
    let mut copies = shadow.wait_requests(40).await;
    assert_eq!(app.hits(), 40);
    copies.sort_by_key(|c| c["body"].as_str().map(str::to_owned));
    for copy in &copies {
        let i: u32 = copy["path"].as_str().unwrap()["/orders/".len()..]
            .parse()
            .unwrap();
        assert_eq!(copy["method"], "POST");
        assert_eq!(copy["query"], "x=1");
        assert_eq!(copy["body"], format!("order number {i}"), "{copy}");
        assert_eq!(
            copy["host"],
            format!("127.0.0.1-shadow:{}", listen.port()),
            "{copy}"
        );
    }
    let metrics = wasp.metrics().await;
    assert_eq!(metrics.sum("mirror_shadowing_mirrored", &[]), 40.0);
    assert_eq!(metrics.sum("mirror_shadowing_failed", &[]), 0.0);
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    latencies[latencies.len() * 99 / 100 - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_or_failing_shadow_changes_neither_status_nor_latency() {
    let listen = free_addr();
    // The app takes 50 ms, so latency differences are measurable.
    let app = Upstream::start_with("app", Mode::Delay(Duration::from_millis(50))).await;
    let hanging = Upstream::start_with("hanging", Mode::Hang).await;
    let failing = Upstream::start_with("failing", Mode::Status(500)).await;
    let config = Config::new()
        .filter_chain(chain("to-hanging", "hanging", json!({ "timeout": "1s" })))
        .filter_chain(chain("to-failing", "failing", json!({})))
        .listener(
            Listener::new("main", listen)
                .route(
                    Route::prefix("/hang")
                        .filter_chain("to-hanging")
                        .cluster("app"),
                )
                .route(
                    Route::prefix("/fail")
                        .filter_chain("to-failing")
                        .cluster("app"),
                )
                .route(Route::prefix("/plain").cluster("app")),
        )
        .cluster(Cluster::new("app").endpoint(app.addr))
        .cluster(Cluster::new("hanging").endpoint(hanging.addr))
        .cluster(Cluster::new("failing").endpoint(failing.addr));
    let wasp = Wasp::start(config).await;
    let client = Client::http1();
    let mut latencies = [Vec::new(), Vec::new(), Vec::new()];
    // Interleaved, so load on the machine hits the three alike.
    for _ in 0..300 {
        for (i, route) in ["plain", "hang", "fail"].iter().enumerate() {
            let (status, latency) = post(
                &client,
                &format!("http://{listen}/{route}"),
                b"data".to_vec(),
            )
            .await;
            assert_eq!(status, 200, "/{route}");
            latencies[i].push(latency);
        }
    }
    let [plain, hang, fail] = latencies.map(p99);
    eprintln!("p99: no mirror {plain:?}, hanging shadow {hang:?}, failing shadow {fail:?}");
    for (route, p99) in [("hang", hang), ("fail", fail)] {
        assert!(
            p99 <= plain + plain / 10,
            "p99 /{route} {p99:?} vs {plain:?} without a mirror"
        );
    }
    assert_eq!(hanging.hits(), 300);
    wait_hits(&failing, 300).await;
    // The hanging copies time out after 1 s; all copies count as failed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = wasp.metrics().await;
    assert_eq!(metrics.sum("mirror_to_failing_failed", &[]), 300.0);
    assert_eq!(metrics.sum("mirror_to_hanging_failed", &[]), 300.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_at_25_percent_copies_a_quarter_of_the_requests() {
    let listen = free_addr();
    let app = Upstream::start("app").await;
    let shadow = Upstream::start("shadow").await;
    let settings = json!({ "percentage": { "value": 25 } });
    let config = single_route(listen, "quarter", settings, &app, &shadow);
    let wasp = Wasp::start(config).await;
    let client = Client::http1();
    let n = 800;
    for _ in 0..n {
        client.get(&format!("http://{listen}/")).await.unwrap();
    }
    let metrics = wasp.metrics().await;
    let mirrored = metrics.sum("mirror_quarter_mirrored", &[]);
    assert_eq!(
        mirrored + metrics.sum("mirror_quarter_skipped", &[]),
        n as f64
    );
    wait_hits(&shadow, mirrored as u64).await;
    let percent = shadow.hits() as f64 * 100.0 / n as f64;
    assert!((percent - 25.0).abs() <= 5.0, "{percent}% mirrored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_mirrored_headers_only_and_reaches_the_app_whole() {
    let listen = free_addr();
    let app = Upstream::start("app").await;
    let shadow = Upstream::start("shadow").await;
    let config = single_route(listen, "big", json!({}), &app, &shadow);
    let wasp = Wasp::start(config).await;
    let body = vec![b'x'; 200 * 1024];
    let (status, _) = post(&Client::http1(), &format!("http://{listen}/upload"), body).await;
    assert_eq!(status, 200);
    assert_eq!(app.body_bytes(), 200 * 1024);
    let copies = shadow.wait_requests(1).await;
    let copy = &copies[0];
    assert_eq!(
        (copy["path"].as_str(), copy["body_len"].as_u64()),
        (Some("/upload"), Some(0))
    );
    let metrics = wasp.metrics().await;
    assert_eq!(metrics.sum("mirror_big_headers_only", &[]), 1.0);
}
