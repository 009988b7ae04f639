//! One attempt of a forwarded request: a pooled connection (or a dedicated
//! one for an upgrade) to the chosen endpoint, the request in the cluster's
//! protocol, the response headers (the caller bounds the wait with the
//! per-try timeout, `deadline`); and what the result says about the
//! endpoint.

use std::net::SocketAddr;

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Response};
use hyper::body::Incoming;

use crate::body::UpstreamBody;
use crate::upstream::{Cluster, Endpoint, Outcome, UpstreamError, request};

/// Where every attempt of a request goes: method, rewritten path and
/// authority; the headers are per attempt.
pub struct Target {
    /// The request method.
    pub method: Method,
    /// The upstream path (prefix rewrite applied, query kept).
    pub path: PathAndQuery,
    /// `Host` / `:authority` (host rewrite applied).
    pub authority: Option<HeaderValue>,
    /// Whether the request asks for a protocol upgrade (dedicated connection).
    pub upgrading: bool,
}

/// Sends one attempt to `endpoint` and waits for its response headers;
/// the local address of the connection it went out on is left in `local`.
pub async fn send(
    cluster: &Cluster,
    endpoint: &Endpoint,
    target: &Target,
    headers: HeaderMap,
    body: UpstreamBody,
    local: &mut Option<SocketAddr>,
) -> Result<Response<Incoming>, UpstreamError> {
    let exchange = async {
        // An upgrade gets a dedicated connection; everything else a pooled one.
        let connection = if target.upgrading {
            None
        } else {
            Some(cluster.acquire(endpoint).await?)
        };
        let request = request::build(
            &target.method,
            headers,
            &target.path,
            target.authority.as_ref(),
            endpoint.addr,
            cluster.protocol(),
            body,
        );
        let (response, addr) = match connection {
            Some(connection) => connection.send(request).await?,
            // Boxed: upgrades are rare, and every request awaits `send`.
            None => Box::pin(cluster.send_upgrade(endpoint, request)).await?,
        };
        *local = Some(addr.0);
        Ok(response)
    };
    exchange.await.map_err(UpstreamError::classify)
}

/// Reports an attempt's result to outlier detection (a 5xx or a failure of
/// the endpoint counts against it; a failed downstream body is not
/// reported) and counts per-try timeouts.
pub fn report(
    cluster: &Cluster,
    endpoint: &Endpoint,
    result: &Result<Response<Incoming>, UpstreamError>,
) {
    let outcome = match result {
        Ok(response) if response.status().is_server_error() => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(err) => {
            if matches!(err, UpstreamError::PerTryTimeout(_)) {
                cluster.metrics.per_try_timeouts.inc();
            }
            match err.outcome() {
                Some(outcome) => outcome,
                None => return,
            }
        }
    };
    cluster.report(endpoint, outcome);
}
