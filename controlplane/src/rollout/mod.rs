//! Canary rollouts. A configuration version whose plugin has a `canary`
//! starts a rollout ([`RolloutRecord`], stored with the version). Proxies
//! running that version report how many requests each version served,
//! with errors and traps ([`Registry::record_report`](crate::Registry));
//! the control plane sums them and, on each tick, [`decide`]s: roll back
//! (a new version without the canary) when the canary's error rate is
//! above the policy's threshold once it served `min_requests`, promote (a
//! new version running the canary as the plugin) when the healthy period
//! is over, or wait. Both new versions are authored `rollout` with the
//! reason as message. A newer version for the same proxies supersedes a
//! running rollout. Rollouts are kept in the store, so a restarted
//! control plane carries on.

mod decide;
pub mod edit;
mod engine;

pub use decide::{Decision, decide};
pub use engine::{Matched, run};

use serde::{Deserialize, Serialize};
use wasp_config::Config;

use crate::targeting::Selector;
use crate::time;

/// The author of the versions rollouts create.
pub const AUTHOR: &str = "rollout";

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Both versions serve; the control plane watches the counts.
    #[default]
    Running,
    /// The canary version replaced the stable one.
    Promoted,
    /// The canary version was removed.
    RolledBack,
    /// A newer version for the same proxies ended it.
    Superseded,
}

impl RolloutState {
    /// The name shown by `waspctl` and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Promoted => "promoted",
            Self::RolledBack => "rolled_back",
            Self::Superseded => "superseded",
        }
    }
}

/// Requests one version served, with errors and traps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests.
    pub requests: u64,
    /// Of which answered with a 5xx or with a filter failure.
    pub errors: u64,
    /// Filter failures (traps, deadline kills).
    pub traps: u64,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: Counts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.traps = self.traps.saturating_add(other.traps);
    }

    /// Errors in percent of requests (0 without requests).
    pub fn error_percent(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 * 100.0 / self.requests as f64
        }
    }
}

/// One rollout, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// `<version>:<chain>/<plugin>` of the version that started it.
    pub id: String,
    /// The configuration version the proxies run it in (the one that
    /// started it, or the one a sibling rollout's end carried it to).
    pub version: u64,
    /// The chain.
    pub chain: String,
    /// The plugin with the canary.
    pub plugin: String,
    /// The proxies it runs on.
    pub selector: Selector,
    /// The stable module as applied, e.g. `auth@v1`.
    pub stable_module: String,
    /// Its sha256.
    pub stable_sha256: String,
    /// The canary module as applied.
    pub canary_module: String,
    /// Its sha256.
    pub canary_sha256: String,
    /// Share of the chain's requests the canary gets.
    pub percent: f64,
    /// Promoted after this long (milliseconds) within bounds.
    pub healthy_period_ms: u64,
    /// Rolled back above this error rate (percent).
    pub max_error_percent: f64,
    /// Requests the canary serves before its error rate counts.
    pub min_requests: u64,
    /// Where it stands.
    pub state: RolloutState,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it started (Unix milliseconds), for the healthy period.
    pub started_ms: u64,
    /// When it ended (RFC 3339; empty while running).
    pub ended_at: String,
    /// Why it ended, or what it waits for.
    pub reason: String,
    /// The version its promotion or rollback created (0: none).
    pub result_version: u64,
    /// The stable version's counts from every proxy.
    pub stable: Counts,
    /// The canary version's counts from every proxy.
    pub canary: Counts,
}

impl RolloutRecord {
    /// Ends the rollout: `state`, `reason`, now.
    pub fn end(&mut self, state: RolloutState, reason: String, result_version: u64) {
        self.state = state;
        self.reason = reason;
        self.ended_at = time::now();
        self.result_version = result_version;
    }
}

/// The rollouts version `version` starts: one per plugin with a canary.
/// `applied` is the document as applied (module names), `resolved` the
/// one sent to proxies (sha256 references).
pub fn started_by(
    version: u64,
    selector: &Selector,
    applied: &Config,
    resolved: &Config,
) -> Vec<RolloutRecord> {
    let mut rollouts = Vec::new();
    for (chain, pinned) in applied.filter_chains.iter().zip(&resolved.filter_chains) {
        let Some((j, plugin)) = wasp_config::chain_canary(chain) else {
            continue;
        };
        let (Some(canary), Some(pinned_plugin)) = (&plugin.canary, pinned.plugins.get(j)) else {
            continue;
        };
        let sha = |module: &str, sha256: &Option<String>| {
            sha256
                .clone()
                .unwrap_or_else(|| module.trim_start_matches("sha256:").to_owned())
        };
        let pinned_canary = pinned_plugin.canary.as_ref();
        rollouts.push(RolloutRecord {
            id: format!("{version}:{}/{}", chain.name, plugin.name),
            version,
            chain: chain.name.clone(),
            plugin: plugin.name.clone(),
            selector: selector.clone(),
            stable_module: plugin.module.clone(),
            stable_sha256: sha(&pinned_plugin.module, &pinned_plugin.sha256),
            canary_module: canary.module.clone(),
            canary_sha256: pinned_canary
                .map(|c| sha(&c.module, &c.sha256))
                .unwrap_or_default(),
            percent: canary.percent,
            healthy_period_ms: canary.rollout.healthy_period.as_millis() as u64,
            max_error_percent: canary.rollout.max_error_percent,
            min_requests: canary.rollout.min_requests,
            state: RolloutState::Running,
            started_at: time::now(),
            started_ms: time::now_ms(),
            ended_at: String::new(),
            reason: "started".into(),
            result_version: 0,
            stable: Counts::default(),
            canary: Counts::default(),
        });
    }
    rollouts
}

#[cfg(test)]
mod tests;
