//! Retry decisions: which results a route's retry policy retries, the
//! back-off between attempts, and the request body kept for replay.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full};
use tokio::sync::Notify;

use super::body::{BoxError, UpstreamBody};
use crate::upstream::{RetryClass, UpstreamError};
use wasp_config::{RetryOn, RetryPolicy};

/// True when the policy retries a response with this status.
pub fn retries_status(policy: &RetryPolicy, status: http::StatusCode) -> bool {
    let code = status.as_u16();
    policy.retry_on.iter().any(|on| match on {
        RetryOn::FiveXx => status.is_server_error(),
        RetryOn::GatewayError => matches!(code, 502..=504),
        RetryOn::RetriableStatusCodes => policy.retriable_status_codes.contains(&code),
        RetryOn::Retriable4xx => code == 409,
        RetryOn::ConnectFailure | RetryOn::Reset => false,
    })
}

/// True when the policy retries an attempt that failed without a response.
pub fn retries_error(policy: &RetryPolicy, err: &UpstreamError) -> bool {
    let class = err.retry_class();
    match class {
        RetryClass::Never => false,
        RetryClass::Always => true,
        RetryClass::ConnectFailure | RetryClass::Reset => {
            policy.retry_on.iter().any(|on| match on {
                RetryOn::FiveXx | RetryOn::GatewayError => true,
                RetryOn::ConnectFailure => class == RetryClass::ConnectFailure,
                RetryOn::Reset => class == RetryClass::Reset,
                RetryOn::RetriableStatusCodes | RetryOn::Retriable4xx => false,
            })
        }
    }
}

/// True when the policy retries the result of an attempt.
pub fn retries(
    policy: &RetryPolicy,
    result: &Result<http::Response<hyper::body::Incoming>, UpstreamError>,
) -> bool {
    match result {
        Ok(response) => retries_status(policy, response.status()),
        Err(err) => retries_error(policy, err),
    }
}

/// The pause before retry number `retry` (1 for the first retry): uniformly
/// random between zero and `base × 2^(retry-1)`, capped at the maximum
/// interval (exponential back-off with full jitter).
pub fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let max = policy.max_interval.unwrap_or(policy.base_interval * 10);
    let factor = 1u32
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u32::MAX);
    let cap = policy.base_interval.saturating_mul(factor).min(max);
    cap.mul_f64(fastrand::f64())
}

/// Signals when the downstream request has been received completely (the
/// route timeout starts then).
#[derive(Default)]
pub struct EndOfRequest {
    done: AtomicBool,
    notify: Notify,
}

impl EndOfRequest {
    /// Marks the request complete.
    pub fn set(&self) {
        self.done.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// True once the request is complete.
    pub fn is_set(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Waits until the request is complete.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.done.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// The downstream request body, as the attempts see it.
pub enum RequestBody {
    /// Read completely; every attempt sends a copy.
    Buffered(Bytes),
    /// Streamed to the first attempt that sends; gone after that.
    Streaming(Option<UpstreamBody>),
}

impl RequestBody {
    /// Prepares the body: with a retry policy, a body whose announced size
    /// fits the buffer limit is read first so it can be replayed.
    pub async fn new(
        body: UpstreamBody,
        buffer_limit: Option<u64>,
        end: &Arc<EndOfRequest>,
    ) -> Result<Self, BoxError> {
        let fits =
            buffer_limit.is_some_and(|limit| body.size_hint().upper().is_some_and(|n| n <= limit));
        if body.is_end_stream() || fits {
            let bytes = body.collect().await?.to_bytes();
            end.set();
            return Ok(Self::Buffered(bytes));
        }
        Ok(Self::Streaming(Some(body)))
    }

    /// True when another attempt can still get this body.
    pub fn replayable(&self) -> bool {
        match self {
            Self::Buffered(_) => true,
            Self::Streaming(body) => body.is_some(),
        }
    }

    /// The body for the next attempt, if one is left.
    pub fn for_attempt(&mut self, end: &Arc<EndOfRequest>) -> Option<UpstreamBody> {
        match self {
            // No body (most requests): an empty body boxes without allocating.
            Self::Buffered(bytes) if bytes.is_empty() => {
                Some(Empty::new().map_err(|never| match never {}).boxed_unsync())
            }
            Self::Buffered(bytes) => Some(
                Full::new(bytes.clone())
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            ),
            Self::Streaming(body) => {
                let body = body.take()?;
                Some(
                    SignalEnd {
                        inner: body,
                        end: Arc::clone(end),
                    }
                    .boxed_unsync(),
                )
            }
        }
    }
}

/// A streamed request body that signals its end.
struct SignalEnd {
    inner: UpstreamBody,
    end: Arc<EndOfRequest>,
}

impl Body for SignalEnd {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(
            polled,
            std::task::Poll::Ready(None) | std::task::Poll::Ready(Some(Err(_)))
        ) || self.inner.is_end_stream()
        {
            self.end.set();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> RetryPolicy {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn status_conditions_follow_retry_on() {
        let p = policy("{retry_on: [gateway-error, retriable-4xx]}");
        assert!(retries_status(&p, http::StatusCode::BAD_GATEWAY));
        assert!(!retries_status(&p, http::StatusCode::INTERNAL_SERVER_ERROR));
        assert!(retries_status(&p, http::StatusCode::CONFLICT));
        let p = policy("{retry_on: [retriable-status-codes], retriable_status_codes: [418]}");
        assert!(retries_status(&p, http::StatusCode::IM_A_TEAPOT));
        assert!(!retries_status(&p, http::StatusCode::SERVICE_UNAVAILABLE));
        assert!(
            retries_status(&policy("{}"), http::StatusCode::SERVICE_UNAVAILABLE),
            "5xx by default"
        );
    }

    #[test]
    fn connect_failures_are_retried_only_when_asked() {
        let err = UpstreamError::ConnectTimeout {
            addr: "127.0.0.1:1".parse().unwrap(),
            timeout: Duration::from_secs(1),
        };
        assert!(retries_error(
            &policy("{retry_on: [connect-failure]}"),
            &err
        ));
        assert!(retries_error(&policy("{retry_on: [5xx]}"), &err));
        assert!(!retries_error(&policy("{retry_on: [reset]}"), &err));
        assert!(!retries_error(&policy("{retry_on: [retriable-4xx]}"), &err));
        let timeout = UpstreamError::PerTryTimeout(Duration::from_secs(1));
        assert!(retries_error(&policy("{retry_on: [reset]}"), &timeout));
    }

    #[test]
    fn route_timeouts_and_missing_endpoints_are_never_retried() {
        let p = policy("{retry_on: [5xx, reset, connect-failure]}");
        let route = UpstreamError::RouteTimeout(Duration::from_secs(1));
        assert!(!retries_error(&p, &route));
        assert!(!retries_error(&p, &UpstreamError::NoEndpoint("app".into())));
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let p = policy("{base_interval: 10ms, max_interval: 50ms}");
        for retry in 1..10 {
            let cap = Duration::from_millis((10u64 << (retry - 1)).min(50));
            for _ in 0..50 {
                assert!(backoff(&p, retry) <= cap);
            }
        }
        let spread: std::collections::HashSet<_> =
            (0..50).map(|_| backoff(&p, 3).as_micros()).collect();
        assert!(spread.len() > 10, "jittered");
    }
}
