//! What a request holds of its cluster until its response has been sent:
//! the cluster's `max_requests` slot, the endpoint's in-flight count (read
//! by least-request balancing) and, for a retried request, the retry slot.

use super::breaker::Permit;
use super::endpoint::ActiveRequest;

/// Released when dropped, i.e. when the response body is done.
#[derive(Default)]
pub struct RequestGuard {
    /// The cluster's `max_requests` slot.
    pub cluster_request: Option<Permit>,
    /// The endpoint's in-flight count.
    pub endpoint_request: Option<ActiveRequest>,
    /// The cluster's retry slot, when the response comes from a retry.
    pub retry: Option<Permit>,
}
