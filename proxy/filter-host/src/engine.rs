//! The process-wide Wasm engine: wasmtime configuration (Cranelift, pooling
//! allocator — or, where the address space is too small for its
//! reservation, VMs allocated one by one —, epoch interruption driven by a
//! ticker thread, stack limit), the module cache keyed by sha256, and the
//! services shared by all plugins.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig};

use crate::abi::HostImports;
use crate::callout::Callouts;
use crate::compiled_cache::CompiledCache;
use crate::compiler::Compiler;
use crate::error::HostError;
use crate::metrics::{DEFAULT_MAX_SERIES_PER_FAMILY, FilterMetrics};
use crate::module_cache::{ModuleCache, ModuleCacheStatus};
use crate::node::NodeInfo;
use crate::plugin::Plugin;
use crate::shared::{SharedData, SharedQueues};
use crate::spec::PluginSpec;
use crate::validate::validate;

/// The first bytes of every Wasm binary.
const WASM_MAGIC: &[u8] = b"\0asm";

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Most VMs alive at once across all plugins (pool slots). Default 256.
    pub max_instances: u32,
    /// Largest linear memory any VM may have, in bytes. Default 512 MiB.
    pub max_memory_bytes: u64,
    /// Wasm stack limit in bytes. Default 512 KiB.
    pub max_wasm_stack: usize,
    /// Epoch tick: the granularity of CPU deadlines. Default 10 ms.
    pub epoch_tick: Duration,
    /// Node facts for `node.*` properties (see [`FilterEngine::set_node`]).
    pub node: NodeInfo,
    /// Where filter metrics and the host's per-plugin metrics are registered.
    pub registry: prometheus::Registry,
    /// Most bytes of compiled modules the cache keeps (modules plugins use
    /// stay alive regardless). Default 256 MiB.
    pub module_cache_bytes: u64,
    /// Where compiled modules are kept on disk (see `compiled_cache`), so
    /// a restart loads machine code instead of compiling; `None`: nowhere.
    pub compiled_cache_dir: Option<PathBuf>,
    /// Most series one labeled family of filter metrics may hold; more are
    /// refused and counted in `wasp_filter_metric_series_dropped_total`.
    /// Default [`DEFAULT_MAX_SERIES_PER_FAMILY`].
    pub max_metric_series_per_family: usize,
    /// Called after each plugin load (successful or not), on the loading
    /// thread: the program's way to give the operating system back the
    /// memory the load freed (its allocator's trim): the compiler's
    /// buffers and the module bytes, which would otherwise stay resident
    /// in the loading threads' heaps. Default `None`: nothing.
    pub release_memory: Option<fn()>,
    /// Called after a load that ran the compiler (not one that found the
    /// module compiled, in memory or on disk), after `release_memory`: the
    /// program's way to drop the pages of its own code that compiling
    /// paged in. Default `None`: nothing.
    pub release_compiler_code: Option<fn()>,
    /// Writes `/tmp/perf-PID.map` naming the compiled Wasm functions, so
    /// that `perf report` attributes samples in filter code to them
    /// (wasmtime's perf map). For profiling; default false.
    pub perf_map: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_instances: 256,
            max_memory_bytes: 512 << 20,
            max_wasm_stack: 512 << 10,
            epoch_tick: Duration::from_millis(10),
            node: NodeInfo::default(),
            registry: prometheus::Registry::new(),
            module_cache_bytes: wasp_config::defaults::MODULE_CACHE_BYTES,
            compiled_cache_dir: None,
            max_metric_series_per_family: DEFAULT_MAX_SERIES_PER_FAMILY,
            release_memory: None,
            release_compiler_code: None,
            perf_map: false,
        }
    }
}

/// Services shared by every VM of every plugin.
pub(crate) struct Services {
    pub shared_data: SharedData,
    pub queues: SharedQueues,
    pub metrics: FilterMetrics,
    node: RwLock<Arc<NodeInfo>>,
    callouts: RwLock<Option<Arc<dyn Callouts>>>,
}

impl Services {
    /// The node facts VMs created now get.
    pub fn node(&self) -> Arc<NodeInfo> {
        Arc::clone(&self.node.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The proxy's callout service, once set.
    pub fn callouts(&self) -> Option<Arc<dyn Callouts>> {
        self.callouts.read().ok().and_then(|c| c.clone())
    }
}

pub(crate) struct EngineInner {
    pub engine: Engine,
    pub imports: HostImports,
    pub services: Arc<Services>,
    pub epoch_tick: Duration,
    pub modules: Arc<ModuleCache>,
    compiled: Option<CompiledCache>,
    compiler: Compiler,
    release_memory: Option<fn()>,
    release_compiler_code: Option<fn()>,
    /// Modules compiled by Cranelift (not loaded from the disk cache).
    compiler_runs: std::sync::atomic::AtomicU64,
    /// VMs come from the pool reserved at start (else one by one).
    pooled: bool,
    /// The epoch ticker, started with the first plugin load: a process
    /// without filters has no thread waking up to count epochs.
    ticker: std::sync::Once,
}

/// The Wasm engine of the process; cheap to clone.
#[derive(Clone)]
pub struct FilterEngine {
    inner: Arc<EngineInner>,
}

impl std::fmt::Debug for FilterEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterEngine")
            .field("compiled_modules", &self.compiled_modules())
            .finish()
    }
}

/// The wasmtime configuration for `options` and an engine made with it:
/// VMs from a pool reserved up front (`pooled`), or allocated one by one
/// with linear memories that reserve only what they hold (bounds-checked
/// accesses instead of guard pages).
fn engine_with(options: &EngineOptions, pooled: bool) -> wasmtime::Result<(Config, Engine)> {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .max_wasm_stack(options.max_wasm_stack)
        // No map from machine code back to Wasm bytecode offsets: it
        // only adds `@0x…` offsets to backtraces, which the host never
        // reports (a trap is reported by its kind), and it is a
        // resident ~12% of every module's compiled image (559 KiB for
        // the shipped filters' chain).
        .generate_address_map(false);
    if pooled {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(options.max_instances)
            .total_memories(options.max_instances)
            .total_tables(options.max_instances)
            .max_memories_per_module(1)
            .max_tables_per_module(4)
            .max_memory_size(options.max_memory_bytes as usize);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    } else {
        config
            .allocation_strategy(InstanceAllocationStrategy::OnDemand)
            .memory_reservation(0)
            .memory_guard_size(0)
            .memory_reservation_for_growth(1 << 20);
    }
    if options.perf_map {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config)?;
    Ok((config, engine))
}

impl FilterEngine {
    /// Configures wasmtime and links the host functions; the epoch ticker
    /// starts with the first plugin load.
    pub fn new(options: EngineOptions) -> Result<Self, HostError> {
        let (config, engine, pooled) = match engine_with(&options, true) {
            Ok((config, engine)) => (config, engine, true),
            // The pool reserves address space for every VM at once (a few
            // GiB each); under an address-space limit (`ulimit -v`, some
            // sandboxes and tools) that fails, and VMs are then allocated
            // one by one instead of the proxy refusing to start.
            Err(pool_error) => {
                let (config, engine) = engine_with(&options, false)
                    .map_err(|_| HostError::Engine(pool_error.to_string()))?;
                tracing::warn!(
                    error = %pool_error,
                    "the Wasm VM pool could not reserve its address space; \
                     VMs are allocated one by one, with bounds-checked memories"
                );
                (config, engine, false)
            }
        };
        let compiler = Compiler::new(&config);
        let imports = HostImports::new(&engine).map_err(|e| HostError::Engine(e.to_string()))?;
        let metrics = FilterMetrics::new(
            options.registry.clone(),
            options.max_metric_series_per_family,
        )
        .map_err(|e| HostError::Engine(format!("metrics: {e}")))?;
        let services = Arc::new(Services {
            shared_data: SharedData::default(),
            queues: SharedQueues::default(),
            metrics,
            node: RwLock::new(Arc::new(options.node.clone())),
            callouts: RwLock::new(None),
        });
        let compiled = match &options.compiled_cache_dir {
            Some(dir) => Some(CompiledCache::open(dir, &engine).map_err(|e| {
                HostError::Engine(format!("compiled module cache {}: {e}", dir.display()))
            })?),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(EngineInner {
                engine,
                imports,
                services,
                epoch_tick: options.epoch_tick,
                modules: ModuleCache::new(options.module_cache_bytes),
                compiled,
                compiler,
                release_memory: options.release_memory,
                release_compiler_code: options.release_compiler_code,
                compiler_runs: std::sync::atomic::AtomicU64::new(0),
                pooled,
                ticker: std::sync::Once::new(),
            }),
        })
    }

    /// Sets the service that sends filters' HTTP and gRPC callouts.
    pub fn set_callouts(&self, callouts: Arc<dyn Callouts>) {
        if let Ok(mut slot) = self.inner.services.callouts.write() {
            *slot = Some(callouts);
        }
    }

    /// Replaces the node facts (`node.*`, `xds.node`); returns the previous
    /// ones. Each VM keeps the facts it was created with: VMs created from
    /// now on (new plugins, VMs for more threads, VMs replacing failed ones)
    /// see the new node.
    pub fn set_node(&self, node: NodeInfo) -> NodeInfo {
        let mut slot = self
            .inner
            .services
            .node
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = std::mem::replace(&mut *slot, Arc::new(node));
        Arc::unwrap_or_clone(previous)
    }

    /// The node facts new VMs get.
    pub fn node(&self) -> NodeInfo {
        NodeInfo::clone(&self.inner.services.node())
    }

    /// The sha256 (hex) of module bytes.
    pub fn sha256(wasm: &[u8]) -> String {
        hex::encode(Sha256::digest(wasm))
    }

    /// Compiles and validates a module (a Wasm binary or WAT text), or
    /// returns the cached compilation of the same bytes.
    pub fn compile(&self, wasm: &[u8]) -> Result<(Module, String), HostError> {
        let sha = Self::sha256(wasm);
        if let Some(module) = self.inner.modules.get(&sha) {
            return Ok((module, sha));
        }
        if !wasm.starts_with(WASM_MAGIC) && std::str::from_utf8(wasm).is_err() {
            return Err(HostError::NotAModule {
                len: wasm.len(),
                head: wasm.iter().take(4).map(|b| format!("{b:02x}")).collect(),
            });
        }
        let compiled = self.inner.compiled.as_ref();
        let (module, from_disk) = match compiled.and_then(|c| c.load(&self.inner.engine, &sha)) {
            Some(module) => (module, true),
            None => {
                self.inner
                    .compiler_runs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let module = self.inner.compiler.compile(&self.inner.engine, wasm)?;
                (module, false)
            }
        };
        validate(&module, &self.inner.imports)?;
        if let (Some(cache), false) = (compiled, from_disk) {
            cache.store(&sha, &module);
        }
        self.inner
            .modules
            .insert(sha.clone(), module.clone(), wasm.len(), !from_disk);
        Ok((module, sha))
    }

    /// Compiles (or reuses) the module, instantiates the first VM and runs
    /// `proxy_on_vm_start` and `proxy_on_configure`.
    pub fn load(&self, spec: PluginSpec) -> Result<Arc<Plugin>, HostError> {
        let inner = &self.inner;
        inner
            .ticker
            .call_once(|| spawn_ticker(&inner.engine, inner.epoch_tick));
        let runs = || {
            inner
                .compiler_runs
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let runs_before = runs();
        let loaded = self.compile(&spec.wasm).and_then(|(module, sha)| {
            let used = self
                .inner
                .modules
                .use_module(&sha, &module, spec.wasm.len());
            Plugin::load(&self.inner, spec, module, sha, used)
        });
        if let Some(release_memory) = inner.release_memory {
            release_memory();
        }
        if let Some(release_code) = inner.release_compiler_code
            && runs() != runs_before
        {
            release_code();
        }
        loaded
    }

    #[cfg(test)]
    pub(crate) fn inner_services(&self) -> &Services {
        &self.inner.services
    }

    /// True once the epoch ticker runs (from the first plugin load on).
    pub fn ticking(&self) -> bool {
        self.inner.ticker.is_completed()
    }

    /// Whether VMs come from the pool reserved at start (`false`: the
    /// address space was too small for it, and VMs are allocated one by
    /// one; see [`FilterEngine::new`]).
    pub fn pooled(&self) -> bool {
        self.inner.pooled
    }

    /// How many modules were compiled (cache misses) so far.
    pub fn compiled_modules(&self) -> u64 {
        self.inner.modules.compiles()
    }

    /// What the compiled-module cache holds (for `/filters`).
    pub fn module_cache(&self) -> ModuleCacheStatus {
        self.inner.modules.status()
    }
}

/// Increments the engine's epoch every `tick` until the engine is gone.
fn spawn_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wasp-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "epoch ticker thread did not start; CPU deadlines are not enforced");
    }
}
