//! The state every part of the running proxy shares: the current snapshot
//! (swapped atomically on reload), the metrics, the Wasm engine, whether the
//! proxy is draining and how the last reload went.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use wasp_filter_host::FilterEngine;

use crate::snapshot::Snapshot;
use crate::telemetry::Metrics;
use crate::upstream::Cluster;
use crate::wasm::callouts::ClusterLookup;

/// State shared by every part of the running proxy.
pub struct ProxyState {
    /// The running snapshot, swapped atomically on reload.
    pub snapshot: ArcSwap<Snapshot>,
    /// The standard metrics.
    pub metrics: Arc<Metrics>,
    /// Set once shutdown began (`/ready` then answers 503).
    pub draining: AtomicBool,
    /// Why the last reload failed, if it did.
    pub last_reload_error: Mutex<Option<String>>,
    /// The Wasm engine filter chains are loaded in.
    pub filters: FilterEngine,
}

impl ProxyState {
    /// State serving `snapshot`.
    pub fn new(snapshot: Snapshot, metrics: Arc<Metrics>, filters: FilterEngine) -> Arc<Self> {
        metrics.config_version.set(snapshot.version as i64);
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            draining: AtomicBool::new(false),
            last_reload_error: Mutex::new(None),
            filters,
        })
    }
}

impl ClusterLookup for ProxyState {
    fn cluster(&self, name: &str) -> Option<Arc<Cluster>> {
        self.snapshot.load().clusters.get(name).cloned()
    }
}
