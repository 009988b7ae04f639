//! Canary rollout of a plugin version: a plugin's `canary` names a new
//! module (and optionally a new configuration) that a share of the chain's
//! requests runs instead of the plugin's own, with the policy a control
//! plane promotes or rolls it back by.
//!
//! ```yaml
//! filter_chains:
//!   - name: edge
//!     plugins:
//!       - name: auth
//!         module: auth@v1            # the stable version
//!         canary:
//!           module: auth@v2          # the new version, loaded beside it
//!           percent: 10              # share of the chain's requests, 0 < p < 100
//!           rollout:
//!             healthy_period: 5m     # promoted after this long within bounds
//!             max_error_percent: 5   # rolled back above this error rate...
//!             min_requests: 100      # ...once the canary served this many
//! ```
//! A chain has at most one canary, so each request draws once per chain.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ErrorSink;
use crate::filters::{FilterChainConfig, PluginConfig};

/// The default `rollout.healthy_period`.
pub const DEFAULT_HEALTHY_PERIOD: Duration = Duration::from_secs(300);
/// The default `rollout.max_error_percent`.
pub const DEFAULT_MAX_ERROR_PERCENT: f64 = 5.0;
/// The default `rollout.min_requests`.
pub const DEFAULT_MIN_REQUESTS: u64 = 100;

/// A new version of a plugin, run for a share of the chain's requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// The new version's module (a path, or a registry reference when the
    /// configuration comes from a control plane).
    pub module: String,
    /// Expected sha256 of that module (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The new version's `proxy_on_configure` value; the plugin's own
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<serde_json::Value>,
    /// Percentage of the chain's requests that run the new version
    /// (greater than 0, less than 100; fractions allowed).
    pub percent: f64,
    /// When a control plane promotes or rolls back the new version.
    #[serde(default)]
    pub rollout: RolloutPolicy,
}

/// When the control plane ends a canary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPolicy {
    /// How long the canary must stay within bounds (and have served
    /// `min_requests`) before it is promoted.
    #[serde(
        with = "humantime_serde",
        default = "RolloutPolicy::default_healthy_period"
    )]
    pub healthy_period: Duration,
    /// Error rate, in percent of the canary's requests, above which it is
    /// rolled back (0 rolls back on the first error).
    #[serde(default = "RolloutPolicy::default_max_error_percent")]
    pub max_error_percent: f64,
    /// Requests the canary must have served before its error rate counts
    /// (and before it can be promoted).
    #[serde(default = "RolloutPolicy::default_min_requests")]
    pub min_requests: u64,
}

impl RolloutPolicy {
    fn default_healthy_period() -> Duration {
        DEFAULT_HEALTHY_PERIOD
    }
    fn default_max_error_percent() -> f64 {
        DEFAULT_MAX_ERROR_PERCENT
    }
    fn default_min_requests() -> u64 {
        DEFAULT_MIN_REQUESTS
    }
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        Self {
            healthy_period: DEFAULT_HEALTHY_PERIOD,
            max_error_percent: DEFAULT_MAX_ERROR_PERCENT,
            min_requests: DEFAULT_MIN_REQUESTS,
        }
    }
}

impl PluginConfig {
    /// The plugin as its canary version runs it: the canary's module,
    /// sha256 and (when given) configuration, no canary of its own.
    pub fn canary_version(&self) -> Option<PluginConfig> {
        let canary = self.canary.as_ref()?;
        Some(PluginConfig {
            module: canary.module.clone(),
            sha256: canary.sha256.clone(),
            configuration: canary
                .configuration
                .clone()
                .or_else(|| self.configuration.clone()),
            canary: None,
            ..self.clone()
        })
    }
}

/// The chain's plugin with a canary, with its index.
pub fn chain_canary(chain: &FilterChainConfig) -> Option<(usize, &PluginConfig)> {
    chain
        .plugins
        .iter()
        .enumerate()
        .find(|(_, p)| p.canary.is_some())
}

/// Checks the canaries of a chain at `at` (e.g. `filter_chains[0]`).
pub(crate) fn validate_chain(chain: &FilterChainConfig, at: &str, sink: &mut ErrorSink) {
    let mut first: Option<usize> = None;
    for (j, plugin) in chain.plugins.iter().enumerate() {
        let Some(canary) = &plugin.canary else {
            continue;
        };
        let at = format!("{at}.plugins[{j}].canary");
        if let Some(earlier) = first {
            sink.push(
                at.clone(),
                format!(
                    "chain '{}' already has a canary (plugins[{earlier}]); one per chain",
                    chain.name
                ),
            );
        } else {
            first = Some(j);
        }
        validate(canary, &at, sink);
    }
}

fn validate(canary: &CanaryConfig, at: &str, sink: &mut ErrorSink) {
    if canary.module.is_empty() {
        sink.push(format!("{at}.module"), "must not be empty");
    }
    if let Some(sha) = &canary.sha256
        && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        sink.push(format!("{at}.sha256"), "must be 64 hexadecimal digits");
    }
    if !(canary.percent > 0.0 && canary.percent < 100.0) {
        sink.push(
            format!("{at}.percent"),
            format!(
                "must be greater than 0 and less than 100, not {}",
                canary.percent
            ),
        );
    }
    let policy = &canary.rollout;
    if policy.healthy_period.is_zero() {
        sink.push(
            format!("{at}.rollout.healthy_period"),
            "must be greater than zero",
        );
    }
    if !(policy.max_error_percent >= 0.0 && policy.max_error_percent < 100.0) {
        sink.push(
            format!("{at}.rollout.max_error_percent"),
            format!(
                "must be at least 0 and less than 100, not {}",
                policy.max_error_percent
            ),
        );
    }
    if policy.min_requests == 0 {
        sink.push(format!("{at}.rollout.min_requests"), "must be at least 1");
    }
}
