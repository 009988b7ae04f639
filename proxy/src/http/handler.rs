//! The per-request service: take the current snapshot, admit the request
//! (`admission`), route, pass the route's filter chain, run the route's action (forward upstream, answer
//! directly, redirect) and stream the response back. Errors become
//! responses in `http::local`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};

use super::body::ProxyBody;
use super::chain::ChainPass;
use super::downstream::DownstreamBody;
use super::error::{DIRECT_RESPONSE, ProxyError, VIA_UPSTREAM};
use super::timeout::StreamTimer;
use super::{admission, forward, headers, local, upgrade};
use crate::body::{BoxError, UpstreamBody};
use crate::conn::ConnInfo;
use crate::router::egress::Decision;
use crate::router::{RequestView, Route, RouteAction};
use crate::snapshot::ListenerRuntime;
use crate::state::ProxyState;
use crate::telemetry::Completion;
use crate::upstream::RequestGuard;

/// Serves one request on a connection accepted by the listener named
/// `accepted_by`. Never fails: errors become responses.
///
/// The request takes the snapshot current when it starts and the listener
/// on its connection's address in it; the connection itself holds no
/// snapshot, so an old one (its routes, filter chains and VMs) is freed when
/// its last request ends. A listener a reload removed answers 503 with
/// `connection: close` (its connections are draining).
///
/// The listener passes hyper's `Incoming`; any body of `Bytes` will do (the
/// in-process tests pass `Full` and `Empty`).
pub async fn handle<B>(
    state: Arc<ProxyState>,
    conn: Arc<ConnInfo>,
    accepted_by: Arc<str>,
    mut req: Request<B>,
) -> Result<Response<ProxyBody>, Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let start = Instant::now();
    let listener = state.snapshot.load().by_address.get(&conn.address).cloned();
    let Some(listener) = listener else {
        return Ok(local::error(&ProxyError::ListenerRemoved {
            listener: accepted_by,
        }));
    };
    listener.active_requests.inc();
    conn.request_started();
    // Checked as the client sent it, before the proxy adds anything.
    let admitted = admission::check(&req, &listener.header_limits);
    let request_id = headers::ensure_request_id(req.headers_mut());
    // Only the access log reads it from the record: no copy without one.
    let request_id = listener.access_log.then(|| request_id.clone());
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
        // Only the access log reads it: no copy per request without one.
        path: if listener.access_log {
            req.uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned()
        } else {
            String::new()
        },
        version: req.version(),
        request_id,
        conn: Arc::clone(&conn),
        facts: None,
    };
    let mut upstream = RequestGuard::default();
    let mut timer = StreamTimer::start(&listener.timeouts);

    let response = if let Err(refused) = admitted {
        tracing::debug!(error = %refused, "request refused");
        completion.set_response(refused.code_details(), refused.response_flags());
        local::error(&refused)
    } else {
        let activity = timer.as_ref().map(StreamTimer::activity);
        let req = req.map(|body| DownstreamBody::new(body, activity));
        let routed = route(&listener, &conn, req, &mut completion, &mut upstream);
        let outcome = match &mut timer {
            None => Ok(routed.await),
            Some(timer) => tokio::select! {
                response = routed => Ok(response),
                expired = timer.expired() => Err(ProxyError::from(expired)),
            },
        };
        outcome.unwrap_or_else(|expired| {
            tracing::debug!(error = %expired, "request timed out");
            completion.set_response(expired.code_details(), expired.response_flags());
            local::error(&expired)
        })
    };
    completion.status = response.status().as_u16();
    Ok(response.map(|body| {
        body.with_upstream(upstream)
            .with_completion(completion)
            .with_timer(timer)
    }))
}

/// Port of a request authority without one (outbound listeners speak
/// plain HTTP).
const DEFAULT_HTTP_PORT: u16 = 80;

/// Routes an admitted request and serves it along its route (404 when no
/// route matches, or the egress policy's decision on an outbound listener).
async fn route<B>(
    listener: &ListenerRuntime,
    conn: &ConnInfo,
    req: Request<B>,
    completion: &mut Completion,
    upstream: &mut RequestGuard,
) -> Response<ProxyBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let host = headers::request_host(req.uri(), req.headers());
    let view = RequestView {
        host,
        path: req.uri().path(),
        query: req.uri().query(),
        method: req.method(),
        headers: req.headers(),
    };
    match listener.routes.find(&view) {
        None if listener.egress.is_some() => {
            let authority = headers::request_authority(req.uri(), req.headers())
                .unwrap_or_default()
                .to_owned();
            let egress = listener.egress.as_ref().expect("checked");
            // Boxed: only requests to unlisted hosts resolve, and every
            // request's future holds the largest state of its path.
            match Box::pin(egress.resolve(&authority, DEFAULT_HTTP_PORT)).await {
                Decision::Route(route) => {
                    completion.route = Some(Arc::clone(&route.name));
                    let trusted_hops = listener.trusted_hops;
                    serve(&route, conn, trusted_hops, req, completion, upstream).await
                }
                Decision::Deny(host) => {
                    let err = ProxyError::EgressDenied { host };
                    completion.set_response(err.code_details(), err.response_flags());
                    local::error(&err)
                }
            }
        }
        None => {
            let err = ProxyError::NoRoute {
                host: host.to_owned(),
                path: req.uri().path().to_owned(),
            };
            completion.set_response(err.code_details(), err.response_flags());
            local::error(&err)
        }
        Some(route) => {
            completion.route = Some(Arc::clone(&route.name));
            let trusted_hops = listener.trusted_hops;
            serve(route, conn, trusted_hops, req, completion, upstream).await
        }
    }
}

/// A routed request: its chain's request phase, the route's action, the
/// chain's response phase.
async fn serve<B>(
    route: &Route,
    conn: &ConnInfo,
    trusted_hops: u32,
    mut req: Request<B>,
    completion: &mut Completion,
    upstream: &mut RequestGuard,
) -> Response<ProxyBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    // An upgrade the route does not allow is refused before any filter sees it.
    if let RouteAction::Forward(forward) = &route.action
        && let Err(refused) = upgrade::admit(&mut req, &forward.upgrades)
    {
        return local::error(&refused);
    }
    let chain = ChainPass::start(route, conn, &req, completion);
    let req = match chain.request(req, conn.scheme).await {
        Ok(req) => req,
        Err(reply) => return reply,
    };
    let response = act(&route.action, conn, trusted_hops, req, completion, upstream).await;
    chain.response(response).await
}

/// Runs the route's action on the request as the filters left it.
async fn act(
    action: &RouteAction,
    conn: &ConnInfo,
    trusted_hops: u32,
    req: Request<UpstreamBody>,
    completion: &mut Completion,
    upstream: &mut RequestGuard,
) -> Response<ProxyBody> {
    match action {
        RouteAction::Forward(target) => {
            // Boxed: the request path's futures each hold the largest state
            // of what they await, and each is copied as it starts; boxed,
            // forwarding's state (its retries, deadlines and the upstream
            // exchange, about 4 KiB) is written once instead of at every
            // level above it.
            let forwarded = Box::pin(forward::forward(
                conn,
                trusted_hops,
                target,
                req,
                completion,
                upstream,
            ));
            match forwarded.await {
                Ok(response) => {
                    completion.set_response(VIA_UPSTREAM, 0);
                    response
                }
                Err(err) => {
                    completion.set_response(err.code_details(), err.response_flags());
                    local::error(&err)
                }
            }
        }
        RouteAction::Direct { status, body } => {
            completion.set_response(DIRECT_RESPONSE, 0);
            local::direct(*status, body.clone())
        }
        RouteAction::Redirect(redirect) => {
            completion.set_response(DIRECT_RESPONSE, 0);
            let (uri, request_headers) = (req.uri(), req.headers());
            let host = headers::request_host(uri, request_headers);
            local::redirect(
                redirect,
                conn.scheme,
                headers::request_authority(uri, request_headers).unwrap_or(host),
                uri.path(),
                uri.query(),
            )
        }
    }
}
