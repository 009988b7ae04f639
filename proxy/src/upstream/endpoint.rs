//! One upstream endpoint: its connection pool, its load (active requests)
//! and its health — active (health checks) and passive (outlier ejection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use prometheus::{IntCounter, IntGauge};

use super::pool::Pool;

/// An endpoint of a cluster.
pub struct Endpoint {
    /// The endpoint's address.
    pub addr: SocketAddr,
    /// Load-balancing weight.
    pub weight: u32,
    pub(super) pool: Pool,
    active: AtomicUsize,
    /// Passive health state.
    pub(super) outlier: OutlierState,
    /// Active health state.
    pub(super) health: HealthState,
    pub(super) metrics: EndpointMetrics,
}

/// Per-endpoint metric handles, resolved once.
#[derive(Clone)]
pub struct EndpointMetrics {
    /// `wasp_upstream_endpoint_rq_total{cluster,endpoint}`.
    pub requests: IntCounter,
    /// `wasp_upstream_endpoint_ejected{cluster,endpoint}`.
    pub ejected: IntGauge,
    /// `wasp_upstream_endpoint_healthy{cluster,endpoint}`.
    pub healthy: IntGauge,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Consecutive failures and ejection of an endpoint. Times are milliseconds
/// since the cluster's epoch; 0 means "not ejected".
#[derive(Default)]
pub struct OutlierState {
    pub(super) consecutive_failures: AtomicU32,
    pub(super) ejected_until_ms: AtomicU64,
    pub(super) times_ejected: AtomicU32,
}

/// Result streaks of active health checks.
pub struct HealthState {
    pub(super) healthy: AtomicBool,
    pub(super) successes: AtomicU32,
    pub(super) failures: AtomicU32,
}

impl Default for HealthState {
    fn default() -> Self {
        Self {
            healthy: AtomicBool::new(true),
            successes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
        }
    }
}

impl Endpoint {
    pub(super) fn new(addr: SocketAddr, weight: u32, pool: Pool, metrics: EndpointMetrics) -> Self {
        metrics.healthy.set(1);
        metrics.ejected.set(0);
        Self {
            addr,
            weight: weight.max(1),
            pool,
            active: AtomicUsize::new(0),
            outlier: OutlierState::default(),
            health: HealthState::default(),
            metrics,
        }
    }

    /// Requests in flight to this endpoint.
    pub fn active_requests(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts a request as in flight until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.metrics.requests.inc();
        ActiveRequest(Arc::clone(self))
    }

    /// True when health checks pass.
    pub fn is_healthy(&self) -> bool {
        self.health.healthy.load(Ordering::Relaxed)
    }

    /// True while ejected by outlier detection at `now_ms` (cluster epoch).
    pub fn is_ejected(&self, now_ms: u64) -> bool {
        let until = self.outlier.ejected_until_ms.load(Ordering::Relaxed);
        until != 0 && now_ms < until
    }

    /// True when the endpoint may take traffic outside panic mode.
    pub fn is_available(&self, now_ms: u64) -> bool {
        self.is_healthy() && !self.is_ejected(now_ms)
    }

    /// A JSON view for `/config_dump`.
    pub fn dump(&self, now_ms: u64, epoch: Instant) -> serde_json::Value {
        let until = self.outlier.ejected_until_ms.load(Ordering::Relaxed);
        serde_json::json!({
            "address": self.addr.to_string(),
            "weight": self.weight,
            "healthy": self.is_healthy(),
            "ejected": self.is_ejected(now_ms),
            "ejected_for_ms": if self.is_ejected(now_ms) { until - now_ms } else { 0 },
            "times_ejected": self.outlier.times_ejected.load(Ordering::Relaxed),
            "active_requests": self.active_requests(),
            "uptime_ms": epoch.elapsed().as_millis() as u64,
        })
    }
}

/// A request in flight to an endpoint (for least-request balancing).
pub struct ActiveRequest(Arc<Endpoint>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}
