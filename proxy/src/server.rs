//! Process lifecycle: take the first configuration from the source (a file
//! or a control plane), build the first snapshot, bind listeners, start the
//! admin server and the reloader, then wait for a shutdown signal and drain.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use anyhow::Context as _;

use wasp_filter_host::{EngineOptions, FilterEngine};

use crate::listener::ListenerManager;
use crate::snapshot::Snapshot;
use crate::source::outcome::config_errors;
use crate::source::{
    ConfigSource, ControlPlaneOptions, ControlPlaneSource, FileSource, ReloadOutcome, Update,
};
use crate::state::{Control, ProxyState};
use crate::telemetry::Metrics;
use crate::wasm::PluginLoader;
use crate::wasm::callouts::{ClusterCallouts, ClusterLookup};
use crate::wasm::modules::{FileModules, ModuleStore};
use crate::wasm::node::NodeOverrides;
use crate::{admin, reload};
use wasp_config as config;

/// How to run the proxy.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The configuration file (unused when `control_plane` is set).
    pub config_path: PathBuf,
    /// Take configurations from this control plane instead of a file.
    pub control_plane: Option<ControlPlaneOptions>,
    /// Worker threads; the number of CPUs when `None`.
    pub workers: Option<usize>,
    /// Node settings that win over the configuration's `node`.
    pub node: NodeOverrides,
    /// Most bytes of compiled filter modules kept in the engine's cache.
    pub module_cache_bytes: u64,
    /// Where compiled filter modules are kept on disk (none: nowhere).
    pub compiled_cache_dir: Option<PathBuf>,
    /// Most series one labeled family of filter metrics may hold.
    pub metric_series_per_family: usize,
    /// Gives memory freed by loading filter plugins (compiler buffers,
    /// module bytes) back to the operating system: the binary's
    /// allocator's trim; `None`: nothing.
    pub release_memory: Option<fn()>,
    /// Drops the resident pages of the binary's code: after a load that
    /// compiled a module (the compiler's pages), and once the first
    /// configuration serves (the pages start-up alone ran: parsing,
    /// loading, binding); those the request path uses come back on use.
    /// `None`: nothing.
    pub release_compiler_code: Option<fn()>,
}

/// Runs the proxy until SIGTERM or SIGINT, then drains and returns.
///
/// One worker runs everything on the calling thread (tokio's current-thread
/// scheduler: no cross-thread wake-ups or work stealing, as an Envoy or
/// nginx worker); more get the work-stealing scheduler with that many
/// threads.
pub fn run(options: RunOptions) -> anyhow::Result<()> {
    let mut runtime = match options.workers {
        Some(0) => anyhow::bail!("--workers must be at least 1"),
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(workers) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(workers);
            runtime
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = runtime.enable_all().thread_name("wasp-worker").build()?;
    let engine = EngineSettings {
        module_cache_bytes: options.module_cache_bytes,
        compiled_cache_dir: options.compiled_cache_dir,
        metric_series_per_family: options.metric_series_per_family,
        release_memory: options.release_memory,
        release_compiler_code: options.release_compiler_code,
    };
    runtime.block_on(async move {
        match options.control_plane {
            Some(control_plane) => {
                let origin = format!("control plane {}", control_plane.url);
                let cache = control_plane.cache_dir.clone();
                let mesh = Arc::clone(&control_plane.mesh);
                let (source, modules) = ControlPlaneSource::start(control_plane)
                    .with_context(|| format!("cache directory {}", cache.display()))?;
                serve(source, modules, options.node, origin, engine, mesh).await
            }
            None => {
                let origin = options.config_path.display().to_string();
                let source = FileSource::new(options.config_path);
                let modules = Arc::new(FileModules);
                let mesh = crate::mesh::MeshIdentity::new();
                serve(source, modules, options.node, origin, engine, mesh).await
            }
        }
    })
}

/// The source's version and trigger of the first snapshot.
struct First {
    version: String,
    trigger: &'static str,
}

/// Takes configurations until one builds (a source that
/// [waits for a valid first](ConfigSource::waits_for_a_valid_first) is told
/// of each rejected one; any other fails the start).
async fn first_snapshot<S: ConfigSource>(
    source: &mut S,
    metrics: &Arc<Metrics>,
    plugins: &PluginLoader,
    mesh: &Arc<crate::mesh::MeshIdentity>,
) -> anyhow::Result<(Snapshot, First)> {
    loop {
        let Update {
            version,
            trigger,
            config,
        } = source.next().await;
        let built = match config {
            Ok(config) => {
                plugins.apply_node(&config.node);
                Snapshot::build(config, 1, None, metrics, plugins, mesh).await
            }
            Err(err) => Err(err),
        };
        match built {
            Ok(snapshot) => return Ok((snapshot, First { version, trigger })),
            Err(err) if source.waits_for_a_valid_first() => {
                plugins.clusters.unstage();
                tracing::error!(version, "configuration rejected: {err}");
                let errors = config_errors(&err);
                source.report(&ReloadOutcome::rejected(version, trigger, errors));
            }
            Err(err) => return Err(err.into()),
        }
    }
}

async fn serve<S: ConfigSource>(
    mut source: S,
    modules: Arc<dyn ModuleStore>,
    node: NodeOverrides,
    origin: String,
    engine: EngineSettings,
    mesh: Arc<crate::mesh::MeshIdentity>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let release = [engine.release_memory, engine.release_compiler_code];
    let plugins = PluginLoader {
        engine: filter_engine_with(&metrics, engine)?,
        modules,
        node,
        clusters: Arc::default(),
    };
    let directory: Weak<dyn ClusterLookup> = Arc::downgrade(&plugins.clusters) as _;
    plugins
        .engine
        .set_callouts(Arc::new(ClusterCallouts::new(directory)));
    let (mut snapshot, first) = first_snapshot(&mut source, &metrics, &plugins, &mesh).await?;
    let admin_address = snapshot.config.admin.as_ref().map(|a| a.address.clone());
    snapshot.source_version = first.version.clone();
    let state = ProxyState::new(snapshot, metrics);
    let running: Weak<dyn ClusterLookup> = Arc::downgrade(&state) as _;
    plugins.clusters.bind(running);
    plugins.clusters.unstage();
    let control = Control::new(Arc::clone(&state), plugins);
    let generation = state.snapshot.load().version;
    let accepted = ReloadOutcome::accepted(first.version.clone(), first.trigger, generation);
    source.report(&accepted);
    source.serving(&state.snapshot.load());
    *control.last_reload.lock().expect("lock") = Some(accepted);

    let mut listeners = ListenerManager::new(Arc::clone(&state));
    let running = state.snapshot.load_full();
    let prepared = listeners.prepare(&running)?;
    listeners.commit(prepared, &running);
    let listeners = Arc::new(tokio::sync::Mutex::new(listeners));

    if let Some(address) = admin_address {
        let address = address.parse().context("admin.address")?;
        admin::start(address, Arc::clone(&control)).await?;
    }
    tracing::info!(
        config = origin,
        version = first.version,
        generation,
        "wasp started"
    );
    release_startup_memory(release);
    reload::spawn(source, Arc::clone(&control), Arc::clone(&listeners));

    let signal = shutdown_signal().await;
    control.draining.store(true, Ordering::SeqCst);
    let deadline = state.snapshot.load().config.shutdown.drain_timeout;
    tracing::info!(signal, ?deadline, "draining");
    if listeners.lock().await.drain(deadline).await {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!("drain deadline passed with requests in flight; exiting");
    }
    Ok(())
}

/// Gives the operating system back what start-up alone used, off the
/// workers: the heap's free memory and the resident pages of the code that
/// ran only to start (a few milliseconds of `/proc/self/maps` and advice).
/// `releases`: the allocator's trim, then the code's page-out.
fn release_startup_memory(releases: [Option<fn()>; 2]) {
    if releases.iter().all(Option::is_none) {
        return;
    }
    tokio::task::spawn_blocking(move || {
        for release in releases.into_iter().flatten() {
            release();
        }
    });
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Loads and fully builds a configuration without serving it (`wasp validate`).
/// Returns a one-line summary.
pub fn validate_file(path: &Path) -> anyhow::Result<String> {
    let config = config::load_file(path)?;
    let summary = format!(
        "{} listener(s), {} route(s), {} cluster(s)",
        config.listeners.len(),
        config
            .listeners
            .iter()
            .map(|l| l.routes.len())
            .sum::<usize>(),
        config.clusters.len()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let metrics = Metrics::new();
    let plugins = PluginLoader {
        engine: filter_engine(&metrics)?,
        modules: Arc::new(FileModules),
        node: NodeOverrides::default(),
        clusters: Arc::default(),
    };
    plugins.apply_node(&config.node);
    let mesh = crate::mesh::MeshIdentity::new();
    runtime.block_on(Snapshot::build(config, 1, None, &metrics, &plugins, &mesh))?;
    Ok(summary)
}

/// The process's Wasm engine, exporting its metrics with the proxy's.
pub fn filter_engine(metrics: &Metrics) -> anyhow::Result<FilterEngine> {
    filter_engine_with(
        metrics,
        EngineSettings {
            module_cache_bytes: config::defaults::MODULE_CACHE_BYTES,
            compiled_cache_dir: None,
            metric_series_per_family: wasp_filter_host::DEFAULT_MAX_SERIES_PER_FAMILY,
            release_memory: None,
            release_compiler_code: None,
        },
    )
}

/// The command line's settings of the Wasm engine.
struct EngineSettings {
    module_cache_bytes: u64,
    compiled_cache_dir: Option<PathBuf>,
    metric_series_per_family: usize,
    release_memory: Option<fn()>,
    release_compiler_code: Option<fn()>,
}

/// [`filter_engine`] with the command line's settings.
fn filter_engine_with(metrics: &Metrics, settings: EngineSettings) -> anyhow::Result<FilterEngine> {
    FilterEngine::new(EngineOptions {
        max_memory_bytes: config::MAX_PLUGIN_MEMORY_BYTES,
        registry: metrics.registry.clone(),
        module_cache_bytes: settings.module_cache_bytes,
        compiled_cache_dir: settings.compiled_cache_dir,
        max_metric_series_per_family: settings.metric_series_per_family,
        release_memory: settings.release_memory,
        release_compiler_code: settings.release_compiler_code,
        ..EngineOptions::default()
    })
    .context("wasm engine")
}
