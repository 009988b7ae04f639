//! Outlier detection (passive health): an endpoint that fails
//! `consecutive_5xx` times in a row is ejected for `base_ejection_time` ×
//! the number of times it has been ejected, unless that would eject more than
//! `max_ejection_percent` of the cluster (at least one endpoint may always be
//! ejected). It comes back by itself when the time is up.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::endpoint::Endpoint;
use wasp_config::OutlierDetection;

/// What an attempt on an endpoint ended with, for outlier detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response below 500.
    Success,
    /// A 5xx response, connect failure, reset or timeout.
    Failure,
}

/// Records a success: the endpoint's run of consecutive failures ends.
pub fn record_success(endpoint: &Endpoint) {
    endpoint
        .outlier
        .consecutive_failures
        .store(0, Ordering::Relaxed);
}

/// Records an outcome; returns true when it ejected the endpoint.
pub fn record(
    policy: &OutlierDetection,
    endpoints: &[Arc<Endpoint>],
    endpoint: &Endpoint,
    outcome: Outcome,
    now_ms: u64,
) -> bool {
    let state = &endpoint.outlier;
    if outcome == Outcome::Success {
        record_success(endpoint);
        return false;
    }
    let failures = state.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
    if failures < policy.consecutive_5xx || endpoint.is_ejected(now_ms) {
        return false;
    }
    let ejected = endpoints.iter().filter(|e| e.is_ejected(now_ms)).count();
    let allowed = (endpoints.len() * policy.max_ejection_percent as usize / 100).max(1);
    if ejected >= allowed {
        return false;
    }
    let times = state.times_ejected.fetch_add(1, Ordering::Relaxed) + 1;
    let duration = policy.base_ejection_time.as_millis() as u64 * u64::from(times);
    state
        .ejected_until_ms
        .store(now_ms + duration.max(1), Ordering::Relaxed);
    state.consecutive_failures.store(0, Ordering::Relaxed);
    endpoint.metrics.ejected.set(1);
    true
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::upstream::test_endpoints;

    fn policy() -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 3,
            base_ejection_time: Duration::from_millis(100),
            max_ejection_percent: 50,
        }
    }

    #[test]
    fn consecutive_failures_eject_for_base_time_times_ejections() {
        let endpoints = test_endpoints(4);
        let e = &endpoints[0];
        assert!(!record(&policy(), &endpoints, e, Outcome::Failure, 0));
        assert!(!record(&policy(), &endpoints, e, Outcome::Failure, 0));
        assert!(record(&policy(), &endpoints, e, Outcome::Failure, 0));
        assert!(e.is_ejected(99));
        assert!(!e.is_ejected(100), "back after base_ejection_time");
        for _ in 0..3 {
            record(&policy(), &endpoints, e, Outcome::Failure, 1000);
        }
        assert!(
            e.is_ejected(1199) && !e.is_ejected(1200),
            "second ejection lasts twice as long"
        );
    }

    #[test]
    fn a_success_resets_the_streak() {
        let endpoints = test_endpoints(2);
        let e = &endpoints[0];
        record(&policy(), &endpoints, e, Outcome::Failure, 0);
        record(&policy(), &endpoints, e, Outcome::Failure, 0);
        record(&policy(), &endpoints, e, Outcome::Success, 0);
        assert!(!record(&policy(), &endpoints, e, Outcome::Failure, 0));
        assert!(!e.is_ejected(1));
    }

    #[test]
    fn max_ejection_percent_caps_ejections_but_allows_one() {
        let endpoints = test_endpoints(4);
        for e in &endpoints {
            for _ in 0..3 {
                record(&policy(), &endpoints, e, Outcome::Failure, 0);
            }
        }
        assert_eq!(
            endpoints.iter().filter(|e| e.is_ejected(1)).count(),
            2,
            "50% of 4"
        );
        let tiny = OutlierDetection {
            max_ejection_percent: 0,
            ..policy()
        };
        let endpoints = test_endpoints(3);
        for e in &endpoints {
            for _ in 0..3 {
                record(&tiny, &endpoints, e, Outcome::Failure, 0);
            }
        }
        assert_eq!(endpoints.iter().filter(|e| e.is_ejected(1)).count(), 1);
    }
}
