//! The shipped `fault` filter through the real binary: delays by
//! percentage with their length, aborts by percentage, header-controlled
//! faults (HTTP and gRPC), and a thousand delayed requests at once while
//! another route keeps its latency. The module comes from
//! `scripts/build-filters.sh`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Route, Upstream, Wasp, filter_module,
    free_addr,
};

/// wasp with the fault filter (`configuration`) on `/fault` and no filter
/// on `/plain`, both to an echo upstream.
async fn start(configuration: Value) -> (Wasp, SocketAddr, Upstream) {
    let listen = free_addr();
    let upstream = Upstream::start("app").await;
    let plugin =
        Plugin::new("chaos", filter_module("wasp_filter_fault")).configuration(configuration);
    let config = Config::new()
        .filter_chain(FilterChain::new("chaos").plugin(plugin))
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/fault").filter_chain("chaos").cluster("app"))
                .route(Route::prefix("/plain").cluster("app")),
        )
        .cluster(Cluster::new("app").endpoint(upstream.addr));
    (Wasp::start(config).await, listen, upstream)
}

/// Sends `n` GETs of `url`, `concurrency` at a time: status and latency of each.
async fn load(url: &str, n: usize, concurrency: usize) -> Vec<(u16, Duration)> {
    let client = Client::http1();
    let mut results = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(concurrency) {
        let sends = batch.iter().map(|_| async {
            let started = Instant::now();
            let resp = client.get(url).await.expect("request");
            (resp.status, started.elapsed())
        });
        results.extend(join_all(sends).await);
    }
    results
}

fn share(part: usize, whole: usize) -> f64 {
    part as f64 * 100.0 / whole as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_at_50_percent_delays_half_the_requests_by_its_fixed_delay() {
    let config = json!({ "delay": { "fixed_delay": "200ms", "percentage": { "value": 50 } } });
    let (wasp, listen, _upstream) = start(config).await;
    let results = load(&format!("http://{listen}/fault"), 400, 20).await;
    assert!(results.iter().all(|(status, _)| *status == 200));
    let metrics = wasp.metrics().await;
    let delays = metrics.sum("fault_chaos_delays_injected", &[]) as usize;
    let delayed_share = share(delays, results.len());
    assert!(
        (delayed_share - 50.0).abs() <= 7.0,
        "{delayed_share}% delayed"
    );
    // The `delays` slowest requests are the delayed ones: each took at least
    // the delay, and the rest did not wait.
    let mut latencies: Vec<Duration> = results.iter().map(|(_, latency)| *latency).collect();
    latencies.sort();
    let (prompt, delayed) = latencies.split_at(results.len() - delays);
    assert!(
        delayed[0] >= Duration::from_millis(200),
        "a delay ended early: {delayed:?}"
    );
    let p95 = |sorted: &[Duration]| sorted[sorted.len() * 95 / 100];
    assert!(
        p95(delayed) <= Duration::from_millis(260),
        "delayed requests outside 200–260 ms: {delayed:?}"
    );
    assert!(
        p95(prompt) < Duration::from_millis(100),
        "undelayed requests waited: {prompt:?}"
    );
    assert_eq!(metrics.sum("fault_chaos_active_faults", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_503_at_10_percent_answers_a_tenth_of_the_requests() {
    let config = json!({ "abort": { "http_status": 503, "percentage": { "value": 10 } } });
    let (wasp, listen, upstream) = start(config).await;
    let results = load(&format!("http://{listen}/fault"), 1000, 50).await;
    let aborted = results.iter().filter(|(s, _)| *s == 503).count();
    let passed = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(aborted + passed, results.len());
    let aborted_share = share(aborted, results.len());
    assert!(
        (aborted_share - 10.0).abs() <= 3.0,
        "{aborted_share}% aborted"
    );
    assert_eq!(
        upstream.hits() as usize,
        passed,
        "aborted requests reached the upstream"
    );
    let metrics = wasp.metrics().await;
    assert_eq!(
        metrics.sum("fault_chaos_aborts_injected", &[]) as usize,
        aborted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_ask_for_their_own_faults_with_header_control() {
    let (_wasp, listen, _upstream) = start(json!({ "header_control": true })).await;
    let client = Client::http1();
    let url = format!("http://{listen}/fault");

    // The connection is opened first, so the plain request's time is its own.
    assert_eq!(client.get(&url).await.unwrap().status, 200);
    let started = Instant::now();
    let plain = client.get(&url).await.unwrap();
    assert_eq!(plain.status, 200);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(250),
        "a plain request waited {took:?}"
    );

    let started = Instant::now();
    let delayed = client
        .get_with(&url, &[("x-wasp-fault-delay-request", "300")])
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(delayed.status, 200);
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_millis(600), "{waited:?}");

    let aborted = client
        .get_with(&url, &[("x-wasp-fault-abort-request", "418")])
        .await
        .unwrap();
    assert_eq!(
        (aborted.status, aborted.text().as_str()),
        (418, "fault filter abort")
    );

    let skipped = client
        .get_with(
            &url,
            &[
                ("x-wasp-fault-abort-request", "418"),
                ("x-wasp-fault-abort-request-percentage", "0"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(skipped.status, 200);

    let grpc = client
        .get_with(
            &url,
            &[
                ("content-type", "application/grpc"),
                ("x-wasp-fault-abort-grpc-request", "14"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(grpc.status, 200, "{}", grpc.text());
    assert_eq!(grpc.header("grpc-status"), Some("14"));
    assert_eq!(grpc.header("grpc-message"), Some("fault filter abort"));
    assert_eq!(grpc.header("content-type"), Some("application/grpc"));
    assert!(grpc.text().is_empty());
}

/// The number of threads of process `pid`.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_delayed_requests_hold_no_threads_and_other_routes_keep_their_latency() {
    let config = json!({ "delay": { "fixed_delay": "1500ms" } });
    let (wasp, listen, _upstream) = start(config).await;
    let plain_url = format!("http://{listen}/plain");
    let baseline = load(&plain_url, 50, 1).await;
    let threads_before = threads(wasp.pid());

    let slow_url = format!("http://{listen}/fault");
    let slow = tokio::spawn(async move { load(&slow_url, 1000, 1000).await });
    // Wait until the delayed requests are in.
    let active = wasp
        .metric_reaching(
            "fault_chaos_active_faults",
            &[],
            1000.0,
            Duration::from_secs(10),
        )
        .await;
    assert!(active >= 1000.0, "only {active} requests delayed");
    let during = load(&plain_url, 50, 1).await;
    let threads_during = threads(wasp.pid());

    let slow = slow.await.unwrap();
    assert_eq!(slow.len(), 1000);
    assert!(
        slow.iter()
            .all(|(status, latency)| *status == 200 && *latency >= Duration::from_millis(1500))
    );
    assert_eq!(threads_during, threads_before, "delays took threads");
    let p99 = |samples: &[(u16, Duration)]| {
        let mut latencies: Vec<_> = samples.iter().map(|(_, l)| *l).collect();
        latencies.sort();
        latencies[latencies.len() * 99 / 100 - 1]
    };
    let (before, while_delayed) = (p99(&baseline), p99(&during));
    assert!(
        while_delayed < before + Duration::from_millis(50),
        "p99 of the plain route: {before:?} before, {while_delayed:?} during the delays"
    );
}
