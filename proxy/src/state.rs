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

    /// Swaps `next` in as the running snapshot (and `wasp_config_version`)
    /// and records `outcome` as the last reload, all under the reload
    /// record's lock, so a reader that takes [`Control::running`] never sees
    /// the new snapshot beside the previous update's outcome.
    pub fn publish(&self, next: Arc<Snapshot>, outcome: ReloadOutcome) {
        let mut last = self.last_reload.lock().expect("lock");
        self.proxy.metrics.config_version.set(next.version as i64);
        self.proxy.snapshot.store(next);
        *last = Some(outcome);
    }

    /// The running snapshot and how the last update ended, read together.
    pub fn running(&self) -> (Arc<Snapshot>, Option<ReloadOutcome>) {
        let last = self.last_reload.lock().expect("lock");
        (self.proxy.snapshot.load_full(), last.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::MeshIdentity;
    use crate::source::Outcome;

    async fn snapshot(plugins: &PluginLoader, metrics: &Metrics, version: u64) -> Snapshot {
        let yaml = r#"
listeners:
  - name: main
    address: 127.0.0.1:8080
    routes:
      - match: { prefix: / }
        route: { cluster: app }
clusters:
  - { name: app, endpoints: ["127.0.0.1:9"] }
"#;
        let config = wasp_config::parse(yaml).expect("valid configuration");
        Snapshot::build(
            config,
            version,
            None,
            metrics,
            plugins,
            &MeshIdentity::new(),
        )
        .await
        .expect("snapshot builds")
    }

    #[tokio::test]
    async fn a_reader_never_sees_a_snapshot_beside_another_updates_outcome() {
        let metrics = Arc::new(Metrics::new());
        let plugins = PluginLoader {
            engine: crate::server::filter_engine(&metrics).expect("wasm engine"),
            modules: Arc::new(crate::wasm::modules::FileModules),
            node: crate::wasm::node::NodeOverrides::default(),
            clusters: Arc::default(),
        };
        let first = Arc::new(snapshot(&plugins, &metrics, 1).await);
        let second = Arc::new(snapshot(&plugins, &metrics, 2).await);
        let proxy = ProxyState::new(snapshot(&plugins, &metrics, 1).await, metrics);
        let control = Control::new(proxy, plugins);
        control.publish(
            Arc::clone(&first),
            ReloadOutcome::accepted("v1".into(), "test", 1),
        );

        let reader = {
            let control = Arc::clone(&control);
            std::thread::spawn(move || {
                for _ in 0..200_000 {
                    let (snapshot, last) = control.running();
                    let last = last.expect("an outcome is recorded");
                    assert!(
                        matches!(last.outcome, Outcome::Accepted { generation }
                            if generation == snapshot.version),
                        "snapshot {} read beside the outcome {last:?}",
                        snapshot.version
                    );
                }
            })
        };
        while !reader.is_finished() {
            for (next, generation) in [(&first, 1), (&second, 2)] {
                let outcome = ReloadOutcome::accepted(format!("v{generation}"), "test", generation);
                control.publish(Arc::clone(next), outcome);
            }
        }
        reader.join().expect("the reader saw consistent pairs");
    }
}
