//! Differential test of the shipped `telemetry` filter: the same module,
//! node and requests in Envoy 1.40 (V8) and in wasp. Both continue W3C and
//! B3 traces alike (same trace id and flags, a new span id, the caller's
//! span as parent), exchange the same workload metadata, and count the same
//! requests. Envoy has no labeled metrics: it exports each labeled name as
//! one flat metric (`istio_requests_total_reporter__destination__...`), so
//! counts are compared by summing those flat metrics per response code.
//! The module comes from `scripts/build-filters.sh`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasp_e2e::envoy::{Envoy, EnvoyConfig, WasmPlugin};
use wasp_e2e::upstream::control;
use wasp_e2e::{Client, Metrics, Resp, Upstream, Wasp, filter_module, free_addr};
use wasp_filter_telemetry::Workload;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn peer() -> String {
    Workload::named("productpage-v1", "bookinfo", "productpage", "v1").encode()
}

/// Sends a GET with `headers` to `addr`.
async fn send(addr: SocketAddr, headers: &[(&str, &str)]) -> Resp {
    let mut all = vec![("host", "reviews.bookinfo.svc.cluster.local")];
    all.extend_from_slice(headers);
    Client::http1()
        .get_with(&format!("http://{addr}/reviews"), &all)
        .await
        .expect("request")
}

/// What the upstream saw of one forwarded request: its headers.
fn headers_at(upstream: &Upstream, index: usize) -> Value {
    upstream.requests()[index]["headers"].clone()
}

/// Splits a `traceparent` into its four fields.
fn fields(traceparent: &str) -> Vec<String> {
    traceparent.split('-').map(str::to_owned).collect()
}

/// The sum of Envoy's flat `istio_requests_total_*` metrics for `code`.
fn envoy_count(metrics: &Metrics, code: &str) -> f64 {
    let needle = format!("_response_code__{code}__");
    metrics
        .samples
        .iter()
        .filter(|s| s.name.starts_with("istio_requests_total_") && s.name.contains(&needle))
        .map(|s| s.value)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_propagates_exchanges_and_counts_alike() {
    let upstream = Upstream::start("reviews").await;
    let plugin = WasmPlugin::new("telemetry", filter_module("wasp_filter_telemetry"), r#"{}"#);
    let config = EnvoyConfig::new(upstream.addr)
        .node(
            "sidecar~10.0.0.2~reviews-v2-1.bookinfo",
            "reviews",
            &[
                ("WORKLOAD_NAME", "reviews-v2"),
                ("NAMESPACE", "bookinfo"),
                ("APP", "reviews"),
                ("VERSION", "v2"),
            ],
        )
        .plugin(plugin);
    let envoy = match Envoy::start(&config).await {
        Ok(envoy) => envoy,
        Err(e) => panic!("starting Envoy: {e:#}"),
    };
    let wasp_addr = free_addr();
    let wasp = Wasp::start(&config.to_wasp_yaml(wasp_addr)).await;

    let peer = peer();
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let short = "a3ce929d0e0e4736";
    let mut seen = Vec::new();
    for addr in [envoy.addr(), wasp_addr] {
        let before = upstream.requests().len();
        let w3c = send(
            addr,
            &[
                ("traceparent", &traceparent),
                ("tracestate", "congo=t61rcWkgMzE"),
                ("x-envoy-peer-metadata", &peer),
                ("x-envoy-peer-metadata-id", "productpage"),
            ],
        )
        .await;
        send(
            addr,
            &[
                ("x-b3-traceid", short),
                ("x-b3-spanid", PARENT),
                ("x-b3-sampled", "0"),
            ],
        )
        .await;
        seen.push((
            w3c,
            headers_at(&upstream, before),
            headers_at(&upstream, before + 1),
        ));
    }
    let [
        (envoy_w3c, envoy_up, envoy_b3),
        (wasp_w3c, wasp_up, wasp_b3),
    ] = &seen[..]
    else {
        unreachable!()
    };

    // W3C: same trace and flags, a new span each.
    for up in [envoy_up, wasp_up] {
        let forwarded = fields(up["traceparent"].as_str().unwrap());
        assert_eq!(
            (
                forwarded[0].as_str(),
                forwarded[1].as_str(),
                forwarded[3].as_str()
            ),
            ("00", TRACE, "01"),
            "{up}"
        );
        assert_ne!(forwarded[2], PARENT);
        assert_eq!(up["tracestate"], "congo=t61rcWkgMzE");
        assert_eq!(up["x-b3-traceid"], TRACE);
        assert_eq!(up["x-b3-spanid"], forwarded[2].as_str());
        assert_eq!(up["x-b3-parentspanid"], PARENT);
        assert_eq!(up["x-b3-sampled"], "1");
        // The application never sees the exchange headers.
        assert!(up.get("x-envoy-peer-metadata").is_none(), "{up}");
    }
    // B3 multi with a 64-bit id: kept short in B3, padded in traceparent.
    for up in [envoy_b3, wasp_b3] {
        assert_eq!(up["x-b3-traceid"], short, "{up}");
        assert_eq!(up["x-b3-sampled"], "0");
        let forwarded = fields(up["traceparent"].as_str().unwrap());
        assert_eq!(forwarded[1], format!("0000000000000000{short}"));
        assert_eq!(forwarded[3], "00");
    }
    // Both answer with the same node metadata (Envoy's from `xds.node`).
    for name in ["x-envoy-peer-metadata", "x-envoy-peer-metadata-id"] {
        assert_eq!(envoy_w3c.header(name), wasp_w3c.header(name), "{name}");
    }
    let answered = Workload::decode(envoy_w3c.header("x-envoy-peer-metadata").unwrap()).unwrap();
    assert_eq!(
        (answered.name.as_str(), answered.version.as_str()),
        ("reviews-v2", "v2")
    );

    // Counts: more requests of mixed statuses.
    for addr in [envoy.addr(), wasp_addr] {
        for status in ["200", "503", "503", "404"] {
            send(
                addr,
                &[(control::STATUS, status), ("x-envoy-peer-metadata", &peer)],
            )
            .await;
        }
    }
    let expected = [("200", 3.0), ("503", 2.0), ("404", 1.0)];
    let deadline = Instant::now() + Duration::from_secs(20);
    let (envoy_metrics, wasp_metrics) = loop {
        let (status, text) = envoy.admin_get("/stats/prometheus").await.unwrap();
        assert_eq!(status, 200);
        let envoy_metrics = Metrics::parse(&text);
        let wasp_metrics = wasp.metrics().await;
        let done = expected.iter().all(|(code, count)| {
            envoy_count(&envoy_metrics, code) == *count
                && wasp_metrics.sum("istio_requests_total", &[("response_code", code)]) == *count
        });
        if done || Instant::now() > deadline {
            break (envoy_metrics, wasp_metrics);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (code, count) in expected {
        assert_eq!(
            envoy_count(&envoy_metrics, code),
            count,
            "{}",
            envoy_metrics.text
        );
        assert_eq!(
            wasp_metrics.sum("istio_requests_total", &[("response_code", code)]),
            count,
            "{}",
            wasp_metrics.text
        );
    }
}
