//! The state the running proxy shares. [`ProxyState`] is what requests
//! need: the current snapshot (swapped atomically on reload) and the
//! metrics. [`Control`] adds what reloads and the admin server need: the
//! plugin loader, whether the proxy is draining, and how the last reload
//! ended.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::snapshot::Snapshot;
use crate::source::ReloadOutcome;
use crate::telemetry::Metrics;
use crate::upstream::Cluster;
use crate::wasm::PluginLoader;
use crate::wasm::callouts::ClusterLookup;

/// What the request path shares.
pub struct ProxyState {
    /// The running snapshot, swapped atomically on reload.
    pub snapshot: ArcSwap<Snapshot>,
    /// The standard metrics.
    pub metrics: Arc<Metrics>,
}

impl ProxyState {
    /// State serving `snapshot`.
    pub fn new(snapshot: Snapshot, metrics: Arc<Metrics>) -> Arc<Self> {
        metrics.config_version.set(snapshot.version as i64);
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
        })
    }
}

impl ClusterLookup for ProxyState {
    fn cluster(&self, name: &str) -> Option<Arc<Cluster>> {
        self.snapshot.load().clusters.get(name).cloned()
    }
}

/// What reloads and the admin server share.
pub struct Control {
    /// The request path's state.
    pub proxy: Arc<ProxyState>,
    /// Loads filter plugins (the Wasm engine and the module store).
    pub plugins: PluginLoader,
    /// Set once shutdown began (`/ready` then answers 503).
    pub draining: AtomicBool,
    /// How the last configuration update ended.
    pub last_reload: Mutex<Option<ReloadOutcome>>,
}

impl Control {
    /// Control over `proxy`, loading plugins with `plugins`.
    pub fn new(proxy: Arc<ProxyState>, plugins: PluginLoader) -> Arc<Self> {
        Arc::new(Self {
            proxy,
            plugins,
            draining: AtomicBool::new(false),
            last_reload: Mutex::new(None),
        })
    }
}
