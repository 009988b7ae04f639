//! Rate limiting of the warnings a filter's misbehaviour causes (ABI misuse,
//! limits exceeded): per plugin and hostcall, the first is logged at once,
//! then at most one per [`WARN_INTERVAL`] with the number left unlogged. The
//! counters behind them (`wasp_filter_abi_misuse_total`,
//! `wasp_filter_limit_exceeded_total`) count every occurrence.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The shortest time between two warnings of one plugin about one hostcall.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// When a key was last logged and how many were dropped since.
struct Window {
    logged: Instant,
    suppressed: u64,
}

/// Per-key warning windows of one plugin.
#[derive(Default)]
pub(crate) struct WarnLimiter {
    windows: Mutex<HashMap<String, Window>>,
}

impl WarnLimiter {
    /// Whether a warning about `key` may be logged now: `Some(n)` with the
    /// number of warnings about it suppressed since the last one logged, or
    /// `None` to stay quiet (the warning is counted as suppressed).
    pub fn admit(&self, key: &str) -> Option<u64> {
        self.admit_at(key, Instant::now())
    }

    fn admit_at(&self, key: &str, now: Instant) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        match windows.get_mut(key) {
            Some(window) if now.duration_since(window.logged) < WARN_INTERVAL => {
                window.suppressed += 1;
                None
            }
            Some(window) => {
                let suppressed = std::mem::take(&mut window.suppressed);
                window.logged = now;
                Some(suppressed)
            }
            None => {
                windows.insert(
                    key.to_owned(),
                    Window {
                        logged: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_key_and_interval_reporting_what_was_suppressed() {
        let limiter = WarnLimiter::default();
        let t0 = Instant::now();
        assert_eq!(limiter.admit_at("proxy_log", t0), Some(0));
        for _ in 0..599 {
            assert_eq!(
                limiter.admit_at("proxy_log", t0 + Duration::from_secs(1)),
                None
            );
        }
        assert_eq!(
            limiter.admit_at("proxy_get_property", t0),
            Some(0),
            "keys are separate"
        );
        assert_eq!(limiter.admit_at("proxy_log", t0 + WARN_INTERVAL), Some(599));
        assert_eq!(limiter.admit_at("proxy_log", t0 + WARN_INTERVAL), None);
    }
}
