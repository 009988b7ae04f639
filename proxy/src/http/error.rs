//! Why the request path answers a request itself instead of relaying an
//! upstream response. Each variant carries what its response needs;
//! [`local::error`](super::local::error) turns it into that response.

use std::sync::Arc;

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
    /// The request asks to switch to a protocol its route does not allow
    /// (403, and the connection closes, as in Envoy).
    #[error("upgrade to '{protocol}' is not allowed on this route")]
    UpgradeNotAllowed {
        /// The request's `Upgrade` value.
        protocol: String,
    },
    /// The upstream answered `101 Switching Protocols` to a request that did
    /// not ask for the protocol it switched to (502).
    #[error("upstream switched protocols to '{got}' unasked (requested: '{asked}')")]
    UnexpectedUpgrade {
        /// The protocol the request asked for; empty when it asked for none.
        asked: String,
        /// The response's `Upgrade` value; empty when it had none.
        got: String,
    },
    /// The connection's listener was removed by a reload (503, and the
    /// connection closes: it is draining).
    #[error("listener '{listener}' was removed")]
    ListenerRemoved {
        /// The name the listener had when it accepted the connection.
        listener: Arc<str>,
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
