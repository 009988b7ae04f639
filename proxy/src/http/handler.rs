//! The per-request service: take the current snapshot, route, then answer
//! locally or forward upstream and stream the response back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;

use super::body::{Completion, ProxyBody, upstream_body};
use super::{headers, local, upgrade};
use crate::config::UpstreamProtocol;
use crate::router::{Forward, RequestView, RouteAction};
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
    /// `http` or `https`.
    pub scheme: &'static str,
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
        client: Arc::clone(&conn.client_ip),
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
            match &route.action {
                RouteAction::Direct { status, body } => {
                    let mut response = local::text(*status, body.clone());
                    if body.is_empty() {
                        response.headers_mut().remove(http::header::CONTENT_TYPE);
                    }
                    response
                }
                RouteAction::Redirect(redirect) => local::redirect(
                    redirect,
                    conn.scheme,
                    headers::request_authority(req.uri(), req.headers()).unwrap_or(host),
                    req.uri().path(),
                    req.uri().query(),
                ),
                RouteAction::Forward(forward) => {
                    forward_request(&conn, forward, req, &mut completion).await
                }
            }
        }
    };
    completion.status = response.status().as_u16();
    Ok(response.map(|body| body.with_completion(completion)))
}

async fn forward_request(
    conn: &ConnInfo,
    forward: &Forward,
    mut req: Request<Incoming>,
    completion: &mut Completion,
) -> Response<ProxyBody> {
    let cluster = forward.target.pick();
    completion.cluster = Some(Arc::clone(&cluster.name));
    let endpoint = match cluster.pick() {
        Ok(endpoint) => endpoint,
        Err(err) => return local::upstream_error(&err),
    };
    completion.upstream = Some(endpoint.addr);

    let upgrading = req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers());
    let downstream_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();

    headers::strip_hop_by_hop(&mut parts.headers, upgrading);
    headers::add_forwarded(&mut parts.headers, &conn.client_ip, conn.scheme);

    let authority = forward
        .host_rewrite
        .clone()
        .or_else(|| {
            headers::request_authority(&parts.uri, &parts.headers)
                .and_then(|a| HeaderValue::from_str(a).ok())
        })
        .unwrap_or_else(|| {
            HeaderValue::from_str(&endpoint.addr.to_string()).expect("an address is a valid header")
        });
    let path = rewrite_path(parts.uri.path_and_query(), forward);

    match cluster.protocol() {
        UpstreamProtocol::Http1 => {
            parts.version = Version::HTTP_11;
            parts.uri = Uri::from(path);
            parts.headers.insert(HOST, authority);
        }
        UpstreamProtocol::Http2 => {
            parts.version = Version::HTTP_2;
            parts.headers.remove(HOST);
            let mut uri = http::uri::Parts::default();
            uri.scheme = Some(Scheme::HTTP);
            uri.authority = Authority::try_from(authority.as_bytes()).ok();
            uri.path_and_query = Some(path);
            parts.uri = Uri::from_parts(uri).unwrap_or_else(|_| Uri::from_static("/"));
        }
    }

    let upstream_req = Request::from_parts(parts, upstream_body(body));
    let sent = if upgrading {
        cluster.send_upgrade(&endpoint, upstream_req).await
    } else {
        cluster.send(&endpoint, upstream_req).await
    };
    completion.upstream_duration = Some(completion.start.elapsed());
    let mut response = match sent {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(cluster = %cluster.name, error = %err, "upstream request failed");
            return local::upstream_error(&err);
        }
    };
    let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(downstream)) = (switching, downstream_upgrade) {
        upgrade::spawn_tunnel(downstream, hyper::upgrade::on(&mut response));
    }
    headers::strip_hop_by_hop(response.headers_mut(), switching);
    *response.version_mut() = Version::HTTP_11;
    response.map(ProxyBody::upstream)
}

/// The upstream path: the route's prefix rewrite applied, query kept.
fn rewrite_path(original: Option<&PathAndQuery>, forward: &Forward) -> PathAndQuery {
    let original = original
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let Some((prefix, replacement)) = &forward.prefix_rewrite else {
        return original;
    };
    let Some(rest) = original.path().strip_prefix(prefix.as_str()) else {
        return original;
    };
    let mut rewritten = String::with_capacity(replacement.len() + rest.len() + 1);
    rewritten.push_str(replacement);
    // Avoid `//` when both the replacement ends and the remainder starts with '/'.
    if replacement.ends_with('/') && rest.starts_with('/') {
        rewritten.push_str(&rest[1..]);
    } else {
        rewritten.push_str(rest);
    }
    if rewritten.is_empty() {
        rewritten.push('/');
    }
    if let Some(query) = original.query() {
        rewritten.push('?');
        rewritten.push_str(query);
    }
    PathAndQuery::try_from(rewritten).unwrap_or(original)
}
