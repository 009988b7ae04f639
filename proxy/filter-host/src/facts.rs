//! Facts about a request that the proxy learns while serving it — the route
//! and cluster, the upstream endpoint, why the response is what it is, how
//! many body bytes went each way — written by the request path as they
//! become known and read by `proxy_get_property` (`xds.*`, `upstream.*`,
//! `response.code_details`, `response.flags`, `request.size`, ...).
//!
//! One [`StreamFacts`] per request that runs a filter chain, shared through
//! an `Arc` by the proxy (writer) and the chain's stream (reader). Requests
//! without a chain never create one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Envoy's response flags (`response.flags`, a bit set), for the outcomes
/// wasp produces.
pub mod response_flags {
    /// `UH`: no healthy upstream endpoint.
    pub const NO_HEALTHY_UPSTREAM: u64 = 0x2;
    /// `UT`: upstream request timeout (route or per-try).
    pub const UPSTREAM_REQUEST_TIMEOUT: u64 = 0x4;
    /// `UR`: upstream reset the stream before response headers.
    pub const UPSTREAM_REMOTE_RESET: u64 = 0x10;
    /// `UF`: upstream connection failure.
    pub const UPSTREAM_CONNECTION_FAILURE: u64 = 0x20;
    /// `UO`: a circuit breaker refused the request.
    pub const UPSTREAM_OVERFLOW: u64 = 0x80;
    /// `NR`: no route matched.
    pub const NO_ROUTE_FOUND: u64 = 0x100;
    /// `URX`: retries were exhausted on a retriable result.
    pub const UPSTREAM_RETRY_LIMIT_EXCEEDED: u64 = 0x8000;
    /// `UPE`: the upstream broke the protocol (e.g. an unasked `101`).
    pub const UPSTREAM_PROTOCOL_ERROR: u64 = 0x80_0000;
}

/// The upstream endpoint a request was sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamFacts {
    /// The endpoint (`upstream.address`, `upstream.port`).
    pub address: SocketAddr,
    /// The local end of the upstream connection (`upstream.local_address`),
    /// when known.
    pub local_address: Option<SocketAddr>,
    /// Why the connection to it failed (`upstream.transport_failure_reason`);
    /// empty when it did not.
    pub transport_failure_reason: String,
}

/// A name the facts hold (a route, a cluster, response details): shared
/// with the configuration or static, so recording it per request copies
/// nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FactName {
    /// A name fixed in the proxy (`via_upstream`, ...).
    Static(&'static str),
    /// A name shared with the configuration, or made for this request.
    Shared(Arc<str>),
}

impl FactName {
    /// The name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Static(name) => name,
            Self::Shared(name) => name,
        }
    }

    /// The name's bytes (a property's value).
    pub fn into_bytes(self) -> Vec<u8> {
        self.as_str().as_bytes().to_vec()
    }
}

impl From<&'static str> for FactName {
    fn from(name: &'static str) -> Self {
        Self::Static(name)
    }
}

impl From<&Arc<str>> for FactName {
    fn from(name: &Arc<str>) -> Self {
        Self::Shared(Arc::clone(name))
    }
}

impl From<String> for FactName {
    fn from(name: String) -> Self {
        Self::Shared(name.into())
    }
}

/// Facts set once or replaced as the request goes on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Known {
    pub route_name: Option<FactName>,
    pub cluster_name: Option<FactName>,
    pub upstream: Option<UpstreamFacts>,
    pub code_details: Option<FactName>,
}

/// A request's facts, updated by the proxy while filters may read them.
#[derive(Debug, Default)]
pub struct StreamFacts {
    known: Mutex<Known>,
    flags: AtomicU64,
    request_body_bytes: AtomicU64,
    response_body_bytes: AtomicU64,
}

impl StreamFacts {
    pub(crate) fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The matched route (`xds.route_name`).
    pub fn set_route(&self, name: impl Into<FactName>) {
        self.known().route_name = Some(name.into());
    }

    /// The cluster the request goes to (`xds.cluster_name`); replaced when
    /// a weighted choice picks another.
    pub fn set_cluster(&self, name: impl Into<FactName>) {
        self.known().cluster_name = Some(name.into());
    }

    /// The endpoint of the current attempt (`upstream.*`).
    pub fn set_upstream(&self, upstream: UpstreamFacts) {
        self.known().upstream = Some(upstream);
    }

    /// The local end of the connection the current attempt went out on
    /// (`upstream.local_address`).
    pub fn set_upstream_local(&self, local: SocketAddr) {
        if let Some(upstream) = &mut self.known().upstream {
            upstream.local_address = Some(local);
        }
    }

    /// Why the response is what it is (`response.code_details`), e.g.
    /// `via_upstream`, and response flags to add (`response.flags`).
    pub fn set_response(&self, details: impl Into<FactName>, flags: u64) {
        self.known().code_details = Some(details.into());
        self.add_flags(flags);
    }

    /// Adds response flags (a bit set of [`response_flags`]).
    pub fn add_flags(&self, flags: u64) {
        self.flags.fetch_or(flags, Ordering::Relaxed);
    }

    /// Counts request body bytes received from the client.
    pub fn add_request_bytes(&self, n: u64) {
        self.request_body_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts response body bytes sent to the client.
    pub fn add_response_bytes(&self, n: u64) {
        self.response_body_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// The response flags so far.
    pub fn flags(&self) -> u64 {
        self.flags.load(Ordering::Relaxed)
    }

    /// Request body bytes received so far.
    pub fn request_bytes(&self) -> u64 {
        self.request_body_bytes.load(Ordering::Relaxed)
    }

    /// Response body bytes sent so far.
    pub fn response_bytes(&self) -> u64 {
        self.response_body_bytes.load(Ordering::Relaxed)
    }
}
