//! What a plugin is made of: module bytes, configuration, failure policy and
//! sandbox limits, as the proxy hands them to the host.

use std::time::Duration;

use bytes::Bytes;

use wasp_config::defaults;

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
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_bytes: defaults::PLUGIN_MEMORY_BYTES,
            cpu_deadline: defaults::PLUGIN_CPU_DEADLINE,
            max_vms: defaults::PLUGIN_MAX_VMS,
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
