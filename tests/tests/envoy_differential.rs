//! Differential tests: the same filter module, the same request, the same
//! observed result in Envoy (the reference, V8 runtime) and in wasp. The
//! filters come from `scripts/build-filters.sh` (target/filters/*.wasm).
//!
//! The upstream answers every request with a body sent in three separate
//! chunks, so body-buffering filters see more than one body callback.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use wasp_e2e::envoy::{Envoy, EnvoyConfig, WasmPlugin};

/// The upstream's body, in the chunks it sends.
const CHUNKS: [&str; 3] = ["hello ", "from the ", "upstream"];

/// Response header in which the upstream echoes the request's `x-bench-rewrite`.
const ECHO_HEADER: &str = "x-upstream-saw-bench-rewrite";

/// Response header in which the upstream echoes the request body it received.
const ECHO_BODY: &str = "x-upstream-saw-body";

/// A module built by scripts/build-filters.sh.
fn module(lib_name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/filters")
        .join(format!("{lib_name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-filters.sh first",
        path.display()
    );
    path
}

/// Starts the upstream on a free loopback port.
async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: http::Request<hyper::body::Incoming>| async move {
                        let saw = request
                            .headers()
                            .get("x-bench-rewrite")
                            .map(|v| v.to_str().unwrap_or("?").to_owned())
                            .unwrap_or_else(|| "none".into());
                        let body = request.into_body().collect().await?.to_bytes();
                        let body = String::from_utf8_lossy(&body).into_owned();
                        let chunks = futures_util::stream::unfold(0, |i| async move {
                            if i >= CHUNKS.len() {
                                return None;
                            }
                            if i > 0 {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            let frame = Frame::data(Bytes::from_static(CHUNKS[i].as_bytes()));
                            Some((Ok::<_, Infallible>(frame), i + 1))
                        });
                        let response = http::Response::builder()
                            .header(ECHO_HEADER, saw)
                            .header(ECHO_BODY, body)
                            .body(StreamBody::new(chunks))
                            .unwrap();
                        Ok::<_, hyper::Error>(response)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

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

/// Sends one request through a proxy listening on `addr`.
async fn send(addr: SocketAddr, method: &str, path: &str, body: &str) -> Observed {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "differential.test")
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

async fn envoy(config: EnvoyConfig) -> Envoy {
    match Envoy::start(&config).await {
        Ok(envoy) => envoy,
        Err(e) => panic!("starting Envoy: {e:#}"),
    }
}

/// The template filter's configured response header reaches the client.
#[tokio::test]
async fn template_filter_adds_its_header() {
    let upstream = upstream().await;
    let template = WasmPlugin::new(
        "add-header",
        module("wasp_filter_template"),
        r#"{"header": "x-served-by", "value": "differential"}"#,
    );
    let envoy = envoy(EnvoyConfig::new(upstream).plugin(template)).await;
    let seen = send(envoy.addr(), "GET", "/template", "").await;
    assert_eq!(seen.status, 200, "{seen:?}");
    assert_eq!(seen.header("x-served-by"), Some("differential"));
    assert_eq!(seen.body, CHUNKS.concat());
    assert_eq!(seen.header(ECHO_HEADER), Some("none"));
}

/// A rejected plugin configuration keeps Envoy from starting.
#[tokio::test]
async fn template_filter_rejects_a_bad_configuration() {
    let upstream = upstream().await;
    let template = WasmPlugin::new(
        "add-header",
        module("wasp_filter_template"),
        r#"{"header": "bad name", "value": "x"}"#,
    );
    let error = match Envoy::start(&EnvoyConfig::new(upstream).plugin(template)).await {
        Ok(_) => panic!("Envoy accepted a configuration the filter rejects"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("not a valid header name"), "{error}");
}

/// bench-rewrite: buffers both bodies across chunks and upper-cases them;
/// adds its header on the request (seen by the upstream) and the response.
#[tokio::test]
async fn rewrite_filter_rewrites_headers_and_bodies() {
    let upstream = upstream().await;
    let rewrite = WasmPlugin::new("rewrite", module("bench_rewrite"), "");
    let envoy = envoy(EnvoyConfig::new(upstream).plugin(rewrite)).await;
    let seen = send(envoy.addr(), "POST", "/rewrite", "request body").await;
    assert_eq!(seen.status, 200, "{seen:?}");
    assert_eq!(seen.body, CHUNKS.concat().to_ascii_uppercase());
    assert_eq!(seen.header(ECHO_BODY), Some("REQUEST BODY"));
    let counted = |v: Option<&str>| v.and_then(|v| v.parse::<usize>().ok());
    assert!(
        counted(seen.header(ECHO_HEADER)).is_some_and(|n| n >= 4),
        "{seen:?}"
    );
    assert!(
        counted(seen.header("x-bench-rewrite")).is_some_and(|n| n >= 2),
        "{seen:?}"
    );
}

/// A chain of ten no-op filters changes nothing.
#[tokio::test]
async fn noop_chain_passes_everything_through() {
    let upstream = upstream().await;
    let mut config = EnvoyConfig::new(upstream);
    for i in 0..10 {
        config = config.plugin(WasmPlugin::new(
            &format!("noop-{i}"),
            module("bench_noop"),
            "",
        ));
    }
    let envoy = envoy(config).await;
    let seen = send(envoy.addr(), "POST", "/noop", "request body").await;
    assert_eq!(seen.status, 200, "{seen:?}");
    assert_eq!(seen.header(ECHO_BODY), Some("request body"));
    assert_eq!(seen.body, CHUNKS.concat());
    assert_eq!(seen.header(ECHO_HEADER), Some("none"));
}
