//! A listener's request limits and timeouts, as the snapshot holds them
//! and the request path (`http::admission`, `http::timeout`) and the hyper
//! server settings (`serving`) read them.

use std::time::Duration;

use prometheus::IntCounter;

/// A listener's request header limits.
#[derive(Clone, Copy, Debug)]
pub struct HeaderLimits {
    /// Largest header block in bytes: method, path and query, authority
    /// (`:authority` or `Host`, once) and every other header's name and
    /// value.
    pub max_bytes: usize,
    /// Most header fields (the authority, `:authority` or `Host`, is one).
    pub max_count: usize,
}

impl HeaderLimits {
    /// Limits of `kb` KiB and `count` fields.
    pub fn new(kb: u32, count: u32) -> Self {
        Self {
            max_bytes: kb as usize * 1024,
            max_count: count as usize,
        }
    }
}

/// A listener's request timeouts; `None` disables one.
#[derive(Clone, Debug, Default)]
pub struct Timeouts {
    /// Until the request has been received completely.
    pub request: Option<Duration>,
    /// Longest time without a byte either way.
    pub idle: Option<Duration>,
    /// `wasp_downstream_rq_timeout_total{listener}`.
    pub request_expired: Option<IntCounter>,
    /// `wasp_downstream_rq_idle_timeout_total{listener}`.
    pub idle_expired: Option<IntCounter>,
}
