//! The filter-chain part of the configuration: named, ordered lists of Wasm
//! plugins (proxy-wasm ABI 0.2.1), and the plugin checks that need a Wasm
//! host or a module registry (`PluginValidator`).
//!
//! ```yaml
//! filter_chains:
//!   - name: edge
//!     plugins:
//!       - name: auth
//!         module: filters/auth.wasm
//!         configuration: {header: x-token}
//!         failure_policy: fail_closed
//!         limits: {memory_bytes: 33554432, cpu_deadline: 10ms, max_vms: 4}
//! ```
//! Routes and listeners pick a chain with `filter_chain: NAME` (a route's
//! choice wins over its listener's).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::error::ErrorSink;

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
    pub failure_policy: FailurePolicy,
    /// Sandbox limits.
    #[serde(default)]
    pub limits: PluginLimitsConfig,
    /// A new version of this plugin run for a share of the chain's
    /// requests (see [`CanaryConfig`](crate::CanaryConfig)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<crate::CanaryConfig>,
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

/// What a request gets when a plugin cannot run (trap, deadline, crashed
/// VM): `fail_closed` (503 naming the plugin) or `fail_open` (skip the
/// plugin for the rest of the request). The filter host uses this type too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Answer 503 with a body naming the plugin.
    #[default]
    FailClosed,
    /// Skip the plugin for the rest of the request.
    FailOpen,
}

impl FailurePolicy {
    /// The name used in the configuration and `/filters`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailClosed => "fail_closed",
            Self::FailOpen => "fail_open",
        }
    }
}

/// Sandbox limits of a plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLimitsConfig {
    /// Linear memory cap of each VM, in bytes.
    #[serde(default = "defaults::plugin_memory_bytes")]
    pub memory_bytes: u64,
    /// CPU time one callback may use.
    #[serde(with = "humantime_serde", default = "defaults::plugin_cpu_deadline")]
    pub cpu_deadline: Duration,
    /// Most VMs of this plugin (one per worker thread up to this many).
    #[serde(default = "defaults::plugin_max_vms")]
    pub max_vms: usize,
    /// Bytes (names plus values) a filter may grow one header or trailer map of a request to.
    #[serde(default = "defaults::plugin_max_header_bytes")]
    pub max_header_bytes: u64,
    /// Entries a filter may grow one header or trailer map of a request to.
    #[serde(default = "defaults::plugin_max_header_count")]
    pub max_header_count: u64,
    /// Body bytes a filter may hold buffered or grow a body buffer to, per direction.
    #[serde(default = "defaults::plugin_max_buffered_body_bytes")]
    pub max_buffered_body_bytes: u64,
    /// Bytes of properties (paths plus values) a filter may set on one request.
    #[serde(default = "defaults::plugin_max_property_bytes")]
    pub max_property_bytes: u64,
    /// Bytes of shared data (keys plus values) in this plugin's `vm_id`.
    #[serde(default = "defaults::plugin_max_shared_data_bytes")]
    pub max_shared_data_bytes: u64,
    /// Shared data keys in this plugin's `vm_id`.
    #[serde(default = "defaults::plugin_max_shared_data_keys")]
    pub max_shared_data_keys: u64,
    /// Items a shared queue holds when this plugin enqueues.
    #[serde(default = "defaults::plugin_max_queue_depth")]
    pub max_queue_depth: u64,
    /// Bytes a shared queue holds when this plugin enqueues.
    #[serde(default = "defaults::plugin_max_queue_bytes")]
    pub max_queue_bytes: u64,
    /// Bytes of one callout's request (headers, body, trailers; all the
    /// messages of a gRPC stream).
    #[serde(default = "defaults::plugin_max_callout_request_bytes")]
    pub max_callout_request_bytes: u64,
    /// Bytes of one callout's response the host buffers for the filter.
    #[serde(default = "defaults::plugin_max_callout_response_bytes")]
    pub max_callout_response_bytes: u64,
    /// Callouts one VM may have in flight (calls and open gRPC streams).
    #[serde(default = "defaults::plugin_max_callouts_in_flight")]
    pub max_callouts_in_flight: u64,
}

impl Default for PluginLimitsConfig {
    fn default() -> Self {
        Self {
            memory_bytes: defaults::PLUGIN_MEMORY_BYTES,
            cpu_deadline: defaults::PLUGIN_CPU_DEADLINE,
            max_vms: defaults::PLUGIN_MAX_VMS,
            max_header_bytes: defaults::PLUGIN_MAX_HEADER_BYTES,
            max_header_count: defaults::PLUGIN_MAX_HEADER_COUNT,
            max_buffered_body_bytes: defaults::PLUGIN_MAX_BUFFERED_BODY_BYTES,
            max_property_bytes: defaults::PLUGIN_MAX_PROPERTY_BYTES,
            max_shared_data_bytes: defaults::PLUGIN_MAX_SHARED_DATA_BYTES,
            max_shared_data_keys: defaults::PLUGIN_MAX_SHARED_DATA_KEYS,
            max_queue_depth: defaults::PLUGIN_MAX_QUEUE_DEPTH,
            max_queue_bytes: defaults::PLUGIN_MAX_QUEUE_BYTES,
            max_callout_request_bytes: defaults::PLUGIN_MAX_CALLOUT_REQUEST_BYTES,
            max_callout_response_bytes: defaults::PLUGIN_MAX_CALLOUT_RESPONSE_BYTES,
            max_callouts_in_flight: defaults::PLUGIN_MAX_CALLOUTS_IN_FLIGHT,
        }
    }
}

pub use crate::defaults::MAX_PLUGIN_MEMORY_BYTES;

/// The checks of a plugin that need more than the document: that its module
/// exists and loads (the proxy, with its Wasm engine), or that it names a
/// module of the registry (the control plane). See
/// [`validate_with`](crate::validate_with).
pub trait PluginValidator {
    /// Checks `plugin`, found at `at` (e.g. `filter_chains[0].plugins[1]`),
    /// pushing each problem to `sink` at its path under `at`.
    fn validate_plugin(&self, plugin: &PluginConfig, at: &str, sink: &mut ErrorSink);
}

/// Bytes handed to the module for a configuration value.
pub fn configuration_bytes(value: Option<&serde_json::Value>) -> Vec<u8> {
    match value {
        None => Vec::new(),
        Some(serde_json::Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    }
}
