//! Differential tests of the shipped `fault` and `mirror` filters: the same
//! module, configuration and requests in Envoy 1.40 (V8) and in wasp; what a
//! client (and the shadow upstream) observes must agree. Kept apart from
//! `envoy_differential.rs` (same harness: `wasp_e2e::envoy`) so each file
//! stays small. The modules come from `scripts/build-filters.sh`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Request;
use wasp_e2e::client::full;
use wasp_e2e::envoy::{Envoy, EnvoyConfig, WasmPlugin};
use wasp_e2e::{Client, Resp, Upstream, Wasp, filter_module, free_addr};

/// Envoy and wasp on the same configuration.
struct Pair {
    _envoy: Envoy,
    _wasp: Wasp,
    addrs: [SocketAddr; 2],
}

impl Pair {
    async fn start(config: &EnvoyConfig) -> Pair {
        let envoy = match Envoy::start(config).await {
            Ok(envoy) => envoy,
            Err(e) => panic!("starting Envoy: {e:#}"),
        };
        let wasp_addr = free_addr();
        let wasp = Wasp::start(&config.to_wasp_yaml(wasp_addr)).await;
        let addrs = [envoy.addr(), wasp_addr];
        Pair {
            _envoy: envoy,
            _wasp: wasp,
            addrs,
        }
    }
}

/// Sends a POST with `headers` and `body` to `addr`: the answer and its latency.
async fn send(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (Resp, Duration) {
    let mut request = Request::post(format!("http://{addr}{path}"))
        .header(http::header::HOST, "differential.test");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let started = Instant::now();
    let resp = Client::http1()
        .request(request.body(full(body.to_owned())).unwrap())
        .await
        .expect("request");
    (resp, started.elapsed())
}

fn fault(configuration: &str) -> WasmPlugin {
    WasmPlugin::new("chaos", filter_module("wasp_filter_fault"), configuration)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_aborts_and_delays_alike() {
    let upstream = Upstream::start("app").await;
    let config = EnvoyConfig::new(upstream.addr).plugin(fault(r#"{"header_control": true}"#));
    let pair = Pair::start(&config).await;
    let mut answers = Vec::new();
    for addr in pair.addrs {
        let (http, _) = send(addr, "/", &[("x-wasp-fault-abort-request", "503")], "").await;
        let grpc_headers = [
            ("content-type", "application/grpc"),
            ("x-wasp-fault-abort-grpc-request", "14"),
        ];
        let (grpc, _) = send(addr, "/pkg.Svc/Call", &grpc_headers, "").await;
        let (plain, _) = send(addr, "/", &[], "").await;
        let (_, delayed) = send(addr, "/", &[("x-wasp-fault-delay-request", "200")], "").await;
        answers.push((http, grpc, plain, delayed));
    }
    let (envoy, wasp) = (&answers[0], &answers[1]);
    assert_eq!(
        (envoy.0.status, envoy.0.text()),
        (503, "fault filter abort".to_owned())
    );
    assert_eq!(
        (wasp.0.status, wasp.0.text()),
        (envoy.0.status, envoy.0.text())
    );
    for name in ["grpc-status", "grpc-message", "content-type"] {
        assert_eq!(
            envoy.1.header(name),
            wasp.1.header(name),
            "{name}: {:?} / {:?}",
            envoy.1,
            wasp.1
        );
    }
    assert_eq!(
        (envoy.1.status, envoy.1.header("grpc-status")),
        (200, Some("14"))
    );
    assert_eq!((envoy.2.status, wasp.2.status), (200, 200));
    for delayed in [envoy.3, wasp.3] {
        assert!(delayed >= Duration::from_millis(200), "{delayed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_sends_the_same_copy() {
    let upstream = Upstream::start("app").await;
    let shadow = Upstream::start("shadow").await;
    let plugin = WasmPlugin::new(
        "shadowing",
        filter_module("wasp_filter_mirror"),
        r#"{"cluster": "shadow"}"#,
    );
    let config = EnvoyConfig::new(upstream.addr)
        .plugin(plugin)
        .cluster("shadow", shadow.addr);
    let pair = Pair::start(&config).await;
    for (i, addr) in pair.addrs.into_iter().enumerate() {
        let (resp, _) = send(addr, "/orders?id=7", &[("x-user", "alice")], "the order").await;
        assert_eq!(resp.status, 200);
        shadow.wait_requests(i + 1).await;
    }
    let copies = shadow.requests();
    let (envoy, wasp) = (&copies[0], &copies[1]);
    for field in ["method", "path", "query", "host", "body"] {
        assert_eq!(
            envoy[field], wasp[field],
            "{field}\nenvoy: {envoy}\nwasp: {wasp}"
        );
    }
    assert_eq!(envoy["host"], "differential.test-shadow");
    assert_eq!(envoy["body"], "the order");
    assert_eq!(envoy["headers"]["x-user"], wasp["headers"]["x-user"]);
}
