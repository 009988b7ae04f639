//! Circuit breaking: per-cluster limits on connections, pending requests,
//! active requests and active retries (or a retry budget). A request over a
//! limit fails at once with 503 instead of queueing without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::IntCounter;
use tokio::sync::Notify;

use wasp_config::{CircuitBreakers, RetryBudget};

/// Which limit a request ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breaker {
    /// `max_requests`.
    MaxRequests,
    /// `max_pending_requests`.
    MaxPending,
    /// `max_retries` or the retry budget.
    MaxRetries,
}

impl Breaker {
    /// The metric label of this breaker.
    pub fn label(self) -> &'static str {
        match self {
            Self::MaxRequests => "max_requests",
            Self::MaxPending => "max_pending_requests",
            Self::MaxRetries => "max_retries",
        }
    }
}

/// Overflow counters, one per breaker.
#[derive(Clone)]
pub struct BreakerMetrics {
    /// `wasp_upstream_rq_overflow_total{cluster,breaker="max_requests"}`.
    pub requests: IntCounter,
    /// `wasp_upstream_rq_overflow_total{cluster,breaker="max_pending_requests"}`.
    pub pending: IntCounter,
    /// `wasp_upstream_rq_overflow_total{cluster,breaker="max_retries"}`.
    pub retries: IntCounter,
}

/// The live counts a cluster's limits are checked against.
pub struct Breakers {
    limits: CircuitBreakers,
    budget: Option<RetryBudget>,
    requests: AtomicUsize,
    pending: AtomicUsize,
    connections: AtomicUsize,
    retries: AtomicUsize,
    /// Woken when a connection is returned to a pool or closed.
    pub(super) connection_freed: Notify,
    metrics: BreakerMetrics,
}

/// A slot under one limit, given back on drop.
pub struct Permit {
    breakers: Arc<Breakers>,
    kind: Slot,
}

#[derive(Clone, Copy)]
enum Slot {
    Request,
    Pending,
    Connection,
    Retry,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.breakers
            .counter(self.kind)
            .fetch_sub(1, Ordering::AcqRel);
        if let Slot::Connection = self.kind {
            self.breakers.connection_freed.notify_waiters();
        }
    }
}

impl Breakers {
    /// Counters for a cluster with these limits.
    pub fn new(
        limits: CircuitBreakers,
        budget: Option<RetryBudget>,
        metrics: BreakerMetrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            limits,
            budget,
            requests: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            retries: AtomicUsize::new(0),
            connection_freed: Notify::new(),
            metrics,
        })
    }

    fn counter(&self, slot: Slot) -> &AtomicUsize {
        match slot {
            Slot::Request => &self.requests,
            Slot::Pending => &self.pending,
            Slot::Connection => &self.connections,
            Slot::Retry => &self.retries,
        }
    }

    fn acquire(self: &Arc<Self>, slot: Slot, limit: usize) -> Option<Permit> {
        let counter = self.counter(slot);
        let mut current = counter.load(Ordering::Acquire);
        loop {
            if current >= limit {
                return None;
            }
            match counter.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Permit {
                        breakers: Arc::clone(self),
                        kind: slot,
                    });
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// A slot for a request in flight (`max_requests`).
    pub fn try_request(self: &Arc<Self>) -> Result<Permit, Breaker> {
        self.acquire(Slot::Request, self.limits.max_requests)
            .ok_or_else(|| {
                self.metrics.requests.inc();
                Breaker::MaxRequests
            })
    }

    /// A slot for a request waiting for a connection (`max_pending_requests`).
    pub fn try_pending(self: &Arc<Self>) -> Result<Permit, Breaker> {
        self.acquire(Slot::Pending, self.limits.max_pending_requests)
            .ok_or_else(|| {
                self.metrics.pending.inc();
                Breaker::MaxPending
            })
    }

    /// A slot for a new connection (`max_connections`); `None` when full.
    pub fn try_connection(self: &Arc<Self>) -> Option<Permit> {
        self.acquire(Slot::Connection, self.limits.max_connections)
    }

    /// A slot for a retry: under the retry budget when one is set (a share
    /// of active requests, with a floor), else under `max_retries`.
    pub fn try_retry(self: &Arc<Self>) -> Result<Permit, Breaker> {
        let limit = match &self.budget {
            Some(budget) => {
                let active = self.requests.load(Ordering::Acquire) as f64;
                ((active * budget.budget_percent / 100.0) as usize)
                    .max(budget.min_retry_concurrency)
            }
            None => self.limits.max_retries,
        };
        self.acquire(Slot::Retry, limit).ok_or_else(|| {
            self.metrics.retries.inc();
            Breaker::MaxRetries
        })
    }

    /// The retry slot for a request's next retry: the one it already holds
    /// from an earlier retry (a request has one retry in flight at a time,
    /// so it keeps its slot), else a new one under [`Breakers::try_retry`].
    pub fn retry_slot(self: &Arc<Self>, held: Option<Permit>) -> Result<Permit, Breaker> {
        match held {
            Some(permit) => Ok(permit),
            None => self.try_retry(),
        }
    }

    /// Requests in flight.
    pub fn active_requests(&self) -> usize {
        self.requests.load(Ordering::Acquire)
    }

    /// Open connections.
    pub fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers(max_requests: usize, budget: Option<RetryBudget>) -> Arc<Breakers> {
        let limits = CircuitBreakers {
            max_requests,
            max_pending_requests: 1,
            max_connections: 1,
            max_retries: 2,
        };
        let counter = || IntCounter::new("c", "c").unwrap();
        Breakers::new(
            limits,
            budget,
            BreakerMetrics {
                requests: counter(),
                pending: counter(),
                retries: counter(),
            },
        )
    }

    #[test]
    fn requests_over_the_limit_overflow_and_slots_come_back() {
        let b = breakers(2, None);
        let first = b.try_request().unwrap();
        let _second = b.try_request().unwrap();
        assert_eq!(b.try_request().err(), Some(Breaker::MaxRequests));
        assert_eq!(b.metrics.requests.get(), 1);
        drop(first);
        assert!(b.try_request().is_ok());
    }

    #[test]
    fn retries_follow_max_retries_without_a_budget() {
        let b = breakers(100, None);
        let _r1 = b.try_retry().unwrap();
        let _r2 = b.try_retry().unwrap();
        assert_eq!(b.try_retry().err(), Some(Breaker::MaxRetries));
    }

    #[test]
    fn a_request_retrying_again_keeps_its_retry_slot() {
        let b = breakers(100, None);
        let first = b.retry_slot(None).unwrap();
        let second = b.retry_slot(Some(first)).unwrap();
        assert_eq!(b.retries.load(Ordering::Acquire), 1, "one slot per request");
        let _other = b.retry_slot(None).unwrap();
        assert_eq!(b.retry_slot(None).err(), Some(Breaker::MaxRetries));
        drop(second);
        assert!(b.retry_slot(None).is_ok());
    }

    #[test]
    fn retry_budget_scales_with_active_requests() {
        let b = breakers(
            1000,
            Some(RetryBudget {
                budget_percent: 20.0,
                min_retry_concurrency: 1,
            }),
        );
        let active: Vec<_> = (0..50).map(|_| b.try_request().unwrap()).collect();
        let retries: Vec<_> = (0..10).map(|_| b.try_retry().unwrap()).collect();
        assert_eq!(
            b.try_retry().err(),
            Some(Breaker::MaxRetries),
            "20% of 50 is 10"
        );
        drop(retries);
        drop(active);
        let _one = b.try_retry().unwrap();
        assert!(b.try_retry().is_err(), "floor of 1 with no active requests");
    }
}
