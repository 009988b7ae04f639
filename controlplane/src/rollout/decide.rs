//! The rollout decision: from a running rollout's counts, its policy and
//! the time, whether to roll back, promote or wait. Pure, so every rule
//! has a unit test.

use std::time::Duration;

use super::RolloutRecord;

/// What to do with a running rollout.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Keep both versions serving; why.
    Wait(String),
    /// Replace the stable version with the canary; why.
    Promote(String),
    /// Remove the canary; why.
    RollBack(String),
}

fn period(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// Decides what becomes of `rollout` at `now_ms` (Unix milliseconds).
///
/// Rolled back as soon as the canary has served `min_requests` and its
/// error rate is above `max_error_percent`; promoted once the healthy
/// period since its start is over and it has served `min_requests`
/// within bounds; otherwise it waits.
pub fn decide(rollout: &RolloutRecord, now_ms: u64) -> Decision {
    let canary = &rollout.canary;
    let rate = canary.error_percent();
    let enough = canary.requests >= rollout.min_requests;
    if enough && rate > rollout.max_error_percent {
        return Decision::RollBack(format!(
            "canary {} rolled back: error rate {rate:.1}% ({} errors, {} traps in {} requests) \
             above {}%",
            rollout.canary_module,
            canary.errors,
            canary.traps,
            canary.requests,
            rollout.max_error_percent
        ));
    }
    let elapsed = now_ms.saturating_sub(rollout.started_ms);
    if elapsed < rollout.healthy_period_ms {
        return Decision::Wait(format!(
            "healthy for {} of {}; canary error rate {rate:.1}% in {} requests",
            period(elapsed / 1000 * 1000),
            period(rollout.healthy_period_ms),
            canary.requests
        ));
    }
    if !enough {
        return Decision::Wait(format!(
            "healthy period over; waiting for {} canary requests ({} so far)",
            rollout.min_requests, canary.requests
        ));
    }
    Decision::Promote(format!(
        "canary {} promoted: healthy for {} with error rate {rate:.1}% ({} errors in {} \
         requests) within {}%",
        rollout.canary_module,
        period(rollout.healthy_period_ms),
        canary.errors,
        canary.requests,
        rollout.max_error_percent
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::{Counts, RolloutState};

    fn rollout(requests: u64, errors: u64) -> RolloutRecord {
        RolloutRecord {
            id: "3:edge/auth".into(),
            version: 3,
            chain: "edge".into(),
            plugin: "auth".into(),
            selector: Default::default(),
            stable_module: "auth@v1".into(),
            stable_sha256: "a".repeat(64),
            canary_module: "auth@v2".into(),
            canary_sha256: "b".repeat(64),
            percent: 10.0,
            healthy_period_ms: 60_000,
            max_error_percent: 5.0,
            min_requests: 100,
            state: RolloutState::Running,
            started_at: String::new(),
            started_ms: 1_000_000,
            ended_at: String::new(),
            reason: String::new(),
            result_version: 0,
            stable: Counts::default(),
            canary: Counts {
                requests,
                errors,
                traps: errors,
            },
        }
    }

    const START: u64 = 1_000_000;

    #[test]
    fn an_error_rate_above_the_threshold_rolls_back_once_enough_requests_came() {
        assert!(matches!(
            decide(&rollout(99, 99), START + 1),
            Decision::Wait(_)
        ));
        let Decision::RollBack(why) = decide(&rollout(100, 6), START + 1) else {
            panic!("rolled back")
        };
        assert_eq!(
            why,
            "canary auth@v2 rolled back: error rate 6.0% (6 errors, 6 traps in 100 requests) \
             above 5%"
        );
    }

    #[test]
    fn an_error_rate_at_the_threshold_is_within_bounds() {
        assert!(matches!(
            decide(&rollout(100, 5), START + 1),
            Decision::Wait(_)
        ));
        assert!(matches!(
            decide(&rollout(100, 5), START + 60_000),
            Decision::Promote(_)
        ));
    }

    #[test]
    fn a_healthy_canary_is_promoted_after_its_period_not_before() {
        let Decision::Wait(why) = decide(&rollout(500, 0), START + 59_999) else {
            panic!("waits")
        };
        assert_eq!(
            why,
            "healthy for 59s of 1m; canary error rate 0.0% in 500 requests"
        );
        let Decision::Promote(why) = decide(&rollout(500, 0), START + 60_000) else {
            panic!("promoted")
        };
        assert_eq!(
            why,
            "canary auth@v2 promoted: healthy for 1m with error rate 0.0% (0 errors in 500 \
             requests) within 5%"
        );
    }

    #[test]
    fn without_enough_requests_the_period_alone_promotes_nothing() {
        let Decision::Wait(why) = decide(&rollout(10, 0), START + 3_600_000) else {
            panic!("waits")
        };
        assert_eq!(
            why,
            "healthy period over; waiting for 100 canary requests (10 so far)"
        );
    }

    #[test]
    fn a_zero_threshold_rolls_back_on_the_first_error() {
        let mut r = rollout(1, 1);
        r.max_error_percent = 0.0;
        r.min_requests = 1;
        assert!(matches!(decide(&r, START), Decision::RollBack(_)));
        r.canary.errors = 0;
        assert!(matches!(decide(&r, START), Decision::Wait(_)));
    }

    #[test]
    fn a_clock_before_the_start_waits() {
        assert!(matches!(decide(&rollout(500, 0), 0), Decision::Wait(_)));
    }
}
