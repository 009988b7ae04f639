//! The plugin configuration: Istio's `mirror` (here the wasp `cluster` to
//! send copies to) and `mirrorPercentage` (`percentage.value`), plus the
//! body limit and the copy's timeout.

use serde::Deserialize;
use std::time::Duration;

/// Bodies up to this size are mirrored whole (64 KiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024;
/// How long a copy may take before it counts as failed (Envoy's default
/// route timeout).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The plugin configuration (see the crate's README).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The cluster copies go to (a cluster of the proxy's configuration).
    pub cluster: String,
    /// Share of requests mirrored (default: all).
    #[serde(default)]
    pub percentage: Percentage,
    /// Larger bodies are mirrored headers-only.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// The copy's callout timeout.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

/// Istio's `Percent`: `{value: 0.1}` is one request in a thousand.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percentage {
    /// 0–100, fractions allowed.
    pub value: f64,
}

impl Default for Percentage {
    /// All requests, as Istio does when `mirrorPercentage` is left out.
    fn default() -> Self {
        Percentage { value: 100.0 }
    }
}

impl Config {
    /// Checks what serde cannot, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.cluster.trim().is_empty() {
            return Err("cluster: is empty".into());
        }
        let value = self.percentage.value;
        if !(value.is_finite() && (0.0..=100.0).contains(&value)) {
            return Err(format!(
                "percentage.value: {value} is not between 0 and 100"
            ));
        }
        if self.timeout.is_zero() {
            return Err("timeout: must be longer than 0s".into());
        }
        Ok(())
    }
}
