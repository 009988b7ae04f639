//! Canary versions of plugins on the request path. A chain whose plugin
//! has a `canary` is built twice: as configured (the stable version) and
//! with that plugin's canary version in its place, both loaded side by
//! side. Each request draws once (a thread-local random `u32` against a
//! threshold) which of the two it runs, and a [`Tally`] counts it for its
//! version when it ends: a request, an error when the response was a 5xx
//! or a filter failed on it (trap, deadline, dead VM), and each failure.
//! The control-plane source takes these counts ([`Canary::take`]) and
//! reports them.
//!
//! A reload that keeps a canary as it was (same chain, plugin and both
//! modules) keeps its counts too ([`Canary::carry_counts`]): requests still
//! in flight on the old snapshot are counted where the new one reports.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use wasp_filter_host::{ChainStream, FilterChain};

/// The canaries of a snapshot, by chain name.
pub type Canaries = HashMap<String, Arc<Canary>>;

/// One chain's canary: the chain with the plugin's canary version, the
/// share of requests it gets, and the counts of both versions.
#[derive(Debug)]
pub struct Canary {
    /// The chain's name.
    pub chain: String,
    /// The plugin with the canary version.
    pub plugin: String,
    /// Draws below this run the canary (`percent` of 2³²).
    threshold: u32,
    /// The configured percentage.
    pub percent: f64,
    /// The chain with the plugin's canary version in its place.
    pub canary_chain: Arc<FilterChain>,
    /// The stable version's counts (shared with the same canary of the
    /// snapshots before and after, see [`Canary::carry_counts`]).
    pub stable: Arc<VersionCounts>,
    /// The canary version's counts (shared likewise).
    pub canary: Arc<VersionCounts>,
}

/// Counts of one version since they were last taken.
#[derive(Debug, Default)]
pub struct VersionCounts {
    /// The version's module (sha256 hex).
    pub sha256: String,
    requests: AtomicU64,
    errors: AtomicU64,
    traps: AtomicU64,
}

/// Counts taken from a [`VersionCounts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// Requests that ended.
    pub requests: u64,
    /// Of which ended with a 5xx or a filter failure.
    pub errors: u64,
    /// Filter failures (traps, deadline kills, dead VMs).
    pub traps: u64,
}

impl VersionCounts {
    fn new(sha256: String) -> Self {
        Self {
            sha256,
            ..Self::default()
        }
    }

    /// The counts since the last call, resetting them.
    pub fn take(&self) -> Taken {
        Taken {
            requests: self.requests.swap(0, Ordering::Relaxed),
            errors: self.errors.swap(0, Ordering::Relaxed),
            traps: self.traps.swap(0, Ordering::Relaxed),
        }
    }
}

impl Canary {
    /// A canary of `plugin` in `chain` for `percent` of its requests.
    pub fn new(
        chain: &str,
        plugin: &str,
        percent: f64,
        canary_chain: Arc<FilterChain>,
        stable_sha256: String,
        canary_sha256: String,
    ) -> Self {
        let share = (percent / 100.0).clamp(0.0, 1.0);
        Self {
            chain: chain.to_owned(),
            plugin: plugin.to_owned(),
            threshold: (share * f64::from(u32::MAX)) as u32,
            percent,
            canary_chain,
            stable: Arc::new(VersionCounts::new(stable_sha256)),
            canary: Arc::new(VersionCounts::new(canary_sha256)),
        }
    }

    /// Shares `old`'s counts when `old` is the same canary (same chain,
    /// plugin and stable and canary modules), as the previous snapshot's:
    /// the requests it still serves then count where this one reports.
    /// Returns whether it did.
    pub fn carry_counts(&mut self, old: &Canary) -> bool {
        let same = self.chain == old.chain
            && self.plugin == old.plugin
            && self.stable.sha256 == old.stable.sha256
            && self.canary.sha256 == old.canary.sha256;
        if same {
            self.stable = Arc::clone(&old.stable);
            self.canary = Arc::clone(&old.canary);
        }
        same
    }

    /// Whether this request runs the canary version.
    pub fn draw(&self) -> bool {
        fastrand::u32(..) < self.threshold
    }

    /// The counts of both versions since the last call: (stable, canary).
    pub fn take(&self) -> (Taken, Taken) {
        (self.stable.take(), self.canary.take())
    }
}

/// One request's count for its version, recorded when dropped (with the
/// chain stream it holds, so after every filter callback of the request).
pub struct Tally {
    canary: Arc<Canary>,
    is_canary: bool,
    status: AtomicU16,
    stream: Arc<ChainStream>,
}

impl Tally {
    /// Counts a request of `stream` for the canary (`is_canary`) or the
    /// stable version of `canary`.
    pub fn new(canary: Arc<Canary>, is_canary: bool, stream: Arc<ChainStream>) -> Self {
        Self {
            canary,
            is_canary,
            status: AtomicU16::new(0),
            stream,
        }
    }

    /// The status the client was answered with.
    pub fn set_status(&self, status: http::StatusCode) {
        self.status.store(status.as_u16(), Ordering::Relaxed);
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        let counts = if self.is_canary {
            &self.canary.canary
        } else {
            &self.canary.stable
        };
        let failures = u64::from(self.stream.failures());
        counts.requests.fetch_add(1, Ordering::Relaxed);
        if failures > 0 || self.status.load(Ordering::Relaxed) >= 500 {
            counts.errors.fetch_add(1, Ordering::Relaxed);
        }
        counts.traps.fetch_add(failures, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(percent: f64) -> Canary {
        let chain = Arc::new(FilterChain::new("c", Vec::new()));
        Canary::new("c", "p", percent, chain, "s".into(), "c".into())
    }

    #[test]
    fn the_draw_respects_the_percentage() {
        let c = canary(20.0);
        let hits = (0..100_000).filter(|_| c.draw()).count();
        assert!((18_000..22_000).contains(&hits), "{hits}");
        assert_eq!((0..10_000).filter(|_| canary(0.0).draw()).count(), 0);
    }

    #[test]
    fn taking_counts_resets_them() {
        let c = canary(50.0);
        c.canary.requests.fetch_add(3, Ordering::Relaxed);
        c.canary.errors.fetch_add(1, Ordering::Relaxed);
        let (stable, taken) = c.take();
        assert_eq!(stable, Taken::default());
        assert_eq!(
            taken,
            Taken {
                requests: 3,
                errors: 1,
                traps: 0
            }
        );
        assert_eq!(c.take().1, Taken::default());
    }

    #[test]
    fn the_same_canary_in_the_next_snapshot_keeps_the_counts_of_requests_in_flight() {
        let old = Arc::new(canary(25.0));
        let chain = || Arc::new(FilterChain::new("c", Vec::new()));
        let in_flight = Tally::new(
            Arc::clone(&old),
            false,
            Arc::new(chain().start(Default::default())),
        );
        let mut next = Canary::new("c", "p", 50.0, chain(), "s".into(), "c".into());
        assert!(next.carry_counts(&old));
        // The old snapshot's request ends after the new one took over.
        drop(in_flight);
        assert_eq!(next.take().0.requests, 1);
        // Another module, or another plugin, starts afresh.
        for (plugin, stable) in [("p", "s2"), ("q", "s")] {
            let mut other = Canary::new("c", plugin, 25.0, chain(), stable.into(), "c".into());
            assert!(!other.carry_counts(&old));
            old.stable.requests.fetch_add(1, Ordering::Relaxed);
            assert_eq!(other.take().0.requests, 0);
            old.take();
        }
    }
}
