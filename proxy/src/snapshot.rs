//! The immutable, versioned runtime snapshot: compiled routes, TLS acceptors
//! and clusters built from one configuration. Requests hold the snapshot they
//! started on; a reload builds a complete new one and swaps it atomically.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use prometheus::IntGauge;
use tokio_rustls::TlsAcceptor;

use crate::limits::{HeaderLimits, Timeouts};
use crate::mesh::MeshIdentity;
use crate::mesh::inbound::{self, MtlsListener};
use crate::mesh::outbound::{UpstreamTls, UpstreamTlsMetrics};
use crate::router::RouteTable;
use crate::router::egress::Egress;
use crate::telemetry::Metrics;
use crate::tls;
use crate::upstream::Cluster;
use crate::wasm::PluginLoader;
use wasp_config::{Config, ConfigError, ErrorSink};

/// Everything the request path needs, built from one configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Increments with each successful reload, starting at 1.
    pub version: u64,
    /// The configuration source's version of `config` (e.g. the file's
    /// content hash).
    pub source_version: String,
    /// The configuration this snapshot was built from.
    pub config: Arc<Config>,
    /// Listeners by name.
    pub listeners: HashMap<String, Arc<ListenerRuntime>>,
    /// Listeners by bound address (what accepted connections look up).
    pub by_address: HashMap<SocketAddr, Arc<ListenerRuntime>>,
    /// Clusters by name.
    pub clusters: HashMap<String, Arc<Cluster>>,
    /// Wasm filter chains by name.
    pub filter_chains: crate::wasm::Chains,
    /// The workload identity and trust bundle, shared with the previous
    /// and the next snapshots.
    pub mesh: Arc<MeshIdentity>,
    /// Canary versions of plugins, by chain name.
    pub canaries: crate::wasm::canary::Canaries,
}

/// The per-request view of one listener.
pub struct ListenerRuntime {
    /// Listener name.
    pub name: Arc<str>,
    /// Bound address.
    pub address: SocketAddr,
    /// Compiled routes.
    pub routes: RouteTable,
    /// TLS termination, when configured.
    pub tls: Option<TlsAcceptor>,
    /// Mutual TLS (STRICT or PERMISSIVE), when configured.
    pub mtls: Option<Arc<MtlsListener>>,
    /// The egress policy, on outbound listeners.
    pub egress: Option<Egress>,
    /// Whether to write access log lines.
    pub access_log: bool,
    /// Client connections with no request in flight this long are closed;
    /// zero: never.
    pub idle_timeout: std::time::Duration,
    /// Request header limits (431 over them).
    pub header_limits: HeaderLimits,
    /// `request_timeout` and `stream_idle_timeout`.
    pub timeouts: Timeouts,
    /// Proxies in front whose forwarded headers are trusted.
    pub trusted_hops: u32,
    /// How connections accepted on this listener are served (hyper's
    /// limits set from `header_limits`).
    pub http: Arc<crate::serving::HttpBuilder>,
    /// `wasp_active_requests{listener}`.
    pub active_requests: IntGauge,
}

impl std::fmt::Debug for ListenerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerRuntime")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Snapshot {
    /// Builds a snapshot from a validated configuration. Clusters whose
    /// configuration did not change are taken over from `previous`, with
    /// their connection pools; unchanged filter plugins with their VMs. A
    /// plugin that fails to load fails the whole build. `mesh` is the
    /// process's workload identity (the previous snapshot's).
    pub async fn build(
        config: Config,
        version: u64,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
        plugins: &PluginLoader,
        mesh: &Arc<MeshIdentity>,
    ) -> Result<Self, ConfigError> {
        let mut sink = ErrorSink::default();
        let mesh = Arc::clone(mesh);
        if let Some(mesh_config) = &config.mesh {
            // Files are read again on every reload: rotated files take
            // effect for the next handshakes.
            match mesh.load_files(mesh_config) {
                Ok(staged) => staged.install(&mesh),
                Err(err) => sink.push("mesh", err.to_string()),
            }
        }
        let mut clusters = HashMap::new();
        for (i, cluster_config) in config.clusters.iter().enumerate() {
            let reused = previous
                .and_then(|p| p.clusters.get(&cluster_config.name))
                .filter(|c| c.config == *cluster_config)
                .cloned();
            let cluster = match reused {
                Some(cluster) => cluster,
                None => {
                    let tls_metrics = UpstreamTlsMetrics {
                        failures: metrics.upstream_tls_failures.clone(),
                        handshakes: metrics.upstream_tls_handshakes.clone(),
                    };
                    let tls = match UpstreamTls::new(cluster_config, &mesh, tls_metrics) {
                        Ok(tls) => tls,
                        Err(err) => {
                            sink.push(format!("clusters[{i}].tls"), err);
                            None
                        }
                    };
                    Cluster::new(cluster_config.clone(), metrics, tls).await
                }
            };
            clusters.insert(cluster_config.name.clone(), cluster);
        }
        // Plugins' root contexts may call out while the chains load.
        plugins.clusters.stage(&clusters);
        let old = previous
            .map(|p| crate::wasm::plugins_of(&p.filter_chains, &p.canaries))
            .unwrap_or_default();
        let old_canaries = previous.map(|p| &p.canaries);
        let (filter_chains, canaries) =
            crate::wasm::build_chains(&config, &old, old_canaries, plugins, &mut sink).await;
        let mut listeners = HashMap::new();
        for (i, listener) in config.listeners.iter().enumerate() {
            let at = format!("listeners[{i}]");
            let routes = RouteTable::build(
                listener,
                &at,
                &clusters,
                (&filter_chains, &canaries),
                &mut sink,
            );
            let tls = listener.tls.as_ref().and_then(|t| match tls::acceptor(t) {
                Ok(acceptor) => Some(acceptor),
                Err(err) => {
                    sink.push(format!("{at}.tls"), err.to_string());
                    None
                }
            });
            let mtls = match &listener.mtls {
                Some(m) if m.mode != wasp_config::MtlsMode::Disable => {
                    match inbound::acceptor(&mesh) {
                        Ok(acceptor) => Some(Arc::new(MtlsListener {
                            acceptor,
                            permissive: m.mode == wasp_config::MtlsMode::Permissive,
                            failures: metrics.mtls_handshake_failures.clone(),
                            connections: metrics.mtls_connections.clone(),
                            handshakes: metrics.mtls_handshakes.clone(),
                        })),
                        Err(err) => {
                            sink.push(format!("{at}.mtls"), err.to_string());
                            None
                        }
                    }
                }
                _ => None,
            };
            let egress = listener.outbound.then(|| {
                let chain = listener
                    .filter_chain
                    .as_ref()
                    .and_then(|name| filter_chains.get(name).cloned());
                Egress::new(&config, &clusters, chain, metrics)
            });
            let Ok(address) = listener.address.parse() else {
                sink.push(format!("{at}.address"), "not an IP:port address");
                continue;
            };
            let header_limits = HeaderLimits::new(
                listener.max_request_headers_kb,
                listener.max_request_headers_count,
            );
            listeners.insert(
                listener.name.clone(),
                Arc::new(ListenerRuntime {
                    name: listener.name.as_str().into(),
                    address,
                    routes,
                    tls,
                    mtls,
                    egress,
                    access_log: listener.access_log,
                    idle_timeout: listener.idle_timeout,
                    header_limits,
                    timeouts: Timeouts {
                        request: nonzero(listener.request_timeout),
                        idle: nonzero(listener.stream_idle_timeout),
                        request_expired: Some(
                            metrics
                                .downstream_rq_timeout
                                .with_label_values(&[&listener.name]),
                        ),
                        idle_expired: Some(
                            metrics
                                .downstream_rq_idle_timeout
                                .with_label_values(&[&listener.name]),
                        ),
                    },
                    trusted_hops: listener.trusted_hops,
                    http: Arc::new(crate::serving::http_builder(&header_limits)),
                    active_requests: metrics.active_requests.with_label_values(&[&listener.name]),
                }),
            );
        }
        sink.finish()?;
        let by_address = listeners
            .values()
            .map(|l| (l.address, Arc::clone(l)))
            .collect();
        Ok(Self {
            version,
            source_version: String::new(),
            config: Arc::new(config),
            listeners,
            by_address,
            clusters,
            filter_chains,
            mesh,
            canaries,
        })
    }

    /// The snapshot as JSON for `/config_dump`.
    pub fn dump(&self) -> serde_json::Value {
        serde_json::json!({
            "version": self.version,
            "source_version": self.source_version,
            "config": &*self.config,
            "clusters": self.clusters.values().map(|c| c.dump()).collect::<Vec<_>>(),
        })
    }
}

/// A duration where zero means "none".
fn nonzero(duration: std::time::Duration) -> Option<std::time::Duration> {
    (!duration.is_zero()).then_some(duration)
}
