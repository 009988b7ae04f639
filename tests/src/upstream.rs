//! A controllable upstream HTTP server (HTTP/1.1 and h2c on one port): it
//! echoes the request as JSON, counts requests, connections and body bytes,
//! and can be told to answer a status, fail with a probability, hang, delay
//! or reset the connection, or stream a large, slow or truncated generated
//! answer. `/healthz` answers for active health checks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Request bodies up to this size are echoed as text (`body`); larger ones
/// only by length (`body_len`).
pub const ECHOED_BODY_LIMIT: u64 = 64 * 1024;

/// How the upstream answers requests (other than `/healthz`).
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// 200 with the request echoed as JSON: `name`, `method`, `path`,
    /// `query`, `uri`, `host`, `version`, `headers`, `body_len` and `body`
    /// (up to [`ECHOED_BODY_LIMIT`] bytes, else null).
    Echo,
    /// This status, with the echo body.
    Status(u16),
    /// `status` with probability `probability`, otherwise an echo.
    Flaky {
        /// Chance of failing, 0.0–1.0.
        probability: f64,
        /// Status of a failure.
        status: u16,
    },
    /// Never answer.
    Hang,
    /// Echo after this delay.
    Delay(Duration),
    /// Close the connection without answering.
    Reset,
}

/// Request headers that override the mode for one request.
pub mod control {
    /// Answer after this many milliseconds.
    pub const DELAY_MS: &str = "x-test-delay-ms";
    /// Answer with this status.
    pub const STATUS: &str = "x-test-status";
    /// Add `connection: x-test-hop` and `x-test-hop: 1` (a hop-by-hop header) to the response.
    pub const HOP_RESPONSE: &str = "x-test-hop-response";
    /// Answer with a streamed body of this many bytes instead of the echo.
    pub const RESPONSE_BYTES: &str = "x-test-response-bytes";
    /// With `RESPONSE_BYTES`: pause this many milliseconds before each chunk.
    pub const CHUNK_DELAY_MS: &str = "x-test-chunk-delay-ms";
    /// With `RESPONSE_BYTES`: announce the full length, then break the
    /// connection after this many bytes.
    pub const TRUNCATE_AT: &str = "x-test-truncate-at";
}

struct State {
    name: String,
    mode: Mutex<Mode>,
    hits: AtomicU64,
    connections: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    cancelled: AtomicU64,
    body_bytes: AtomicU64,
    healthy: AtomicBool,
    health_checks: AtomicU64,
    /// The echo of every request received, in order of arrival.
    requests: Mutex<Vec<serde_json::Value>>,
}

/// How an upstream is started.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Listen here instead of on a free port (to restart on the same address).
    pub addr: Option<SocketAddr>,
    /// Speak only HTTP/2 (h2c prior knowledge), as gRPC servers do.
    pub http2_only: bool,
}

/// A running upstream; when dropped it stops accepting and closes every
/// connection, as a process that went away would.
pub struct Upstream {
    /// The address it listens on.
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Starts an echoing upstream named `name` on a free loopback port.
    pub async fn start(name: &str) -> Upstream {
        Self::start_with(name, Mode::Echo).await
    }

    /// Starts an upstream in `mode`.
    pub async fn start_with(name: &str, mode: Mode) -> Upstream {
        Self::start_opts(name, mode, Options::default()).await
    }

    /// Starts an upstream in `mode` with `options`.
    pub async fn start_opts(name: &str, mode: Mode, options: Options) -> Upstream {
        let bind = options
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let socket = TcpListener::bind(bind).await.expect("bind upstream");
        let addr = socket.local_addr().expect("upstream address");
        let state = Arc::new(State {
            name: name.to_owned(),
            mode: Mutex::new(mode),
            hits: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            cancelled: AtomicU64::new(0),
            body_bytes: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            health_checks: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept_loop(socket, Arc::clone(&state), options.http2_only));
        Upstream { addr, state, task }
    }

    /// The name it reports in its answers.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Changes how it answers.
    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().expect("mode lock") = mode;
    }

    /// Makes `/healthz` answer 200 (`true`) or 503 (`false`).
    pub fn set_healthy(&self, healthy: bool) {
        self.state.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Requests received (other than `/healthz`).
    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Health-check requests received.
    pub fn health_checks(&self) -> u64 {
        self.state.health_checks.load(Ordering::SeqCst)
    }

    /// Connections accepted.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests handled at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests dropped by the client before they were answered.
    pub fn cancelled(&self) -> u64 {
        self.state.cancelled.load(Ordering::SeqCst)
    }

    /// Request body bytes received.
    pub fn body_bytes(&self) -> u64 {
        self.state.body_bytes.load(Ordering::SeqCst)
    }

    /// The echo (see [`Mode::Echo`]) of every request received so far,
    /// recorded once its body has arrived, whatever the mode.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.state.requests.lock().expect("requests lock").clone()
    }

    /// Waits up to 10 s until `n` requests have been recorded whole and
    /// returns them: [`Upstream::hits`] counts a request when its head
    /// arrives, the record follows once its body has.
    pub async fn wait_requests(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {} of {n} requests recorded",
                self.state.name,
                requests.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Sets the counters back to zero.
    pub fn reset_counts(&self) {
        self.state.hits.store(0, Ordering::SeqCst);
        self.state.max_in_flight.store(0, Ordering::SeqCst);
        self.state.cancelled.store(0, Ordering::SeqCst);
        self.state.body_bytes.store(0, Ordering::SeqCst);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(socket: TcpListener, state: Arc<State>, http2_only: bool) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(10_000);
    let builder = Arc::new(if http2_only {
        builder.http2_only()
    } else {
        builder
    });
    // Connections live in this set: aborting the loop closes them all.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = socket.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        state.connections.fetch_add(1, Ordering::SeqCst);
        let state = Arc::clone(&state);
        let builder = Arc::clone(&builder);
        connections.spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&state), req));
            let io = TokioIo::new(stream);
            // `http2_only` is honoured by `serve_connection` only.
            let _ = if http2_only {
                builder.serve_connection(io, service).await
            } else {
                builder.serve_connection_with_upgrades(io, service).await
            };
        });
    }
}

/// Counts a request in flight; a drop before `finish` counts a cancellation.
struct InFlight {
    state: Arc<State>,
    finished: bool,
}

impl InFlight {
    fn new(state: &Arc<State>) -> InFlight {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight {
            state: Arc::clone(state),
            finished: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.state.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Why a request was answered by closing the connection.
#[derive(Debug)]
struct ResetRequested;

impl std::fmt::Display for ResetRequested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reset requested")
    }
}

impl std::error::Error for ResetRequested {}

/// The body of the upstream's answers.
type ResponseBody = BoxBody<Bytes, BoxError>;

/// Errors of the upstream's answer bodies.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, ResetRequested> {
    if req.uri().path() == "/healthz" {
        state.health_checks.fetch_add(1, Ordering::SeqCst);
        let status = if state.healthy.load(Ordering::SeqCst) {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut response = Response::new(full(Bytes::from(state.name.clone())));
        *response.status_mut() = status;
        return Ok(response);
    }
    state.hits.fetch_add(1, Ordering::SeqCst);
    let mut guard = InFlight::new(&state);
    let mode = state.mode.lock().expect("mode lock").clone();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let delay = header(control::DELAY_MS).and_then(|v| v.parse::<u64>().ok());
    let forced_status = header(control::STATUS).and_then(|v| v.parse::<u16>().ok());
    let hop = header(control::HOP_RESPONSE).is_some();
    let response_bytes = header(control::RESPONSE_BYTES).and_then(|v| v.parse::<u64>().ok());
    let chunk_delay = header(control::CHUNK_DELAY_MS)
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis);
    let truncate_at = header(control::TRUNCATE_AT).and_then(|v| v.parse::<u64>().ok());

    let (parts, body) = req.into_parts();
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let mut body_len = 0u64;
    let mut body_text = Vec::new();
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            break;
        };
        if let Some(data) = frame.data_ref() {
            body_len += data.len() as u64;
            if body_len <= ECHOED_BODY_LIMIT {
                body_text.extend_from_slice(data);
            }
            state
                .body_bytes
                .fetch_add(data.len() as u64, Ordering::SeqCst);
        }
    }

    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    let echo = serde_json::json!({
        "name": state.name,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "uri": parts.uri.to_string(),
        "host": host,
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": body_len,
        "body": (body_len <= ECHOED_BODY_LIMIT).then(|| String::from_utf8_lossy(&body_text)),
    });
    state
        .requests
        .lock()
        .expect("requests lock")
        .push(echo.clone());
    let mut status = StatusCode::OK;
    match mode {
        Mode::Echo => {}
        Mode::Status(code) => status = StatusCode::from_u16(code).expect("status"),
        Mode::Flaky {
            probability,
            status: code,
        } => {
            if fastrand::f64() < probability {
                status = StatusCode::from_u16(code).expect("status");
            }
        }
        Mode::Hang => std::future::pending::<()>().await,
        Mode::Delay(delay) => tokio::time::sleep(delay).await,
        Mode::Reset => {
            guard.finished = true;
            return Err(ResetRequested);
        }
    }
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(code) = forced_status {
        status = StatusCode::from_u16(code).expect("status");
    }

    let body = match response_bytes {
        Some(total) => generated(total, chunk_delay, truncate_at),
        None => full(Bytes::from(echo.to_string())),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    if response_bytes.is_none() {
        h.insert("content-type", "application/json".parse().expect("value"));
    }
    if let (Some(total), Some(_)) = (response_bytes, truncate_at) {
        h.insert("content-length", total.into());
    }
    h.insert("x-upstream", state.name.parse().expect("upstream name"));
    if hop && parts.version == http::Version::HTTP_11 {
        h.insert("connection", "x-test-hop".parse().expect("value"));
        h.insert("x-test-hop", "1".parse().expect("value"));
        h.insert("keep-alive", "timeout=30".parse().expect("value"));
    }
    guard.finished = true;
    Ok(response)
}

fn full(bytes: Bytes) -> ResponseBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// Why a generated body stopped early.
#[derive(Debug)]
struct Truncated;

impl std::fmt::Display for Truncated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("body truncated on purpose")
    }
}

impl std::error::Error for Truncated {}

/// A body of `total` bytes produced in 64 KiB chunks as it is read, each
/// after `delay`; with `truncate_at`, an error after that many bytes.
fn generated(total: u64, delay: Option<Duration>, truncate_at: Option<u64>) -> ResponseBody {
    const CHUNK: u64 = 64 * 1024;
    let chunk = Bytes::from(vec![b'd'; CHUNK as usize]);
    let stream = futures_util::stream::unfold(0u64, move |sent| {
        let chunk = chunk.clone();
        async move {
            if sent >= total {
                return None;
            }
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            if truncate_at.is_some_and(|at| sent >= at) {
                return Some((Err(BoxError::from(Truncated)), total));
            }
            let limit = truncate_at.map_or(total, |at| at.min(total));
            let n = CHUNK.min(limit - sent).max(1).min(total - sent);
            Some((Ok(Frame::data(chunk.slice(..n as usize))), sent + n))
        }
    });
    StreamBody::new(stream).boxed()
}
