//! What a plugin is made of: module bytes, configuration, failure policy and
//! sandbox limits, as the proxy hands them to the host.

use std::time::Duration;

use bytes::Bytes;

/// What a stream gets when the plugin cannot run: the configuration's type.
pub use wasp_config::FailurePolicy;

/// Sandbox limits of one plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginLimits {
    /// Linear memory cap of each VM, in bytes (growth past it traps).
    pub memory_bytes: u64,
    /// CPU time one callback may take before it is interrupted.
    pub cpu_deadline: Duration,
    /// Maximum number of VMs (one per worker thread up to this many).
    pub max_vms: usize,
    /// Bytes (names plus values) the filter may grow one header or trailer
    /// map to; a change past it answers `BadArgument`.
    pub max_header_bytes: u64,
    /// Entries the filter may grow one header or trailer map to.
    pub max_header_count: u64,
    /// Body bytes the filter may hold buffered (pausing in a body callback)
    /// or grow a body buffer to, per direction.
    pub max_buffered_body_bytes: u64,
    /// Bytes of properties (paths plus values) the filter may set per request.
    pub max_property_bytes: u64,
    /// Bytes of shared data (keys plus values) in the plugin's `vm_id`.
    pub max_shared_data_bytes: u64,
    /// Shared data keys in the plugin's `vm_id`.
    pub max_shared_data_keys: u64,
    /// Items a shared queue may hold when this plugin enqueues.
    pub max_queue_depth: u64,
    /// Bytes a shared queue may hold when this plugin enqueues.
    pub max_queue_bytes: u64,
    /// Bytes of one callout's request (headers, body, trailers; all the
    /// messages of a gRPC stream).
    pub max_callout_request_bytes: u64,
    /// Bytes of one callout's response the host buffers.
    pub max_callout_response_bytes: u64,
    /// Callouts the VM may have in flight (calls and open gRPC streams).
    pub max_callouts_in_flight: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self::from(&wasp_config::PluginLimitsConfig::default())
    }
}

impl From<&wasp_config::PluginLimitsConfig> for PluginLimits {
    fn from(c: &wasp_config::PluginLimitsConfig) -> Self {
        Self {
            memory_bytes: c.memory_bytes,
            cpu_deadline: c.cpu_deadline,
            max_vms: c.max_vms,
            max_header_bytes: c.max_header_bytes,
            max_header_count: c.max_header_count,
            max_buffered_body_bytes: c.max_buffered_body_bytes,
            max_property_bytes: c.max_property_bytes,
            max_shared_data_bytes: c.max_shared_data_bytes,
            max_shared_data_keys: c.max_shared_data_keys,
            max_queue_depth: c.max_queue_depth,
            max_queue_bytes: c.max_queue_bytes,
            max_callout_request_bytes: c.max_callout_request_bytes,
            max_callout_response_bytes: c.max_callout_response_bytes,
            max_callouts_in_flight: c.max_callouts_in_flight,
        }
    }
}

/// Everything needed to load one plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginSpec {
    /// Plugin name (logs, metrics, `plugin_name` property, 503 bodies).
    pub name: String,
    /// Root id (`plugin_root_id` property), empty by default.
    pub root_id: String,
    /// VM id: shared data and queues are scoped by it.
    pub vm_id: String,
    /// The module: a binary `.wasm` or WAT text.
    pub wasm: Bytes,
    /// Environment variables visible through WASI `environ_get`.
    pub environment: Vec<(String, String)>,
    /// Bytes passed to `proxy_on_vm_start` (buffer type `VmConfiguration`).
    pub vm_configuration: Bytes,
    /// Bytes passed to `proxy_on_configure` (buffer type `PluginConfiguration`).
    pub configuration: Bytes,
    /// What a stream gets when this plugin fails.
    pub failure_policy: FailurePolicy,
    /// Sandbox limits.
    pub limits: PluginLimits,
}
