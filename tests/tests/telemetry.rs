//! The shipped `telemetry` filter through the real binary: exact request
//! counts and histogram buckets per label set on `/metrics`, the series cap,
//! a real Prometheus scraping wasp and answering PromQL, and trace
//! continuation seen at the upstream. The module comes from
//! `scripts/build-filters.sh`.
//!
//! Prometheus is Debian's `prometheus` package (`scripts/test.sh` installs
//! it). Without it the Prometheus test skips loudly, unless
//! `WASP_REQUIRE_PROMETHEUS` is set (as `scripts/test.sh` does), in which
//! case it fails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasp_e2e::upstream::control;
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Metrics, Plugin, Route, Upstream, Wasp,
    filter_module, free_addr,
};
use wasp_filter_telemetry::Workload;

const NODE: &str = "node: {id: sidecar~10.0.0.2~reviews-v2-1.bookinfo, cluster: reviews, \
    metadata: {WORKLOAD_NAME: reviews-v2, NAMESPACE: bookinfo, APP: reviews, VERSION: v2, \
    CLUSTER_ID: east}, labels: {service.istio.io/canonical-name: reviews-svc}}";

/// wasp as the `reviews-v2` sidecar with the telemetry filter
/// (`configuration`) on every request to an echo upstream.
async fn start(configuration: Value, args: &[&str]) -> (Wasp, SocketAddr, Upstream) {
    let listen = free_addr();
    let upstream = Upstream::start("reviews").await;
    // These tests count metrics, not CPU time: a debug build of the host on
    // a busy two-core machine may take a wall-clock 20 ms (the default
    // deadline) for a callback that defines four refused series.
    let plugin = Plugin::new("telemetry", filter_module("wasp_filter_telemetry"))
        .configuration(configuration)
        .set("limits", json!({"cpu_deadline": "1s"}));
    let config = Config::new()
        .filter_chain(FilterChain::new("telemetry").plugin(plugin))
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/").filter_chain("telemetry").cluster("app")),
        )
        .cluster(Cluster::new("app").endpoint(upstream.addr))
        .raw(NODE);
    (Wasp::start_with_args(config, args).await, listen, upstream)
}

fn productpage() -> String {
    Workload::named("productpage-v1", "bookinfo", "productpage", "v1").encode()
}

/// Sends one GET from the productpage workload with extra headers.
async fn send(client: &Client, listen: SocketAddr, extra: &[(&str, &str)]) -> u16 {
    let peer = productpage();
    let mut headers = vec![
        ("host", "reviews.bookinfo.svc.cluster.local:9080"),
        ("x-envoy-peer-metadata", peer.as_str()),
        (
            "x-envoy-peer-metadata-id",
            "sidecar~10.0.0.1~productpage-v1-1.bookinfo",
        ),
    ];
    headers.extend_from_slice(extra);
    client
        .get_with(&format!("http://{listen}/reviews/1"), &headers)
        .await
        .expect("request")
        .status
}

/// The mix: 5 × 200 right away, 3 × 503 after 300 ms, 2 × 404 with a
/// 3000-byte body.
async fn send_mix(listen: SocketAddr) {
    let client = Client::http1();
    for _ in 0..5 {
        assert_eq!(send(&client, listen, &[]).await, 200);
    }
    for _ in 0..3 {
        let extra = [(control::STATUS, "503"), (control::DELAY_MS, "300")];
        assert_eq!(send(&client, listen, &extra).await, 503);
    }
    for _ in 0..2 {
        let extra = [(control::STATUS, "404"), (control::RESPONSE_BYTES, "3000")];
        assert_eq!(send(&client, listen, &extra).await, 404);
    }
}

/// The labels every series of the mix has besides `response_code`.
const COMMON: &[(&str, &str)] = &[
    ("reporter", "destination"),
    ("source_workload", "productpage-v1"),
    ("source_canonical_service", "productpage"),
    ("source_canonical_revision", "v1"),
    ("source_workload_namespace", "bookinfo"),
    ("source_principal", "unknown"),
    ("source_app", "productpage"),
    ("source_version", "v1"),
    ("source_cluster", "unknown"),
    ("destination_workload", "reviews-v2"),
    ("destination_workload_namespace", "bookinfo"),
    ("destination_principal", "unknown"),
    ("destination_app", "reviews"),
    ("destination_version", "v2"),
    ("destination_service", "reviews.bookinfo.svc.cluster.local"),
    ("destination_canonical_service", "reviews-svc"),
    ("destination_canonical_revision", "v2"),
    ("destination_service_name", "reviews"),
    ("destination_service_namespace", "bookinfo"),
    ("destination_cluster", "east"),
    ("request_protocol", "http"),
    ("grpc_response_status", ""),
    ("response_flags", "-"),
    ("connection_security_policy", "none"),
];

fn labels<'a>(code: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut labels = COMMON.to_vec();
    labels.push(("response_code", code));
    labels.extend_from_slice(extra);
    labels
}

/// Waits until `/metrics` counts `total` requests (the filter records in
/// `on_log`, which may run just after the client has its response).
async fn metrics_after(wasp: &Wasp, total: f64) -> Metrics {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = wasp.metrics().await;
        if metrics.sum("istio_requests_total", &[]) >= total || Instant::now() > deadline {
            return metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_label_set_exactly_with_istios_buckets() {
    let (wasp, listen, _upstream) = start(json!({}), &[]).await;
    send_mix(listen).await;
    let metrics = metrics_after(&wasp, 10.0).await;
    let text = &metrics.text;
    assert!(
        text.contains("# TYPE istio_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE istio_request_duration_milliseconds histogram"),
        "{text}"
    );
    let series: Vec<_> = metrics.matching("istio_requests_total", &[]).collect();
    assert_eq!(series.len(), 3, "{series:#?}");
    for (code, count) in [("200", 5.0), ("503", 3.0), ("404", 2.0)] {
        let set = labels(code, &[]);
        let found: Vec<_> = metrics.matching("istio_requests_total", &set).collect();
        assert_eq!(found.len(), 1, "{code}: {text}");
        assert_eq!(found[0].labels.len(), set.len(), "{:?}", found[0]);
        assert_eq!(found[0].value, count, "{code}");
        for family in [
            "istio_request_duration_milliseconds",
            "istio_request_bytes",
            "istio_response_bytes",
        ] {
            assert_eq!(
                metrics.sum(&format!("{family}_count"), &set),
                count,
                "{family} {code}"
            );
            let inf = labels(code, &[("le", "+Inf")]);
            assert_eq!(metrics.sum(&format!("{family}_bucket"), &inf), count);
        }
    }
    let bucket = |family: &str, code: &str, le: &str| {
        metrics.sum(
            &format!("istio_{family}_bucket"),
            &labels(code, &[("le", le)]),
        )
    };
    // Durations: the 503s waited 300 ms at the upstream, the others did not.
    assert_eq!(bucket("request_duration_milliseconds", "503", "250"), 0.0);
    assert_eq!(bucket("request_duration_milliseconds", "503", "500"), 3.0);
    assert_eq!(bucket("request_duration_milliseconds", "200", "250"), 5.0);
    // Every Istio (Envoy default) bucket bound is exported.
    for le in [
        "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
        "30000", "60000", "300000", "600000", "1800000", "3600000",
    ] {
        assert_eq!(
            metrics
                .matching(
                    "istio_request_duration_milliseconds_bucket",
                    &labels("200", &[("le", le)])
                )
                .count(),
            1,
            "bucket {le}: {text}"
        );
    }
    // Sizes: the 404s carried 3000 body bytes plus headers.
    assert_eq!(bucket("response_bytes", "404", "2500"), 0.0);
    assert_eq!(bucket("response_bytes", "404", "5000"), 2.0);
    assert_eq!(bucket("response_bytes", "200", "2500"), 5.0);
    assert_eq!(bucket("request_bytes", "200", "1000"), 5.0);
    assert!(metrics.sum("istio_response_bytes_sum", &labels("404", &[])) > 6000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_past_its_series_cap_drops_new_series_and_counts_them() {
    let (wasp, listen, _upstream) = start(json!({}), &["--metric-series-per-family", "2"]).await;
    send_mix(listen).await;
    let metrics = metrics_after(&wasp, 8.0).await;
    // 200 and 503 came first; the 404 series does not fit.
    assert_eq!(
        metrics.sum("istio_requests_total", &labels("200", &[])),
        5.0
    );
    assert_eq!(
        metrics.sum("istio_requests_total", &labels("503", &[])),
        3.0
    );
    assert_eq!(
        metrics
            .matching("istio_requests_total", &[("response_code", "404")])
            .count(),
        0
    );
    // Each of the 4 families refused the 404 series on both requests.
    let dropped = |family: &str| {
        metrics.sum(
            "wasp_filter_metric_series_dropped_total",
            &[("family", family)],
        )
    };
    assert_eq!(dropped("istio_requests_total"), 2.0, "{}", metrics.text);
    assert_eq!(dropped("istio_response_bytes"), 2.0);
    assert!(
        wasp.log().contains("already has 2 series"),
        "{}",
        wasp.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_w3c_trace_is_continued_to_the_upstream_and_peer_headers_stay_between_proxies() {
    let (_wasp, listen, upstream) = start(json!({}), &[]).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let client = Client::http1();
    let traceparent = format!("00-{trace}-{parent}-01");
    let resp = client
        .get_with(
            &format!("http://{listen}/"),
            &[
                ("traceparent", traceparent.as_str()),
                ("tracestate", "congo=t61rcWkgMzE"),
                ("x-envoy-peer-metadata", &productpage()),
                ("x-envoy-peer-metadata-id", "productpage"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    // The client learns who answered.
    let answered = Workload::decode(resp.header("x-envoy-peer-metadata").unwrap()).unwrap();
    assert_eq!(
        (
            answered.name.as_str(),
            answered.canonical_service.as_str(),
            answered.cluster.as_str()
        ),
        ("reviews-v2", "reviews-svc", "east")
    );
    assert_eq!(
        resp.header("x-envoy-peer-metadata-id"),
        Some("sidecar~10.0.0.2~reviews-v2-1.bookinfo")
    );
    let seen = &upstream.requests()[0]["headers"];
    let forwarded = seen["traceparent"].as_str().unwrap();
    let parts: Vec<&str> = forwarded.split('-').collect();
    assert_eq!(parts.len(), 4, "{forwarded}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", trace, "01"));
    assert_ne!(parts[2], parent, "a new span id");
    assert!(parts[2].len() == 16 && parts[2] != "0000000000000000");
    assert_eq!(seen["tracestate"], "congo=t61rcWkgMzE");
    assert_eq!(seen["x-b3-traceid"], trace);
    assert_eq!(seen["x-b3-spanid"], parts[2]);
    assert_eq!(seen["x-b3-parentspanid"], parent);
    // W3C in, so no B3 single header out (only written when received).
    assert!(seen.get("b3").is_none(), "{seen}");
    // The application never sees the exchange headers.
    assert!(seen.get("x-envoy-peer-metadata").is_none(), "{seen}");
    assert!(seen.get("x-envoy-peer-metadata-id").is_none(), "{seen}");

    // Without a trace, one is started.
    client.get(&format!("http://{listen}/")).await.unwrap();
    let started = upstream.requests()[1]["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(started.len(), 55, "{started}");
    assert!(!started.contains(trace));
}

/// A Prometheus server started on its own configuration and data directory.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `prometheus` binary: on PATH or where Debian puts it.
fn prometheus_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/bin/prometheus");
        debian.is_file().then_some(debian)
    })
}

impl Prometheus {
    /// Starts Prometheus scraping `target`'s `/metrics` every 500 ms.
    fn start(binary: &PathBuf, target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 500ms, scrape_timeout: 400ms}}\n\
                 scrape_configs:\n  - job_name: wasp\n    metrics_path: /metrics\n    \
                 static_configs: [{{targets: ['{target}']}}]\n"
            ),
        )
        .unwrap();
        let addr = free_addr();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `query` over the HTTP API: the result's (label value of `by`, value)
    /// pairs, sorted.
    async fn query(&self, query: &str, by: &str) -> Option<Vec<(String, f64)>> {
        let client = Client::http1();
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let url = format!("http://{}/api/v1/query?query={encoded}", self.addr);
        let resp = client.get(&url).await.ok()?;
        if resp.status != 200 {
            return None;
        }
        let body = resp.json();
        let mut pairs: Vec<(String, f64)> = body["data"]["result"]
            .as_array()?
            .iter()
            .map(|r| {
                let label = r["metric"][by].as_str().unwrap_or_default().to_owned();
                let value = r["value"][1]
                    .as_str()
                    .unwrap_or("nan")
                    .parse()
                    .unwrap_or(f64::NAN);
                (label, value)
            })
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Some(pairs)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_istio_metrics_and_answers_promql() {
    let Some(binary) = prometheus_binary() else {
        if std::env::var_os("WASP_REQUIRE_PROMETHEUS").is_some() {
            panic!(
                "WASP_REQUIRE_PROMETHEUS is set but no `prometheus` binary was found \
                 (apt-get install prometheus)"
            );
        }
        eprintln!(
            "\n\n!!!!!!!! SKIPPED: the Prometheus test needs the `prometheus` binary \
             (Debian package `prometheus`; scripts/test.sh installs it). !!!!!!!!\n\n"
        );
        return;
    };
    let (wasp, listen, _upstream) = start(json!({}), &[]).await;
    send_mix(listen).await;
    metrics_after(&wasp, 10.0).await;
    let prometheus = Prometheus::start(&binary, wasp.admin_addr());
    let expected = vec![
        ("200".to_owned(), 5.0),
        ("404".to_owned(), 2.0),
        ("503".to_owned(), 3.0),
    ];
    let query = "sum by (response_code) (istio_requests_total)";
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = None;
    while Instant::now() < deadline {
        last = prometheus.query(query, "response_code").await;
        if last.as_ref() == Some(&expected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        last.as_ref(),
        Some(&expected),
        "{query}; prometheus log:\n{}",
        prometheus.log()
    );
    // A histogram query over the same data: every 503 took over 250 ms.
    let slow = prometheus
        .query(
            r#"sum by (response_code) (istio_request_duration_milliseconds_bucket{le="250"})"#,
            "response_code",
        )
        .await
        .unwrap();
    assert_eq!(
        slow,
        vec![
            ("200".to_owned(), 5.0),
            ("404".to_owned(), 2.0),
            ("503".to_owned(), 0.0)
        ]
    );
}
