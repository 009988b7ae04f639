//! Reconnection delays: exponential from [`BASE`] to [`MAX`], each drawn at
//! random from its upper half so proxies that lost the control plane
//! together do not come back in lockstep.

use std::time::Duration;

/// The first delay's upper bound.
pub const BASE: Duration = Duration::from_millis(100);
/// The largest delay.
pub const MAX: Duration = Duration::from_secs(5);

/// Jittered exponential back-off.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = BASE.saturating_mul(1 << self.attempt.min(16)).min(MAX);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// After a successful connection: start from [`BASE`] again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_reset() {
        let mut backoff = Backoff::default();
        let first = backoff.next_delay();
        assert!(first >= BASE / 2 && first <= BASE, "{first:?}");
        for _ in 0..20 {
            let delay = backoff.next_delay();
            assert!(delay <= MAX, "{delay:?}");
        }
        assert!(backoff.next_delay() >= MAX / 2);
        backoff.reset();
        assert!(backoff.next_delay() <= BASE);
    }
}
