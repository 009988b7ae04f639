//! The HTTP/1.1 request path under fuzzing: the input is written as raw
//! bytes on a fresh client connection to a live proxy (the real connection
//! code, hyper's server, routing, forwarding) whose one cluster is a
//! recording upstream; then the client half-closes and reads to the end.
//!
//! Properties, checked once nothing is in flight:
//! - the upstream never sees more requests than the proxy sent (a request
//!   the proxy did not frame as one, smuggled in a body or header block,
//!   would show as one more), and never a request it cannot parse;
//! - whatever the client reads starts as an HTTP/1.x response (unless the
//!   input opens with the HTTP/2 preface: h2c with prior knowledge);
//! - nothing panics or hangs (each input is bounded in time).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::snapshot::Snapshot;
use crate::state::ProxyState;
use crate::telemetry::Metrics;
use crate::wasm::PluginLoader;
use crate::wasm::modules::FileModules;

/// The address the proxy's listener is configured at; connections are
/// accepted by the harness and handed to the listener's connection code.
const LISTENER: &str = "127.0.0.1:9";

/// What the recording upstream saw.
#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    in_flight: AtomicU64,
    parse_errors: AtomicU64,
}

struct Harness {
    runtime: Runtime,
    state: Arc<ProxyState>,
    front: TcpListener,
    seen: Arc<Seen>,
}

async fn upstream(listener: TcpListener, seen: Arc<Seen>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let counter = Arc::clone(&seen);
            let service = service_fn(move |request: Request<Incoming>| {
                let seen = Arc::clone(&counter);
                async move {
                    seen.requests.fetch_add(1, Ordering::SeqCst);
                    seen.in_flight.fetch_add(1, Ordering::SeqCst);
                    let body = request.into_body().collect().await;
                    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
                    let len = body.map(|b| b.to_bytes().len()).unwrap_or_default();
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                        format!("upstream read {len} bytes"),
                    ))))
                }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(err) = served
                && err.is_parse()
            {
                seen.parse_errors.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
}

fn config(upstream: SocketAddr) -> String {
    format!(
        r#"
listeners:
  - name: fuzz
    address: {LISTENER}
    request_timeout: 2s
    stream_idle_timeout: 2s
    routes:
      - match: {{ prefix: /direct }}
        direct_response: {{ status: 200, body: direct }}
      - match: {{ prefix: /ws }}
        route: {{ cluster: app, upgrade: [websocket] }}
      - match: {{ prefix: / }}
        route: {{ cluster: app, timeout: 2s }}
clusters:
  - name: app
    endpoints: ["{upstream}"]
"#
    )
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (state, front, seen) = runtime.block_on(async {
            let seen = Arc::new(Seen::default());
            let up = TcpListener::bind("127.0.0.1:0").await.expect("upstream");
            let up_addr = up.local_addr().expect("address");
            tokio::spawn(upstream(up, Arc::clone(&seen)));
            let metrics = Arc::new(Metrics::new());
            let plugins = PluginLoader {
                engine: crate::server::filter_engine(&metrics).expect("engine"),
                modules: Arc::new(FileModules),
                node: crate::wasm::node::NodeOverrides::default(),
                clusters: Arc::default(),
            };
            let config = wasp_config::parse(&config(up_addr)).expect("harness configuration");
            let mesh = crate::mesh::MeshIdentity::new();
            let snapshot = Snapshot::build(config, 1, None, &metrics, &plugins, &mesh)
                .await
                .expect("snapshot");
            let front = TcpListener::bind("127.0.0.1:0").await.expect("front");
            (ProxyState::new(snapshot, metrics), front, seen)
        });
        Harness {
            runtime,
            state,
            front,
            seen,
        }
    })
}

fn sent_upstream(metrics: &Metrics) -> u64 {
    use prometheus::core::Collector;
    metrics
        .upstream_endpoint_rq
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

fn active(metrics: &Metrics) -> i64 {
    use prometheus::core::Collector;
    metrics
        .active_requests
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_gauge().get_value() as i64)
        .sum()
}

/// Requests the recording upstream has seen so far (replay tests check the
/// harness forwards at all).
#[cfg(test)]
pub(crate) fn upstream_seen() -> u64 {
    harness().seen.requests.load(Ordering::SeqCst)
}

/// Runs one input (see the module docs).
pub fn h1_request(data: &[u8]) {
    let h = harness();
    h.runtime.block_on(async {
        let address: SocketAddr = LISTENER.parse().expect("address");
        let mut client = TcpStream::connect(h.front.local_addr().expect("front"))
            .await
            .expect("connect");
        let (server, peer) = h.front.accept().await.expect("accept");
        let (_shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
        let serving = tokio::spawn(crate::listener::conn::serve(
            Arc::clone(&h.state),
            address,
            server,
            peer,
            shutdown,
            CancellationToken::new(),
        ));
        let exchange = async {
            let _ = client.write_all(data).await;
            let _ = client.shutdown().await;
            let mut received = Vec::new();
            let _ = client.read_to_end(&mut received).await;
            received
        };
        let received = tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .unwrap_or_default();
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;
        // Let forwarded requests finish (or fail) on both sides.
        let start = Instant::now();
        while (active(&h.state.metrics) > 0 || h.seen.in_flight.load(Ordering::SeqCst) > 0)
            && start.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let seen = h.seen.requests.load(Ordering::SeqCst);
        let sent = sent_upstream(&h.state.metrics);
        assert!(
            seen <= sent,
            "the upstream saw {seen} requests, the proxy sent {sent}: a request was smuggled"
        );
        assert_eq!(
            h.seen.parse_errors.load(Ordering::SeqCst),
            0,
            "the upstream could not parse what the proxy sent"
        );
        assert!(
            received.is_empty()
                || received.starts_with(b"HTTP/1.")
                // h2c with prior knowledge is served as HTTP/2.
                || data.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            "the client read something other than a response: {:?}",
            String::from_utf8_lossy(&received[..received.len().min(200)])
        );
    });
}
