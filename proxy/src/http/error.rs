//! Why the request path answers a request itself instead of relaying an
//! upstream response. Each variant carries what its response needs;
//! [`local::error`](super::local::error) turns it into that response.

use crate::body::BoxError;
use crate::upstream::UpstreamError;

/// A request the proxy answers with an error response.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No route of the listener matched (404).
    #[error("no route matched {host}{path}")]
    NoRoute {
        /// The request's host.
        host: String,
        /// The request's path.
        path: String,
    },
    /// The downstream request body failed while it was read for replay (400).
    #[error("request body read failed: {0}")]
    RequestBody(BoxError),
    /// The upstream produced no response (503, or 504 for timeouts).
    #[error("{error}")]
    Upstream {
        /// Why.
        error: UpstreamError,
        /// Attempts made, for routes with a retry policy
        /// (`x-wasp-attempt-count`).
        attempts: Option<u32>,
    },
}

impl From<UpstreamError> for ProxyError {
    fn from(error: UpstreamError) -> Self {
        Self::Upstream {
            error,
            attempts: None,
        }
    }
}
