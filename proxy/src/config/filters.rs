//! The filter-chain part of the configuration: named, ordered lists of Wasm
//! plugins (proxy-wasm ABI 0.2.1), and their validation.
//!
//! ```yaml
//! filter_chains:
//!   - name: edge
//!     plugins:
//!       - name: auth
//!         module: filters/auth.wasm
//!         configuration: {header: x-token}
//!         failure_policy: fail_closed
//!         limits: {memory_bytes: 33554432, cpu_deadline: 50ms, max_vms: 4}
//! ```
//! Routes and listeners pick a chain with `filter_chain: NAME` (a route's
//! choice wins over its listener's).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ErrorSink;
use super::model::Config;

/// A named, ordered list of plugins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterChainConfig {
    /// Unique name routes and listeners refer to.
    pub name: String,
    /// Plugins in request order (responses pass them in reverse).
    pub plugins: Vec<PluginConfig>,
}

/// One Wasm plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Name in logs, metrics, `/filters` and fail-closed bodies; unique in its chain.
    pub name: String,
    /// Root id (`plugin_root_id` property).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root_id: String,
    /// Path of the `.wasm` (or `.wat`) file.
    pub module: String,
    /// Expected sha256 of the module (hex); the load fails on a mismatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// VM settings.
    #[serde(default)]
    pub vm_config: VmConfig,
    /// Passed to `proxy_on_configure`: a string as is, anything else as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<serde_json::Value>,
    /// What requests get when the plugin fails.
    #[serde(default)]
    pub failure_policy: FailurePolicyConfig,
    /// Sandbox limits.
    #[serde(default)]
    pub limits: PluginLimitsConfig,
}

/// VM settings of a plugin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// VM id: shared data and queues are shared between plugins with the same one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vm_id: String,
    /// Environment variables (WASI `environ_get`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Passed to `proxy_on_vm_start`: a string as is, anything else as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<serde_json::Value>,
}

/// `fail_closed` (503 naming the plugin) or `fail_open` (skip the plugin).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicyConfig {
    /// Answer 503 with a body naming the plugin.
    #[default]
    FailClosed,
    /// Skip the plugin for the rest of the request.
    FailOpen,
}

/// Sandbox limits of a plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLimitsConfig {
    /// Linear memory cap of each VM, in bytes.
    #[serde(default = "default_memory_bytes")]
    pub memory_bytes: u64,
    /// CPU time one callback may use.
    #[serde(with = "humantime_serde", default = "default_cpu_deadline")]
    pub cpu_deadline: Duration,
    /// Most VMs of this plugin (one per worker thread up to this many).
    #[serde(default = "default_max_vms")]
    pub max_vms: usize,
}

fn default_memory_bytes() -> u64 {
    64 << 20
}

fn default_cpu_deadline() -> Duration {
    Duration::from_millis(100)
}

fn default_max_vms() -> usize {
    4
}

impl Default for PluginLimitsConfig {
    fn default() -> Self {
        Self {
            memory_bytes: default_memory_bytes(),
            cpu_deadline: default_cpu_deadline(),
            max_vms: default_max_vms(),
        }
    }
}

/// Largest memory cap accepted (the engine's pool slots are this big).
pub const MAX_PLUGIN_MEMORY_BYTES: u64 = 512 << 20;

/// Bytes handed to the module for a configuration value.
pub fn configuration_bytes(value: Option<&serde_json::Value>) -> Vec<u8> {
    match value {
        None => Vec::new(),
        Some(serde_json::Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    }
}

/// Checks chains, plugins and every `filter_chain` reference.
pub(super) fn validate_filter_chains(config: &Config, sink: &mut ErrorSink) {
    let mut names = HashSet::new();
    for (i, chain) in config.filter_chains.iter().enumerate() {
        let at = format!("filter_chains[{i}]");
        if chain.name.is_empty() {
            sink.push(format!("{at}.name"), "must not be empty");
        } else if !names.insert(chain.name.as_str()) {
            sink.push(
                format!("{at}.name"),
                format!("duplicate filter chain name '{}'", chain.name),
            );
        }
        if chain.plugins.is_empty() {
            sink.push(format!("{at}.plugins"), "at least one plugin is required");
        }
        let mut plugin_names = HashSet::new();
        for (j, plugin) in chain.plugins.iter().enumerate() {
            validate_plugin(
                plugin,
                &format!("{at}.plugins[{j}]"),
                &mut plugin_names,
                sink,
            );
        }
    }
    let mut check_ref = |name: &Option<String>, at: String| {
        if let Some(name) = name
            && !names.contains(name.as_str())
        {
            sink.push(at, format!("unknown filter chain '{name}'"));
        }
    };
    for (i, listener) in config.listeners.iter().enumerate() {
        check_ref(
            &listener.filter_chain,
            format!("listeners[{i}].filter_chain"),
        );
        for (j, route) in listener.routes.iter().enumerate() {
            check_ref(
                &route.filter_chain,
                format!("listeners[{i}].routes[{j}].filter_chain"),
            );
        }
    }
}

fn validate_plugin<'a>(
    plugin: &'a PluginConfig,
    at: &str,
    names: &mut HashSet<&'a str>,
    sink: &mut ErrorSink,
) {
    if plugin.name.is_empty() {
        sink.push(format!("{at}.name"), "must not be empty");
    } else if !names.insert(plugin.name.as_str()) {
        sink.push(
            format!("{at}.name"),
            format!("duplicate plugin name '{}' in this chain", plugin.name),
        );
    }
    if plugin.module.is_empty() {
        sink.push(format!("{at}.module"), "must not be empty");
    }
    if let Some(sha) = &plugin.sha256
        && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        sink.push(format!("{at}.sha256"), "must be 64 hexadecimal digits");
    }
    let limits = &plugin.limits;
    if limits.memory_bytes < 65536 || limits.memory_bytes > MAX_PLUGIN_MEMORY_BYTES {
        sink.push(
            format!("{at}.limits.memory_bytes"),
            format!("must be between 65536 (one Wasm page) and {MAX_PLUGIN_MEMORY_BYTES}"),
        );
    }
    if limits.cpu_deadline.is_zero() {
        sink.push(
            format!("{at}.limits.cpu_deadline"),
            "must be greater than zero",
        );
    }
    if limits.max_vms == 0 {
        sink.push(format!("{at}.limits.max_vms"), "must be at least 1");
    }
}
