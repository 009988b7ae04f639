//! Why an upstream request failed, in terms the response mapping can use.

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
    /// The connection was reset or the exchange failed before response headers.
    #[error("upstream {addr} reset before response headers: {source}")]
    Reset {
        /// The endpoint.
        addr: SocketAddr,
        /// The HTTP error.
        source: hyper::Error,
    },
}
