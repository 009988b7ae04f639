//! Differential tests: the same filter modules, the same topology and the
//! same request in Envoy (the reference, V8 runtime) and in wasp; what a
//! client observes must agree. The filters come from
//! `scripts/build-filters.sh` (target/filters/*.wasm).
//!
//! The upstream ([`ChunkedEcho`]) answers every request with a body sent in
//! three separate chunks, so body-buffering filters see more than one body
//! callback, and echoes the request body and `x-bench-rewrite` in headers.

use std::net::SocketAddr;

use wasp_e2e::chunked::{CHUNKS, ECHO_BODY, ECHO_HEADER};
use wasp_e2e::client::one_request;
use wasp_e2e::envoy::{Envoy, EnvoyConfig, WasmPlugin};
use wasp_e2e::{ChunkedEcho, Metrics, Wasp, filter_module, free_addr};

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
    let mut all = vec![("host", "differential.test")];
    all.extend_from_slice(headers);
    let resp = one_request(addr, method, path, &all, body.to_owned()).await;
    Observed {
        status: resp.status,
        headers: resp.headers,
        body: String::from_utf8(resp.body.to_vec()).unwrap(),
    }
}

/// Both proxies running the same topology.
struct Pair {
    envoy: Envoy,
    wasp: Wasp,
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
            wasp,
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

    // Both export the filter's counter under the name the filter gave it.
    let name = "sdk_features_requests_total";
    let (status, text) = pair.envoy.admin_get("/stats/prometheus").await.unwrap();
    assert_eq!(status, 200);
    let envoy_metrics = Metrics::parse(&text);
    let wasp_metrics = pair.wasp.metrics().await;
    assert_eq!(envoy_metrics.sum(name, &[]), 3.0, "{text}");
    assert_eq!(
        wasp_metrics.sum(name, &[]),
        envoy_metrics.sum(name, &[]),
        "{}",
        wasp_metrics.text
    );

    // The root context calls out on a tick; the answer reaches it.
    let (envoy, wasp) = eventually_both(&pair, &[("x-test", "tick-callout")], |seen| {
        seen.header("x-tick-callout") == Some("200")
    })
    .await;
    assert_same(&envoy, &wasp, &["x-tick-callout"]);
}

/// How the attribute table compares a value: exactly, or only by its shape
/// where the two proxies legitimately differ (addresses, ports, ids, times).
fn normalise(attribute: &str, hex: &str) -> String {
    if hex == "-" {
        return "missing".to_owned();
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match attribute {
        "request.time"
        | "request.duration"
        | "request.total_size"
        | "response.total_size"
        | "source.port"
        | "destination.port"
        | "connection.id" => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(int) if i64::from_le_bytes(int) >= 0 => "an integer".to_owned(),
            _ => format!("not an integer: {hex}"),
        },
        "source.address" | "destination.address" | "upstream.local_address" => {
            match text.parse::<SocketAddr>() {
                Ok(addr) => format!("{} port", addr.ip()),
                Err(_) => format!("not an address: {text}"),
            }
        }
        "request.id" if !bytes.is_empty() => "an id".to_owned(),
        "xds.node" => node_fields(&bytes),
        _ if bytes.len() == 8 && !text.chars().all(|c| c.is_ascii_graphic()) => {
            format!("int {}", i64::from_le_bytes(bytes.try_into().unwrap()))
        }
        _ => format!("{text:?}"),
    }
}

/// The `id`, `cluster` and `metadata` fields of a serialized
/// `envoy.config.core.v3.Node` (the proxies' other fields differ: user
/// agent, version, extensions).
fn node_fields(mut bytes: &[u8]) -> String {
    fn varint(bytes: &mut &[u8]) -> u64 {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let byte = bytes[0];
            *bytes = &bytes[1..];
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                break;
            }
        }
        value
    }
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes);
        let value = match key & 7 {
            0 => {
                varint(&mut bytes);
                continue;
            }
            2 => {
                let len = varint(&mut bytes) as usize;
                let (value, rest) = bytes.split_at(len);
                bytes = rest;
                value
            }
            wire => panic!("unexpected wire type {wire} in a node"),
        };
        if matches!(key >> 3, 1..=3) {
            fields.push(format!("{}={}", key >> 3, hex::encode(value)));
        }
    }
    fields.join(" ")
}

/// The attribute table the filter reported for one phase: attribute to
/// normalised value.
type Table = std::collections::BTreeMap<String, String>;

fn phase_from_headers(observed: &Observed, prefix: &str) -> Table {
    attribute_table::ATTRIBUTES
        .iter()
        .map(|attribute| {
            let name = format!("{prefix}{}", attribute.replace('.', "-"));
            let hex = observed
                .header(&name)
                .unwrap_or_else(|| panic!("{name} missing: {observed:?}"));
            (attribute.to_string(), normalise(attribute, hex))
        })
        .collect()
}

/// The log-phase table of the request with `x-seq: seq`, once its log ran.
async fn logged_phase(addr: SocketAddr, seq: &str) -> Table {
    for _ in 0..100 {
        let dump = send_with(addr, "GET", "/dump", &[("x-attributes", "dump")], "").await;
        if let Some(rest) = dump.body.strip_prefix(&format!("seq={seq}\n")) {
            return rest
                .lines()
                .map(|line| {
                    let (attribute, hex) = line.split_once('=').expect("name=value");
                    (attribute.to_owned(), normalise(attribute, hex))
                })
                .collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no log-phase table for request {seq}");
}

/// Every attribute Envoy documents (and its Wasm names), read in the request
/// headers, response headers and log phases by the same module in Envoy
/// and in wasp: after normalising addresses, ports, ids and times, the
/// tables agree except where listed (each difference is documented in the
/// README).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_table_matches_envoy() {
    let upstream = ChunkedEcho::start().await;
    let table = WasmPlugin::new("attributes", filter_module("attribute_table"), "");
    let config = EnvoyConfig::new(upstream.addr)
        .node("sidecar~127.0.0.1~web-1", "web", &[("ns", "prod")])
        .plugin(table);
    let pair = Pair::start(&config).await;
    let headers = [
        ("x-seq", "1"),
        ("user-agent", "attribute-test"),
        ("referer", "http://referer.test/"),
    ];
    let (envoy, wasp) = pair
        .send_with("POST", "/table?q=1", &headers, "twelve bytes")
        .await;
    assert_eq!(envoy.status, 200, "{envoy:?}");
    assert_eq!(wasp.status, 200, "{wasp:?}");
    let phases = [
        (
            "request headers",
            phase_from_headers(&envoy, "x-req-"),
            phase_from_headers(&wasp, "x-req-"),
        ),
        (
            "response headers",
            phase_from_headers(&envoy, "x-resp-"),
            phase_from_headers(&wasp, "x-resp-"),
        ),
        (
            "log",
            logged_phase(pair.envoy.addr(), "1").await,
            logged_phase(pair.wasp_addr, "1").await,
        ),
    ];
    let mut differences = Vec::new();
    for (phase, envoy, wasp) in &phases {
        assert_eq!(envoy.len(), attribute_table::ATTRIBUTES.len(), "{phase}");
        for (attribute, expected) in envoy {
            let got = &wasp[attribute];
            if got != expected {
                differences.push(format!("{phase} {attribute}: envoy {expected}, wasp {got}"));
            }
        }
    }
    // wasp answers more than Envoy: the request's headers stay readable in
    // the response phase, and `node.*` (a wasp name; Envoy 1.40 has only
    // `xds.node`). It does not know the upstream connection's local address.
    let mut expected = Vec::new();
    for phase in ["request headers", "response headers", "log"] {
        for (attribute, value) in [
            ("node.cluster", "\"web\""),
            ("node.id", "\"sidecar~127.0.0.1~web-1\""),
            ("node.metadata.ns", "\"prod\""),
        ] {
            expected.push(format!("{phase} {attribute}: envoy missing, wasp {value}"));
        }
    }
    for (attribute, value) in [
        ("request.host", "\"differential.test\""),
        ("request.id", "an id"),
        ("request.method", "\"POST\""),
        ("request.path", "\"/table?q=1\""),
        ("request.query", "\"q=1\""),
        ("request.referer", "\"http://referer.test/\""),
        ("request.scheme", "\"http\""),
        ("request.url_path", "\"/table\""),
        ("request.useragent", "\"attribute-test\""),
    ] {
        expected.push(format!(
            "response headers {attribute}: envoy missing, wasp {value}"
        ));
    }
    expected.sort();
    differences.sort();
    assert_eq!(differences, expected, "{phases:#?}");
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
