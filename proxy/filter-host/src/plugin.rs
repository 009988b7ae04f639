//! A loaded plugin: its spec, compiled and pre-linked module, VM pool, and
//! health and failure counters (shown by `/filters`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use wasmtime::{InstancePre, Module};

use crate::calls::StreamCalls;
use crate::engine::{EngineInner, Services};
use crate::error::HostError;
use crate::module_cache::ModuleUse;
use crate::pool::VmPool;
use crate::spec::{FailurePolicy, PluginSpec};
use crate::state::VmState;
use crate::vm::Deadline;
use crate::warnings::WarnLimiter;

/// Failure counters of a plugin.
#[derive(Default)]
pub(crate) struct PluginStats {
    pub traps: AtomicU64,
    pub timeouts: AtomicU64,
    pub restarts: AtomicU64,
    pub unhealthy: AtomicBool,
}

/// What every VM of a plugin shares.
pub(crate) struct PluginCore {
    /// The spec without its module bytes (compiled, they are not needed
    /// again; `sha256` names them).
    pub spec: PluginSpec,
    pub sha256: String,
    pub pre: InstancePre<VmState>,
    pub services: Arc<Services>,
    pub stats: PluginStats,
    /// How long a callback may run.
    pub deadline: Deadline,
    /// The stream callbacks the module exports, less those it declared it
    /// does not need ([`StreamCalls`] bits; see [`PluginCore::calls`]).
    calls: AtomicU32,
    /// Rate limits this plugin's misuse and limit warnings.
    pub warnings: WarnLimiter,
    /// Keeps the module in the engine's cache while the plugin lives.
    _module_use: ModuleUse,
}

impl PluginCore {
    /// Takes note of the callbacks the module declared it needs
    /// (`wasp_abi::HTTP_CALLBACKS_EXPORT`; the same for every VM).
    pub fn declare_callbacks(&self, callbacks: u32) {
        let calls = self.calls().declared(callbacks);
        self.calls.store(calls.bits(), Ordering::Relaxed);
    }

    /// The stream callbacks the host calls for this plugin. Final once the
    /// first VM started (at load), before any stream.
    pub fn calls(&self) -> StreamCalls {
        StreamCalls::from_bits(self.calls.load(Ordering::Relaxed))
    }

    fn label(&self) -> [&str; 1] {
        [self.spec.name.as_str()]
    }
    pub fn counter_trap(&self) {
        self.services
            .metrics
            .traps
            .with_label_values(&self.label())
            .inc();
    }
    pub fn counter_timeout(&self) {
        self.services
            .metrics
            .timeouts
            .with_label_values(&self.label())
            .inc();
    }
    pub fn counter_restart(&self) {
        self.services
            .metrics
            .restarts
            .with_label_values(&self.label())
            .inc();
    }
    pub fn metrics_vms(&self, delta: i64) {
        self.services
            .metrics
            .vms
            .with_label_values(&self.label())
            .add(delta);
    }
    pub fn set_healthy(&self, healthy: bool) {
        self.stats.unhealthy.store(!healthy, Ordering::Relaxed);
        self.services
            .metrics
            .healthy
            .with_label_values(&self.label())
            .set(i64::from(healthy));
    }
}

/// A snapshot of a plugin's state for `/filters`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginStatus {
    /// Plugin name.
    pub name: String,
    /// Root id.
    pub root_id: String,
    /// sha256 of the module (hex).
    pub sha256: String,
    /// Failure policy.
    pub failure_policy: FailurePolicy,
    /// Live VMs.
    pub vms: usize,
    /// Linear memory of all live VMs, in bytes.
    pub memory_bytes: u64,
    /// VMs killed by traps (including out-of-memory).
    pub traps: u64,
    /// Callbacks cut off at their CPU deadline.
    pub timeouts: u64,
    /// VMs re-created after a failure.
    pub restarts: u64,
    /// False while the plugin is crash-looping.
    pub healthy: bool,
}

/// A loaded plugin.
pub struct Plugin {
    pub(crate) core: Arc<PluginCore>,
    pub(crate) pool: VmPool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.core.spec.name)
            .field("sha256", &self.core.sha256)
            .finish()
    }
}

impl Plugin {
    pub(crate) fn load(
        engine: &Arc<EngineInner>,
        mut spec: PluginSpec,
        module: Module,
        sha256: String,
        module_use: ModuleUse,
    ) -> Result<Arc<Self>, HostError> {
        let pre = engine
            .imports
            .linker
            .instantiate_pre(&module)
            .map_err(|e| HostError::Link(format!("{e:#}")))?;
        let deadline = Deadline::new(spec.limits.cpu_deadline, engine.epoch_tick);
        let slots = spec
            .limits
            .max_vms
            .min(std::thread::available_parallelism().map_or(1, |n| n.get()));
        let calls = StreamCalls::exported(&module);
        // The compiled module is all VMs need: the bytes would only take
        // memory for the plugin's life.
        spec.wasm = bytes::Bytes::new();
        let core = Arc::new(PluginCore {
            calls: AtomicU32::new(calls.bits()),
            spec,
            sha256,
            pre,
            services: Arc::clone(&engine.services),
            stats: PluginStats::default(),
            deadline,
            warnings: WarnLimiter::default(),
            _module_use: module_use,
        });
        core.set_healthy(true);
        let pool = VmPool::new(&core, slots);
        pool.first().start()?;
        Ok(Arc::new(Self { core, pool }))
    }

    /// Plugin name.
    pub fn name(&self) -> &str {
        &self.core.spec.name
    }

    /// sha256 of the module (hex).
    pub fn sha256(&self) -> &str {
        &self.core.sha256
    }

    /// The spec it was loaded from, without the module bytes (`wasm` is
    /// empty once the module is compiled; [`sha256`](Self::sha256) names
    /// them).
    pub fn spec(&self) -> &PluginSpec {
        &self.core.spec
    }

    /// Whether loading `spec` would make this same plugin: the same module
    /// bytes (by sha256) and the same settings. A reload keeps such a
    /// plugin, with its VMs, instead of loading it again.
    pub fn is_loaded_from(&self, spec: &PluginSpec) -> bool {
        let settings_equal = PluginSpec {
            wasm: bytes::Bytes::new(),
            ..spec.clone()
        } == self.core.spec;
        settings_equal && crate::FilterEngine::sha256(&spec.wasm) == self.core.sha256
    }

    /// What a failing stream gets.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.core.spec.failure_policy
    }

    /// The VM slot of the calling thread.
    #[cfg(test)]
    pub(crate) fn slot(&self) -> &Arc<crate::pool::VmSlot> {
        &self.pool.slots()[self.pool.pick_index()]
    }

    /// Current state for `/filters`.
    pub fn status(&self) -> PluginStatus {
        let memories: Vec<usize> = self
            .pool
            .slots()
            .iter()
            .filter_map(|s| s.memory_bytes())
            .collect();
        let stats = &self.core.stats;
        PluginStatus {
            name: self.core.spec.name.clone(),
            root_id: self.core.spec.root_id.clone(),
            sha256: self.core.sha256.clone(),
            failure_policy: self.core.spec.failure_policy,
            vms: memories.len(),
            memory_bytes: memories.iter().sum::<usize>() as u64,
            traps: stats.traps.load(Ordering::Relaxed),
            timeouts: stats.timeouts.load(Ordering::Relaxed),
            restarts: stats.restarts.load(Ordering::Relaxed),
            healthy: !stats.unhealthy.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let live = self
            .pool
            .slots()
            .iter()
            .filter(|s| s.memory_bytes().is_some())
            .count();
        self.core.metrics_vms(-(live as i64));
    }
}
