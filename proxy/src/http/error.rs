//! Why the request path answers a request itself instead of relaying an
//! upstream response. Each variant carries what its response needs;
//! [`local::error`](super::local::error) turns it into that response.

use std::sync::Arc;

use wasp_filter_host::response_flags as flags;

use super::downstream::DownstreamError;
use super::timeout::Expired;
use crate::body::BoxError;
use crate::upstream::UpstreamError;

/// Response code details of a response relayed from the upstream.
pub const VIA_UPSTREAM: &str = "via_upstream";
/// Response code details of a route's direct response or redirect.
pub const DIRECT_RESPONSE: &str = "direct_response";

/// Envoy's response flags the request path sets that the filter host's
/// table does not name.
pub mod downstream_flags {
    /// `DC`: the downstream connection ended mid-request.
    pub const DOWNSTREAM_CONNECTION_TERMINATION: u64 = 0x4000;
    /// `SI`: the stream idle timeout fired.
    pub const STREAM_IDLE_TIMEOUT: u64 = 0x1_0000;
    /// `DPE`: the downstream request broke HTTP's rules.
    pub const DOWNSTREAM_PROTOCOL_ERROR: u64 = 0x4_0000;
}

/// What is wrong with a malformed request head (400).
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    /// An HTTP/1.1 request without `Host`.
    #[error("missing Host header")]
    MissingHost,
    /// More than one `Host` header.
    #[error("more than one Host header")]
    MultipleHosts,
    /// A `Host` that is no RFC 3986 authority.
    #[error("invalid Host header '{0}'")]
    InvalidHost(String),
}

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
    /// An outbound listener's egress policy refused the destination (502).
    #[error("egress to {host} is not allowed")]
    EgressDenied {
        /// The request's authority.
        host: String,
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
    /// The downstream request body failed: a framing error (bad chunk size,
    /// bare LF) or the client went away (400, and the connection closes).
    /// Never counted against the upstream.
    #[error("request body read failed: {0}")]
    RequestBody(BoxError),
    /// A malformed request head (400, and the connection closes).
    #[error("bad request: {0}")]
    BadRequest(Malformed),
    /// The request header block is over the listener's
    /// `max_request_headers_kb` (431, and the connection closes).
    #[error("request header block of {size} bytes is over the limit of {limit}")]
    HeadersTooLarge {
        /// Its size (method, target, names and values).
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// More header fields than the listener's `max_request_headers_count`
    /// (431, and the connection closes).
    #[error("{count} request headers are over the limit of {limit}")]
    TooManyHeaders {
        /// How many came.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A transfer coding other than `chunked` (501, and the connection closes).
    #[error("transfer coding '{0}' is not implemented")]
    UnsupportedTransferCoding(String),
    /// The request was not received completely within the listener's
    /// `request_timeout` (408, and the connection closes).
    #[error("request not received within {0:?}")]
    RequestTimeout(std::time::Duration),
    /// No bytes either way for the listener's `stream_idle_timeout` (408,
    /// and the connection closes).
    #[error("stream idle for {0:?}")]
    StreamIdleTimeout(std::time::Duration),
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

impl ProxyError {
    /// Envoy's response code details for this error (the
    /// `response.code_details` property).
    pub fn code_details(&self) -> &'static str {
        match self {
            Self::NoRoute { .. } => "route_not_found",
            Self::EgressDenied { .. } => "egress_denied",
            Self::UpgradeNotAllowed { .. } => "upgrade_failed",
            Self::UnexpectedUpgrade { .. } => {
                "upstream_reset_before_response_started{protocol_error}"
            }
            Self::ListenerRemoved { .. } => "listener_removed",
            Self::RequestBody(err) if is_framing(err) => "http1.codec_error",
            Self::RequestBody(_) => "downstream_remote_disconnect",
            Self::BadRequest(Malformed::MissingHost) => "missing_host_header",
            Self::BadRequest(Malformed::MultipleHosts | Malformed::InvalidHost(_)) => {
                "http.invalid_authority"
            }
            Self::HeadersTooLarge { .. } => "http1.headers_too_large",
            Self::TooManyHeaders { .. } => "http1.too_many_headers",
            Self::UnsupportedTransferCoding(_) => "http1.invalid_transfer_encoding",
            Self::RequestTimeout(_) => "request_overall_timeout",
            Self::StreamIdleTimeout(_) => "stream_idle_timeout",
            Self::Upstream { error, .. } => match error {
                UpstreamError::NoEndpoint(_) => "no_healthy_upstream",
                UpstreamError::Connect { .. }
                | UpstreamError::ConnectTimeout { .. }
                | UpstreamError::Handshake { .. } => {
                    "upstream_reset_before_response_started{connection_failure}"
                }
                UpstreamError::Tls { .. } => {
                    "upstream_reset_before_response_started{connection_failure,TLS_error}"
                }
                UpstreamError::Overflow(_) => "upstream_reset_before_response_started{overflow}",
                UpstreamError::PerTryTimeout(_) => "upstream_per_try_timeout",
                UpstreamError::RouteTimeout(_) => "upstream_response_timeout",
                UpstreamError::Reset { .. } => {
                    "upstream_reset_before_response_started{remote_reset}"
                }
                UpstreamError::Downstream(_) => "downstream_remote_disconnect",
            },
        }
    }

    /// Envoy's response flags for this error (the `response.flags` property).
    pub fn response_flags(&self) -> u64 {
        match self {
            Self::NoRoute { .. } | Self::EgressDenied { .. } => flags::NO_ROUTE_FOUND,
            Self::UnexpectedUpgrade { .. } => flags::UPSTREAM_PROTOCOL_ERROR,
            Self::UpgradeNotAllowed { .. }
            | Self::ListenerRemoved { .. }
            | Self::RequestTimeout(_) => 0,
            Self::RequestBody(err) if is_framing(err) => {
                downstream_flags::DOWNSTREAM_PROTOCOL_ERROR
            }
            Self::RequestBody(_) => downstream_flags::DOWNSTREAM_CONNECTION_TERMINATION,
            Self::BadRequest(_)
            | Self::HeadersTooLarge { .. }
            | Self::TooManyHeaders { .. }
            | Self::UnsupportedTransferCoding(_) => downstream_flags::DOWNSTREAM_PROTOCOL_ERROR,
            Self::StreamIdleTimeout(_) => downstream_flags::STREAM_IDLE_TIMEOUT,
            Self::Upstream { error, .. } => match error {
                UpstreamError::NoEndpoint(_) => flags::NO_HEALTHY_UPSTREAM,
                UpstreamError::Connect { .. }
                | UpstreamError::ConnectTimeout { .. }
                | UpstreamError::Tls { .. }
                | UpstreamError::Handshake { .. } => flags::UPSTREAM_CONNECTION_FAILURE,
                UpstreamError::Overflow(_) => flags::UPSTREAM_OVERFLOW,
                UpstreamError::PerTryTimeout(_) | UpstreamError::RouteTimeout(_) => {
                    flags::UPSTREAM_REQUEST_TIMEOUT
                }
                UpstreamError::Reset { .. } => flags::UPSTREAM_REMOTE_RESET,
                UpstreamError::Downstream(_) => downstream_flags::DOWNSTREAM_CONNECTION_TERMINATION,
            },
        }
    }

    /// True when the answer closes the connection: the request's own bytes
    /// cannot be trusted (or were not all read), a refused upgrade, a
    /// removed listener.
    pub fn closes_connection(&self) -> bool {
        !matches!(
            self,
            Self::NoRoute { .. }
                | Self::EgressDenied { .. }
                | Self::UnexpectedUpgrade { .. }
                | Self::Upstream { .. }
        )
    }
}

/// True when a request body error is the client's malformed framing.
fn is_framing(err: &BoxError) -> bool {
    DownstreamError::find(&**err).is_some_and(DownstreamError::is_framing)
}

impl From<Expired> for ProxyError {
    fn from(expired: Expired) -> Self {
        match expired {
            Expired::Request(after) => ProxyError::RequestTimeout(after),
            Expired::Idle(after) => ProxyError::StreamIdleTimeout(after),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn errors_map_to_envoys_details_and_flags() {
        let timeout = ProxyError::from(UpstreamError::RouteTimeout(Duration::from_secs(1)));
        assert_eq!(timeout.code_details(), "upstream_response_timeout");
        assert_eq!(timeout.response_flags(), 0x4);
        let refused = ProxyError::from(UpstreamError::Connect {
            addr: "127.0.0.1:1".parse().unwrap(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        });
        assert_eq!(
            refused.code_details(),
            "upstream_reset_before_response_started{connection_failure}"
        );
        assert_eq!(refused.response_flags(), 0x20);
        let none = ProxyError::from(UpstreamError::NoEndpoint("c".into()));
        assert_eq!(
            (none.code_details(), none.response_flags()),
            ("no_healthy_upstream", 0x2)
        );
        let no_route = ProxyError::NoRoute {
            host: "h".into(),
            path: "/".into(),
        };
        assert_eq!(
            (no_route.code_details(), no_route.response_flags()),
            ("route_not_found", 0x100)
        );
    }
}
