//! Differential tests: the same filter modules, the same topology and the
//! same request in Envoy (the reference, V8 runtime) and in wasp; what a
//! client observes must agree. The filters come from
//! `scripts/build-filters.sh` (target/filters/*.wasm).
//!
//! The upstream ([`ChunkedEcho`]) answers every request with a body sent in
//! three separate chunks, so body-buffering filters see more than one body
//! callback, and echoes the request body and `x-bench-rewrite` in headers.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use wasp_e2e::chunked::{CHUNKS, ECHO_BODY, ECHO_HEADER};
use wasp_e2e::envoy::{Envoy, EnvoyConfig, WasmPlugin};
use wasp_e2e::{ChunkedEcho, Wasp, filter_module, free_addr};

/// What a client observes.
#[derive(Debug)]
struct Observed {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Observed {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// Sends one request with extra headers through a proxy listening on `addr`.
async fn send_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Observed {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "differential.test");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Observed {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// Both proxies running the same topology.
struct Pair {
    envoy: Envoy,
    _wasp: Wasp,
    wasp_addr: SocketAddr,
}

impl Pair {
    async fn start(config: &EnvoyConfig) -> Pair {
        let envoy = match Envoy::start(config).await {
            Ok(envoy) => envoy,
            Err(e) => panic!("starting Envoy: {e:#}"),
        };
        let wasp_addr = free_addr();
        let wasp = Wasp::start(&config.to_wasp_yaml(wasp_addr)).await;
        Pair {
            envoy,
            _wasp: wasp,
            wasp_addr,
        }
    }

    /// The same request through Envoy, then through wasp.
    async fn send(&self, method: &str, path: &str, body: &str) -> (Observed, Observed) {
        self.send_with(method, path, &[], body).await
    }

    /// The same request, with extra headers, through Envoy, then through wasp.
    async fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (Observed, Observed) {
        let envoy = send_with(self.envoy.addr(), method, path, headers, body).await;
        let wasp = send_with(self.wasp_addr, method, path, headers, body).await;
        (envoy, wasp)
    }
}

/// Repeats `headers` requests through Envoy, then through wasp, until
/// `done` holds of each proxy's answer (10 s); the answers.
async fn eventually_both(
    pair: &Pair,
    headers: &[(&str, &str)],
    done: impl Fn(&Observed) -> bool,
) -> (Observed, Observed) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut answers = Vec::new();
    for addr in [pair.envoy.addr(), pair.wasp_addr] {
        loop {
            let seen = send_with(addr, "GET", "/eventually", headers, "").await;
            if done(&seen) {
                answers.push(seen);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{addr}: last answer {seen:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let wasp = answers.pop().expect("two answers");
    let envoy = answers.pop().expect("two answers");
    (envoy, wasp)
}

/// Asserts that Envoy and wasp agree on the status, the body and `headers`.
fn assert_same(envoy: &Observed, wasp: &Observed, headers: &[&str]) {
    assert_eq!(
        envoy.status, wasp.status,
        "status\nenvoy: {envoy:?}\nwasp: {wasp:?}"
    );
    assert_eq!(
        envoy.body, wasp.body,
        "body\nenvoy: {envoy:?}\nwasp: {wasp:?}"
    );
    for name in headers {
        assert_eq!(
            envoy.header(name),
            wasp.header(name),
            "header {name}\nenvoy: {envoy:?}\nwasp: {wasp:?}"
        );
    }
}

/// The template filter's configured response header reaches the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_filter_adds_its_header() {
    let upstream = ChunkedEcho::start().await;
    let template = WasmPlugin::new(
        "add-header",
        filter_module("wasp_filter_template"),
        r#"{"header": "x-served-by", "value": "differential"}"#,
    );
    let pair = Pair::start(&EnvoyConfig::new(upstream.addr).plugin(template)).await;
    let (envoy, wasp) = pair.send("GET", "/template", "").await;
    assert_eq!(envoy.status, 200, "{envoy:?}");
    assert_eq!(envoy.header("x-served-by"), Some("differential"));
    assert_eq!(envoy.body, CHUNKS.concat());
    assert_eq!(envoy.header(ECHO_HEADER), Some("none"));
    assert_same(&envoy, &wasp, &["x-served-by", ECHO_HEADER, ECHO_BODY]);
}

/// A plugin configuration the filter rejects keeps both proxies from
/// starting, and both logs carry the filter's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_filter_rejects_a_bad_configuration() {
    let upstream = ChunkedEcho::start().await;
    let template = WasmPlugin::new(
        "add-header",
        filter_module("wasp_filter_template"),
        r#"{"header": "bad name", "value": "x"}"#,
    );
    let config = EnvoyConfig::new(upstream.addr).plugin(template);
    let error = match Envoy::start(&config).await {
        Ok(_) => panic!("Envoy accepted a configuration the filter rejects"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("not a valid header name"), "{error}");

    let mut wasp = Wasp::spawn(config.to_wasp_yaml(free_addr()));
    let status = wasp
        .wait_exit(std::time::Duration::from_secs(30))
        .await
        .expect("wasp should exit on a rejected plugin configuration");
    assert!(!status.success());
    let log = wasp.log();
    assert!(log.contains("not a valid header name"), "{log}");
    assert!(log.contains("add-header"), "{log}");
}

/// bench-rewrite: buffers both bodies across chunks and upper-cases them;
/// adds its header on the request (seen by the upstream) and the response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_filter_rewrites_headers_and_bodies() {
    let upstream = ChunkedEcho::start().await;
    let rewrite = WasmPlugin::new("rewrite", filter_module("bench_rewrite"), "");
    let pair = Pair::start(&EnvoyConfig::new(upstream.addr).plugin(rewrite)).await;
    let (envoy, wasp) = pair.send("POST", "/rewrite", "request body").await;
    assert_eq!(envoy.status, 200, "{envoy:?}");
    assert_eq!(envoy.body, CHUNKS.concat().to_ascii_uppercase());
    assert_eq!(envoy.header(ECHO_BODY), Some("REQUEST BODY"));
    assert_same(&envoy, &wasp, &[ECHO_BODY]);
    // The header counts depend on which headers each proxy adds (Envoy's
    // x-envoy-*, wasp's x-request-id): each proxy must have counted some.
    let counted = |o: &Observed, name: &str| o.header(name).and_then(|v| v.parse::<usize>().ok());
    for seen in [&envoy, &wasp] {
        assert!(
            counted(seen, ECHO_HEADER).is_some_and(|n| n >= 4),
            "{seen:?}"
        );
        assert!(
            counted(seen, "x-bench-rewrite").is_some_and(|n| n >= 2),
            "{seen:?}"
        );
    }
}

/// A chain of ten no-op filters changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_chain_passes_everything_through() {
    let upstream = ChunkedEcho::start().await;
    let mut config = EnvoyConfig::new(upstream.addr);
    for i in 0..10 {
        config = config.plugin(WasmPlugin::new(
            &format!("noop-{i}"),
            filter_module("bench_noop"),
            "",
        ));
    }
    let pair = Pair::start(&config).await;
    let (envoy, wasp) = pair.send("POST", "/noop", "request body").await;
    assert_eq!(envoy.status, 200, "{envoy:?}");
    assert_eq!(envoy.header(ECHO_BODY), Some("request body"));
    assert_eq!(envoy.body, CHUNKS.concat());
    assert_eq!(envoy.header(ECHO_HEADER), Some("none"));
    assert_same(&envoy, &wasp, &[ECHO_BODY, ECHO_HEADER]);
}

/// sdk-features, which uses every part of the SDK: properties, local
/// replies, body rewrites, an HTTP callout that pauses the request, shared
/// data and metrics give the same answers in both proxies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_features_filter_behaves_the_same() {
    let upstream = ChunkedEcho::start().await;
    let features = WasmPlugin::new(
        "features",
        filter_module("sdk_features"),
        r#"{"callout_cluster": "callout", "tick_ms": 20, "tick_callout_path": "/tick"}"#,
    );
    let config = EnvoyConfig::new(upstream.addr)
        .cluster("callout", upstream.addr)
        .plugin(features);
    let pair = Pair::start(&config).await;

    let (envoy, wasp) = pair
        .send_with("GET", "/props?q=1", &[("x-test", "properties")], "")
        .await;
    assert_eq!(envoy.header("x-prop-path"), Some("/props?q=1"), "{envoy:?}");
    assert_same(
        &envoy,
        &wasp,
        &["x-prop-path", "x-prop-plugin", "x-prop-principal"],
    );

    let (envoy, wasp) = pair
        .send_with("GET", "/teapot", &[("x-test", "local-reply")], "")
        .await;
    assert_eq!(envoy.status, 418, "{envoy:?}");
    assert_same(&envoy, &wasp, &["x-local-reply", "content-length"]);

    let (envoy, wasp) = pair
        .send_with(
            "POST",
            "/loud",
            &[("x-test", "body-rewrite")],
            "make me loud",
        )
        .await;
    assert_eq!(envoy.header(ECHO_BODY), Some("MAKE ME LOUD"), "{envoy:?}");
    assert_same(&envoy, &wasp, &[ECHO_BODY]);

    let (envoy, wasp) = pair
        .send_with("GET", "/callout", &[("x-test", "callout")], "")
        .await;
    assert_eq!(envoy.header("x-callout-status"), Some("200"), "{envoy:?}");
    assert_same(&envoy, &wasp, &["x-callout-status"]);

    for _ in 0..3 {
        let (envoy, wasp) = pair
            .send_with("GET", "/count", &[("x-test", "shared-data,metrics")], "")
            .await;
        assert_same(&envoy, &wasp, &["x-shared-hits", "x-metric-requests"]);
    }

    // The root context calls out on a tick; the answer reaches it.
    let (envoy, wasp) = eventually_both(&pair, &[("x-test", "tick-callout")], |seen| {
        seen.header("x-tick-callout") == Some("200")
    })
    .await;
    assert_same(&envoy, &wasp, &["x-tick-callout"]);
}

/// as-features, built with the AssemblyScript SDK (`@solo-io/proxy-runtime`):
/// headers, a local reply, an HTTP callout from a stream (its response
/// delivered to the root context, which switches to the stream and resumes
/// it), property reads, shared data and a metric give the same answers in
/// both proxies, and so does a callout the root context makes on a tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assemblyscript_filter_behaves_the_same() {
    let upstream = ChunkedEcho::start().await;
    let mut features = WasmPlugin::new(
        "as-features",
        filter_module("as_features"),
        "callout_cluster=callout tick_ms=20 tick_callout_path=/tick",
    );
    features.root_id = "as_features".into();
    let config = EnvoyConfig::new(upstream.addr)
        .cluster("callout", upstream.addr)
        .plugin(features);
    let pair = Pair::start(&config).await;

    let (envoy, wasp) = pair
        .send_with(
            "GET",
            "/headers",
            &[("x-test", "headers"), ("x-as-in", "echoed")],
            "",
        )
        .await;
    assert_eq!(envoy.status, 200, "{envoy:?}");
    assert_eq!(envoy.header("x-as-echo"), Some("echoed"), "{envoy:?}");
    assert_same(&envoy, &wasp, &["x-as-filter", "x-as-echo"]);

    let (envoy, wasp) = pair
        .send_with("GET", "/teapot", &[("x-test", "local-reply")], "")
        .await;
    assert_eq!(envoy.status, 418, "{envoy:?}");
    assert_same(&envoy, &wasp, &["x-local-reply", "content-length"]);

    let (envoy, wasp) = pair
        .send_with("GET", "/callout", &[("x-test", "callout")], "")
        .await;
    assert_eq!(envoy.header("x-callout-status"), Some("200"), "{envoy:?}");
    assert_same(&envoy, &wasp, &["x-callout-status", "x-callout-body-bytes"]);

    let (envoy, wasp) = pair
        .send_with("GET", "/props?q=1", &[("x-test", "properties")], "")
        .await;
    assert_eq!(envoy.header("x-prop-path"), Some("/props?q=1"), "{envoy:?}");
    assert_same(
        &envoy,
        &wasp,
        &["x-prop-path", "x-prop-method", "x-prop-root-id"],
    );

    for _ in 0..3 {
        let (envoy, wasp) = pair
            .send_with("GET", "/count", &[("x-test", "shared-data,metrics")], "")
            .await;
        assert_same(&envoy, &wasp, &["x-shared-hits", "x-metric-requests"]);
    }

    let (envoy, wasp) = eventually_both(&pair, &[("x-test", "tick-callout")], |seen| {
        seen.header("x-tick-callout") == Some("200")
    })
    .await;
    assert_same(&envoy, &wasp, &["x-tick-callout"]);
}
