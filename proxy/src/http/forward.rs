//! Forwarding a routed request upstream: circuit breaking, endpoint choice,
//! attempts (`attempt`), retries with back-off under the retry budget
//! (`retry`), and the route timeout; then the response streams back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::COOKIE;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use wasp_config::HashPolicy;
use wasp_filter_host::response_flags;

use super::attempt::{self, Target};
use super::body::ProxyBody;
use super::deadline::{Deadlines, Fired};
use super::error::ProxyError;
use super::retry::{self, EndOfRequest, RequestBody};
use super::{headers, upgrade};
use crate::body::UpstreamBody;
use crate::conn::ConnInfo;
use crate::router::Forward;
use crate::telemetry::Completion;
use crate::upstream::{Cluster, Outcome, RequestGuard, UpstreamError, hash_key};

/// `x-wasp-attempt-count`: attempts made, on the upstream request and the
/// response of routes with a retry policy.
pub static X_WASP_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-wasp-attempt-count");

/// `x-wasp-attempt-count` values for the first attempts, shared rather than
/// formatted (and allocated) per request.
static ATTEMPT_COUNTS: [HeaderValue; 9] = [
    HeaderValue::from_static("1"),
    HeaderValue::from_static("2"),
    HeaderValue::from_static("3"),
    HeaderValue::from_static("4"),
    HeaderValue::from_static("5"),
    HeaderValue::from_static("6"),
    HeaderValue::from_static("7"),
    HeaderValue::from_static("8"),
    HeaderValue::from_static("9"),
];

/// The `x-wasp-attempt-count` value for `attempts`.
pub fn attempt_count(attempts: u32) -> HeaderValue {
    match attempts
        .checked_sub(1)
        .and_then(|i| ATTEMPT_COUNTS.get(i as usize))
    {
        Some(value) => value.clone(),
        None => HeaderValue::from(attempts),
    }
}

/// Where the shared timer of a request's deadlines starts: far enough to
/// never pass before it is armed.
const NEVER: Duration = Duration::from_secs(86400 * 365);

/// Forwards a request along a route's `Forward` action: attempts until one
/// gives a response the retry policy keeps (or no retry is left), within
/// the route timeout. The request's cluster slots go to `guard`;
/// `trusted_hops` is the listener's (forwarded headers).
pub async fn forward(
    conn: &ConnInfo,
    trusted_hops: u32,
    forward: &Forward,
    mut req: Request<UpstreamBody>,
    completion: &mut Completion,
    guard: &mut RequestGuard,
) -> Result<Response<ProxyBody>, ProxyError> {
    let cluster = Arc::clone(forward.target.pick());
    completion.set_cluster(&cluster.name);
    guard.cluster_request = Some(
        cluster
            .breakers()
            .try_request()
            .map_err(UpstreamError::Overflow)?,
    );

    // Only an upgrade admitted before the filter chain keeps its headers
    // (with the admitted protocol, whatever filters did to them).
    let admitted = req.extensions_mut().remove::<upgrade::Admitted>();
    let upgrading = admitted.is_some();
    let downstream_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let hash = request_hash(&forward.hash_policy, &parts.headers, conn.client.ip());

    headers::strip_hop_by_hop(&mut parts.headers, upgrading);
    if let Some(upgrade::Admitted(protocol)) = &admitted {
        parts
            .headers
            .insert(http::header::UPGRADE, protocol.clone());
    }
    headers::add_forwarded(
        &mut parts.headers,
        &conn.client_ip_header,
        conn.scheme,
        trusted_hops,
    );
    let authority = forward
        .host_rewrite
        .clone()
        .or_else(|| headers::request_authority_value(&parts.uri, &parts.headers));
    let target = Target {
        method: parts.method,
        path: rewrite_path(parts.uri.path_and_query(), forward),
        authority,
        upgrading,
    };
    let mut head = parts.headers;

    let policy = forward.retry_policy.as_ref().filter(|_| !upgrading);
    let end = Arc::new(EndOfRequest::default());
    let mut body = RequestBody::new(body, policy.map(|p| p.buffer_limit), &end)
        .await
        .map_err(ProxyError::RequestBody)?;
    // The route timeout and the per-try timeouts share one timer, not
    // registered until a deadline is set.
    let sleep = tokio::time::sleep(NEVER);
    tokio::pin!(sleep);
    let mut deadlines = Deadlines::new(forward.timeout, &end, sleep);
    let timed_out = |cluster: &Cluster| {
        cluster.metrics.timeouts.inc();
        ProxyError::from(UpstreamError::RouteTimeout(forward.timeout))
    };

    let max_attempts = 1 + policy.map_or(0, |p| p.num_retries);
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let endpoint = cluster.pick(hash, &tried)?;
        let in_flight = endpoint.begin();
        completion.set_upstream(endpoint.addr);
        if policy.is_some() {
            head.insert(X_WASP_ATTEMPT_COUNT.clone(), attempt_count(attempt));
        }
        let Some(attempt_body) = body.for_attempt(&end) else {
            unreachable!("an attempt starts only with a replayable body")
        };
        // The last attempt takes the headers; earlier ones send a copy.
        let headers = if attempt == max_attempts {
            std::mem::take(&mut head)
        } else {
            head.clone()
        };
        deadlines.start_try(policy.and_then(|p| p.per_try_timeout));
        let mut local = None;
        let sent = attempt::send(
            &cluster,
            &endpoint,
            &target,
            headers,
            attempt_body,
            &mut local,
        );
        let result = tokio::select! {
            result = sent => result,
            fired = deadlines.fired() => match fired {
                Fired::Try(limit) => Err(UpstreamError::PerTryTimeout(limit)),
                Fired::Route => {
                    cluster.report(&endpoint, Outcome::Failure);
                    return Err(timed_out(&cluster));
                }
            },
        };
        completion.upstream_duration = Some(completion.start.elapsed());
        attempt::report(&cluster, &endpoint, &result);
        if result.is_ok()
            && let Some(local) = local
        {
            completion.set_upstream_local(local);
        }

        let retriable = policy.is_some_and(|p| retry::retries(p, &result));
        let retry_permit = if retriable && attempt < max_attempts && body.replayable() {
            cluster.breakers().retry_slot(guard.retry.take()).ok()
        } else {
            None
        };
        let Some(retry_permit) = retry_permit else {
            if retriable {
                completion.add_flags(response_flags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
            }
            guard.endpoint_request = Some(in_flight);
            return respond(
                result,
                admitted.as_ref(),
                downstream_upgrade,
                policy.map(|_| attempt),
            );
        };
        cluster.metrics.retries.inc();
        tried.push(endpoint.addr);
        drop(result);
        drop(in_flight);
        guard.retry = Some(retry_permit);
        let pause = retry::backoff(policy.expect("retrying implies a policy"), attempt);
        deadlines.between_tries();
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = deadlines.fired() => return Err(timed_out(&cluster)),
        }
    }
}

/// The response to relay downstream: the upstream's (hop-by-hop headers
/// removed, an upgrade tunnelled), or the error of the last attempt. A
/// `101` is relayed only for the protocol the request was admitted to
/// switch to (`asked`); any other is a 502.
fn respond(
    result: Result<Response<Incoming>, UpstreamError>,
    asked: Option<&upgrade::Admitted>,
    downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
    attempts: Option<u32>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let mut response = match result {
        Ok(response) => response,
        Err(UpstreamError::Downstream(error)) => {
            tracing::debug!(%error, "downstream request body failed");
            return Err(ProxyError::RequestBody(error));
        }
        Err(error) => {
            tracing::debug!(%error, "upstream request failed");
            return Err(ProxyError::Upstream { error, attempts });
        }
    };
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        if let Err(err) = upgrade::check_switch(asked, response.headers()) {
            tracing::debug!(error = %err, "upstream switched protocols unasked");
            return Err(err);
        }
        if let Some(downstream) = downstream_upgrade {
            upgrade::spawn_tunnel(downstream, hyper::upgrade::on(&mut response));
        }
    }
    headers::strip_hop_by_hop(response.headers_mut(), switching);
    if let Some(attempts) = attempts {
        response
            .headers_mut()
            .insert(X_WASP_ATTEMPT_COUNT.clone(), attempt_count(attempts));
    }
    *response.version_mut() = Version::HTTP_11;
    Ok(response.map(ProxyBody::upstream))
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
    fn attempt_counts_are_the_decimal_number() {
        for attempts in [0, 1, 2, 9, 10, 11, 123] {
            assert_eq!(
                attempt_count(attempts).as_bytes(),
                attempts.to_string().as_bytes()
            );
        }
    }

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
