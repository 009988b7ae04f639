//! The per-request service: take the current snapshot, route, then answer
//! locally or forward upstream and stream the response back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use http::{Request, Response};
use hyper::body::Incoming;

use http_body_util::BodyExt;

use super::body::{BoxError, Completion, ProxyBody};
use super::{headers, local};
use crate::router::{RequestView, RouteAction};
use crate::server::ProxyState;
use crate::snapshot::ListenerRuntime;

/// What the request path knows about the downstream connection.
pub struct ConnInfo {
    /// The address of the listener that accepted it.
    pub address: SocketAddr,
    /// The listener as it was at accept, used if a reload removed it.
    pub fallback: Arc<ListenerRuntime>,
    /// The client's address.
    pub client: SocketAddr,
    /// The client's IP as text.
    pub client_ip: Arc<str>,
    /// The client's IP as a header value (`x-forwarded-for`).
    pub client_ip_header: http::HeaderValue,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// When the connection was accepted.
    pub accepted: std::time::Instant,
    /// Requests in flight on this connection.
    pub in_flight: AtomicUsize,
    /// Milliseconds after `accepted` of the last request start or end.
    pub last_active_ms: AtomicU64,
    /// Process-unique connection id (`connection.id` for filters).
    pub id: u64,
    /// TLS facts once the handshake completed (for filter properties).
    pub tls: std::sync::OnceLock<wasp_filter_host::TlsInfo>,
}

impl ConnInfo {
    /// Marks activity now (a request started or finished).
    pub fn touch(&self) {
        self.last_active_ms.store(
            self.accepted.elapsed().as_millis() as u64,
            Ordering::Relaxed,
        );
    }

    /// Time since the last request started or finished.
    pub fn idle_for(&self) -> std::time::Duration {
        let last = std::time::Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        self.accepted.elapsed().saturating_sub(last)
    }
}

/// Serves one request. Never fails: errors become responses.
pub async fn handle(
    state: Arc<ProxyState>,
    conn: Arc<ConnInfo>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let start = Instant::now();
    let snapshot = state.snapshot.load_full();
    let listener = snapshot
        .by_address
        .get(&conn.address)
        .unwrap_or(&conn.fallback)
        .clone();
    listener.active_requests.inc();
    conn.in_flight.fetch_add(1, Ordering::Relaxed);
    conn.touch();
    let request_id = headers::ensure_request_id(req.headers_mut());
    let mut completion = Completion {
        metrics: Arc::clone(&state.metrics),
        active: listener.active_requests.clone(),
        access_log: listener.access_log,
        start,
        listener: Arc::clone(&listener.name),
        route: None,
        cluster: None,
        status: 0,
        upstream: None,
        upstream_duration: None,
        bytes_sent: 0,
        method: req.method().clone(),
        path: req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        version: req.version(),
        request_id,
        conn: Arc::clone(&conn),
        cluster_request: None,
        endpoint_request: None,
        retry: None,
    };

    let host = headers::request_host(req.uri(), req.headers());
    let view = RequestView {
        host,
        path: req.uri().path(),
        query: req.uri().query(),
        method: req.method(),
        headers: req.headers(),
    };
    let response = match listener.routes.find(&view) {
        None => local::no_route(host, req.uri().path()),
        Some(route) => {
            completion.route = Some(Arc::clone(&route.name));
            match (&route.filter_chain, &route.action) {
                (Some(chain), _) => {
                    super::filtered::serve(chain, &conn, route, req, &mut completion).await
                }
                (None, RouteAction::Forward(forward)) => {
                    let req = req.map(|body| body.map_err(BoxError::from).boxed_unsync());
                    super::forward::forward(&conn, forward, req, &mut completion).await
                }
                (None, action) => action_response(action, &conn, req.uri(), req.headers())
                    .unwrap_or_else(|| local::text(http::StatusCode::INTERNAL_SERVER_ERROR, "")),
            }
        }
    };
    completion.status = response.status().as_u16();
    Ok(response.map(|body| body.with_completion(completion)))
}

/// The response of a route that answers itself (direct response, redirect);
/// `None` for a forwarding route.
pub fn action_response(
    action: &RouteAction,
    conn: &ConnInfo,
    uri: &http::Uri,
    request_headers: &http::HeaderMap,
) -> Option<Response<ProxyBody>> {
    match action {
        RouteAction::Direct { status, body } => {
            let mut response = local::text(*status, body.clone());
            if body.is_empty() {
                response.headers_mut().remove(http::header::CONTENT_TYPE);
            }
            Some(response)
        }
        RouteAction::Redirect(redirect) => {
            let host = headers::request_host(uri, request_headers);
            Some(local::redirect(
                redirect,
                conn.scheme,
                headers::request_authority(uri, request_headers).unwrap_or(host),
                uri.path(),
                uri.query(),
            ))
        }
        RouteAction::Forward(_) => None,
    }
}
