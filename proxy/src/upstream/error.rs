//! Why an upstream request failed, in terms the response mapping
//! (`http::local`), the retry decision and outlier detection can use.

use std::net::SocketAddr;
use std::time::Duration;

/// An upstream request that produced no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The cluster has no endpoint to send to.
    #[error("no healthy upstream in cluster '{0}'")]
    NoEndpoint(String),
    /// The TCP connection could not be established.
    #[error("upstream connect error to {addr}: {source}")]
    Connect {
        /// The endpoint.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TCP connection was not established in time.
    #[error("upstream connect timeout to {addr} after {timeout:?}")]
    ConnectTimeout {
        /// The endpoint.
        addr: SocketAddr,
        /// The configured connect timeout.
        timeout: Duration,
    },
    /// The TLS handshake on a new connection failed.
    #[error("upstream TLS handshake with {addr} failed: {source}")]
    Tls {
        /// The endpoint.
        addr: SocketAddr,
        /// The TLS error.
        source: std::io::Error,
    },
    /// The HTTP handshake on a new connection failed.
    #[error("upstream handshake with {addr} failed: {source}")]
    Handshake {
        /// The endpoint.
        addr: SocketAddr,
        /// The HTTP error.
        source: hyper::Error,
    },
    /// A circuit breaker refused the request.
    #[error("upstream overflow: cluster at its {} limit", .0.label())]
    Overflow(super::Breaker),
    /// An attempt did not get response headers within the per-try timeout.
    #[error("upstream per-try timeout after {0:?}")]
    PerTryTimeout(Duration),
    /// The route timeout passed before response headers (across retries).
    #[error("upstream request timeout")]
    RouteTimeout(Duration),
    /// The connection was reset or the exchange failed before response headers.
    #[error("upstream {addr} reset before response headers: {source}")]
    Reset {
        /// The endpoint.
        addr: SocketAddr,
        /// The HTTP error.
        source: hyper::Error,
    },
    /// The attempt failed because the downstream request body failed (the
    /// client's framing error or disconnect): no fault of the endpoint, so
    /// never retried nor reported to outlier detection.
    #[error("{0}")]
    Downstream(crate::body::BoxError),
}

/// Which retry conditions may retry a failure (pingora's `Error::retry`):
/// the retry policy's `retry_on` decides among these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryClass {
    /// Never retried (no endpoint left, the route timeout passed).
    Never,
    /// The connection could not be made: `connect-failure`, `5xx`, `gateway-error`.
    ConnectFailure,
    /// The exchange failed before response headers: `reset`, `5xx`, `gateway-error`.
    Reset,
    /// Retried under any retry policy (a circuit breaker's overflow).
    Always,
}

impl UpstreamError {
    /// How retry policies may treat this failure.
    pub fn retry_class(&self) -> RetryClass {
        match self {
            Self::NoEndpoint(_) | Self::RouteTimeout(_) | Self::Downstream(_) => RetryClass::Never,
            Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::Tls { .. }
            | Self::Handshake { .. } => RetryClass::ConnectFailure,
            Self::Reset { .. } | Self::PerTryTimeout(_) => RetryClass::Reset,
            Self::Overflow(_) => RetryClass::Always,
        }
    }

    /// What the failure says about the endpoint, for outlier detection: a
    /// circuit breaker's overflow is not the endpoint's fault; a failed
    /// downstream body says nothing about it (`None`: not reported).
    pub fn outcome(&self) -> Option<super::Outcome> {
        match self {
            Self::Overflow(_) => Some(super::Outcome::Success),
            Self::Downstream(_) => None,
            _ => Some(super::Outcome::Failure),
        }
    }

    /// The attempt's error as the downstream's when the request body the
    /// attempt was sending failed (the HTTP client reports it as its own).
    pub fn classify(self) -> Self {
        let body_error = match &self {
            Self::Reset { source, .. } | Self::Handshake { source, .. } => {
                crate::http::downstream::DownstreamError::find(source).is_some()
            }
            _ => false,
        };
        if !body_error {
            return self;
        }
        match self {
            Self::Reset { source, .. } | Self::Handshake { source, .. } => {
                Self::Downstream(Box::new(source))
            }
            other => other,
        }
    }

    /// True for the timeouts that answer 504 (per-try and route).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::PerTryTimeout(_) | Self::RouteTimeout(_))
    }
}
