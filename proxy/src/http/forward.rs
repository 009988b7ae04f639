//! Forwarding a routed request upstream: circuit breaking, endpoint choice,
//! attempts with per-try timeouts, retries with back-off under the retry
//! budget, and the route timeout; then the response streams back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{COOKIE, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::{Completion, ProxyBody};
use super::handler::ConnInfo;
use super::retry::{self, EndOfRequest, RequestBody};
use super::{headers, local, upgrade};
use crate::config::{HashPolicy, UpstreamProtocol};
use crate::router::Forward;
use crate::upstream::{Outcome, UpstreamError, hash_key};

/// `x-wasp-attempt-count`: attempts made, on the upstream request and the
/// response of routes with a retry policy.
pub static X_WASP_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-wasp-attempt-count");

/// Forwards a request along a route's `Forward` action.
pub async fn forward(
    conn: &ConnInfo,
    forward: &Forward,
    mut req: Request<Incoming>,
    completion: &mut Completion,
) -> Response<ProxyBody> {
    let cluster = Arc::clone(forward.target.pick());
    completion.cluster = Some(Arc::clone(&cluster.name));
    match cluster.breakers().try_request() {
        Ok(permit) => completion.cluster_request = Some(permit),
        Err(breaker) => return local::upstream_error(&UpstreamError::Overflow(breaker)),
    }

    let upgrading = req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers());
    let downstream_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let hash = request_hash(&forward.hash_policy, &parts.headers, conn.client.ip());

    headers::strip_hop_by_hop(&mut parts.headers, upgrading);
    headers::add_forwarded(&mut parts.headers, &conn.client_ip_header, conn.scheme);
    let authority = forward.host_rewrite.clone().or_else(|| {
        headers::request_authority(&parts.uri, &parts.headers)
            .and_then(|a| HeaderValue::from_str(a).ok())
    });
    let path = rewrite_path(parts.uri.path_and_query(), forward);
    let (method, mut head) = (parts.method, parts.headers);

    let policy = forward.retry_policy.as_ref().filter(|_| !upgrading);
    let end = Arc::new(EndOfRequest::default());
    let mut body = match RequestBody::new(body, policy.map(|p| p.buffer_limit), &end).await {
        Ok(body) => body,
        Err(err) => {
            return local::text(
                StatusCode::BAD_REQUEST,
                format!("request body read failed: {err}\n"),
            );
        }
    };
    let route_timeout = {
        let end = Arc::clone(&end);
        let timeout = forward.timeout;
        async move {
            if timeout.is_zero() {
                std::future::pending::<()>().await;
            }
            end.wait().await;
            tokio::time::sleep(timeout).await;
        }
    };
    tokio::pin!(route_timeout);

    let max_attempts = 1 + policy.map_or(0, |p| p.num_retries);
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let endpoint = match cluster.pick(hash, &tried) {
            Ok(endpoint) => endpoint,
            Err(err) => return local::upstream_error(&err),
        };
        let in_flight = endpoint.begin();
        completion.upstream = Some(endpoint.addr);
        if policy.is_some() {
            head.insert(X_WASP_ATTEMPT_COUNT.clone(), HeaderValue::from(attempt));
        }
        let per_try = policy.and_then(|p| p.per_try_timeout);
        let try_deadline = per_try.map(|t| Instant::now() + t);

        let exchange = async {
            // An upgrade gets a dedicated connection; everything else a pooled one.
            let connection = if upgrading {
                None
            } else {
                Some(cluster.acquire(&endpoint).await?)
            };
            let Some(upstream_body) = body.for_attempt(&end) else {
                unreachable!("an attempt starts only with a replayable body")
            };
            let last = attempt == max_attempts;
            let headers = if last {
                std::mem::take(&mut head)
            } else {
                head.clone()
            };
            let request = build_request(
                &method,
                headers,
                &path,
                authority.as_ref(),
                endpoint.addr,
                cluster.protocol(),
                upstream_body,
            );
            match connection {
                Some(connection) => connection.send(request).await,
                None => cluster.send_upgrade(&endpoint, request).await,
            }
        };
        let result = tokio::select! {
            result = with_deadline(try_deadline, per_try, exchange) => result,
            () = &mut route_timeout => {
                cluster.metrics.timeouts.inc();
                cluster.report(&endpoint, Outcome::Failure);
                return local::text(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout\n");
            }
        };
        completion.upstream_duration = Some(completion.start.elapsed());

        let (outcome, retriable) = match (&result, policy) {
            (Ok(response), policy) => (
                if response.status().is_server_error() {
                    Outcome::Failure
                } else {
                    Outcome::Success
                },
                policy.is_some_and(|p| retry::retries_status(p, response.status())),
            ),
            (Err(UpstreamError::Overflow(_)), policy) => (Outcome::Success, policy.is_some()),
            (Err(err), policy) => {
                if matches!(err, UpstreamError::PerTryTimeout(_)) {
                    cluster.metrics.per_try_timeouts.inc();
                }
                (
                    Outcome::Failure,
                    policy.is_some_and(|p| retry::retries_error(p, err)),
                )
            }
        };
        cluster.report(&endpoint, outcome);

        let retry_permit = if retriable && attempt < max_attempts && body.replayable() {
            cluster.breakers().retry_slot(completion.retry.take()).ok()
        } else {
            None
        };
        let Some(retry_permit) = retry_permit else {
            completion.endpoint_request = Some(in_flight);
            return respond(result, downstream_upgrade, policy.map(|_| attempt));
        };
        cluster.metrics.retries.inc();
        tried.push(endpoint.addr);
        drop(result);
        drop(in_flight);
        completion.retry = Some(retry_permit);
        let pause = retry::backoff(policy.expect("retrying implies a policy"), attempt);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = &mut route_timeout => {
                cluster.metrics.timeouts.inc();
                return local::text(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout\n");
            }
        }
    }
}

async fn with_deadline<F>(
    deadline: Option<Instant>,
    limit: Option<Duration>,
    exchange: F,
) -> Result<Response<Incoming>, UpstreamError>
where
    F: std::future::Future<Output = Result<Response<Incoming>, UpstreamError>>,
{
    match (deadline, limit) {
        (Some(deadline), Some(limit)) => tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or(Err(UpstreamError::PerTryTimeout(limit))),
        _ => exchange.await,
    }
}

fn respond(
    result: Result<Response<Incoming>, UpstreamError>,
    downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
    attempts: Option<u32>,
) -> Response<ProxyBody> {
    let mut response = match result {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(error = %err, "upstream request failed");
            let mut response = local::upstream_error(&err);
            if let Some(attempts) = attempts {
                response
                    .headers_mut()
                    .insert(X_WASP_ATTEMPT_COUNT.clone(), HeaderValue::from(attempts));
            }
            return response;
        }
    };
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(downstream)) = (switching, downstream_upgrade) {
        upgrade::spawn_tunnel(downstream, hyper::upgrade::on(&mut response));
    }
    headers::strip_hop_by_hop(response.headers_mut(), switching);
    if let Some(attempts) = attempts {
        response
            .headers_mut()
            .insert(X_WASP_ATTEMPT_COUNT.clone(), HeaderValue::from(attempts));
    }
    *response.version_mut() = Version::HTTP_11;
    response.map(ProxyBody::upstream)
}

fn build_request(
    method: &http::Method,
    mut headers: HeaderMap,
    path: &PathAndQuery,
    authority: Option<&HeaderValue>,
    endpoint: SocketAddr,
    protocol: UpstreamProtocol,
    body: super::body::UpstreamBody,
) -> Request<super::body::UpstreamBody> {
    let authority = authority.cloned().unwrap_or_else(|| {
        HeaderValue::from_str(&endpoint.to_string()).expect("an address is a valid header")
    });
    let mut request = Request::new(body);
    *request.method_mut() = method.clone();
    match protocol {
        UpstreamProtocol::Http1 => {
            *request.version_mut() = Version::HTTP_11;
            *request.uri_mut() = Uri::from(path.clone());
            headers.insert(HOST, authority);
        }
        UpstreamProtocol::Http2 => {
            *request.version_mut() = Version::HTTP_2;
            headers.remove(HOST);
            let mut uri = http::uri::Parts::default();
            uri.scheme = Some(Scheme::HTTP);
            uri.authority = Authority::try_from(authority.as_bytes()).ok();
            uri.path_and_query = Some(path.clone());
            *request.uri_mut() = Uri::from_parts(uri).unwrap_or_else(|_| Uri::from_static("/"));
        }
    }
    *request.headers_mut() = headers;
    request
}

/// The ring-hash key of a request: the first hash policy that yields a value.
fn request_hash(
    policies: &[HashPolicy],
    headers: &HeaderMap,
    client: std::net::IpAddr,
) -> Option<u64> {
    policies.iter().find_map(|policy| match policy {
        HashPolicy::Header(name) => headers.get(name.as_str()).map(|v| hash_key(v.as_bytes())),
        HashPolicy::Cookie(name) => headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then(|| hash_key(value.as_bytes()))
            }),
        HashPolicy::SourceIp(true) => Some(hash_key(client.to_string().as_bytes())),
        HashPolicy::SourceIp(false) => None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_policies_take_header_then_cookie_then_source_ip() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=1; session=abc".parse().unwrap());
        let ip: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let policies = vec![
            HashPolicy::Header("x-user".into()),
            HashPolicy::Cookie("session".into()),
            HashPolicy::SourceIp(true),
        ];
        assert_eq!(
            request_hash(&policies, &headers, ip),
            Some(hash_key(b"abc"))
        );
        headers.insert("x-user", "u1".parse().unwrap());
        assert_eq!(request_hash(&policies, &headers, ip), Some(hash_key(b"u1")));
        assert_eq!(
            request_hash(&policies[2..], &HeaderMap::new(), ip),
            Some(hash_key(b"10.1.2.3"))
        );
        assert_eq!(request_hash(&policies[..2], &HeaderMap::new(), ip), None);
    }
}
