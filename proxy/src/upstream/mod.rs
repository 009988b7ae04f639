//! Upstream clusters: endpoints (resolved and refreshed), round-robin
//! selection, and per-endpoint connection pools.

mod connect;
mod dns;
mod error;
mod pool;

pub use connect::ConnMetrics;
pub use error::UpstreamError;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;

use crate::config::{ClusterConfig, UpstreamProtocol};
use crate::http::body::UpstreamBody;
use crate::telemetry::Metrics;
use pool::{Http1Pool, Http2Pool, Pool, PoolSettings};

/// One upstream endpoint and its connections.
pub struct Endpoint {
    /// The endpoint's address.
    pub addr: SocketAddr,
    pool: Pool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .finish()
    }
}

/// A named set of endpoints speaking one protocol.
pub struct Cluster {
    /// Cluster name.
    pub name: Arc<str>,
    /// The configuration it was built from.
    pub config: ClusterConfig,
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    next: AtomicUsize,
    metrics: ConnMetrics,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("name", &self.name).finish()
    }
}

impl Cluster {
    /// Builds a cluster, resolving its endpoints; host-name endpoints keep
    /// being re-resolved while the cluster lives.
    pub async fn new(config: ClusterConfig, metrics: &Metrics) -> Arc<Self> {
        let name: Arc<str> = config.name.as_str().into();
        let conn_metrics = ConnMetrics {
            active: metrics.upstream_cx_active.with_label_values(&[&*name]),
            total: metrics.upstream_cx_total.with_label_values(&[&*name]),
            connect_fail: metrics
                .upstream_cx_connect_fail
                .with_label_values(&[&*name]),
        };
        let addrs = dns::resolve(&name, &config.endpoints).await;
        let refresh = dns::needs_refresh(&config.endpoints);
        let cluster = Arc::new(Self {
            name,
            config,
            endpoints: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            metrics: conn_metrics,
        });
        cluster.set_endpoints(&addrs);
        if refresh {
            dns::spawn_refresh(Arc::downgrade(&cluster));
        }
        cluster
    }

    /// Replaces the endpoint set, keeping the pools of endpoints that remain.
    pub fn set_endpoints(&self, addrs: &[SocketAddr]) {
        let current = self.endpoints.load();
        let next: Vec<Arc<Endpoint>> = addrs
            .iter()
            .map(|addr| {
                current
                    .iter()
                    .find(|e| e.addr == *addr)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(self.endpoint(*addr)))
            })
            .collect();
        if next.len() != current.len()
            || next
                .iter()
                .zip(current.iter())
                .any(|(a, b)| a.addr != b.addr)
        {
            tracing::info!(cluster = %self.name, endpoints = ?addrs, "cluster endpoints updated");
        }
        self.endpoints.store(Arc::new(next));
    }

    fn endpoint(&self, addr: SocketAddr) -> Endpoint {
        let settings = PoolSettings {
            addr,
            connect_timeout: self.config.connect_timeout,
            max_idle: self.config.max_idle_per_endpoint,
            metrics: self.metrics.clone(),
        };
        let pool = match self.config.protocol {
            UpstreamProtocol::Http1 => Pool::Http1(Http1Pool::new(settings)),
            UpstreamProtocol::Http2 => Pool::Http2(Http2Pool::new(settings)),
        };
        Endpoint { addr, pool }
    }

    /// The current endpoints.
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.load_full()
    }

    /// The protocol spoken upstream.
    pub fn protocol(&self) -> UpstreamProtocol {
        self.config.protocol
    }

    /// Picks the next endpoint, round robin.
    pub fn pick(&self) -> Result<Arc<Endpoint>, UpstreamError> {
        let endpoints = self.endpoints.load();
        if endpoints.is_empty() {
            return Err(UpstreamError::NoEndpoint(self.name.to_string()));
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len();
        Ok(Arc::clone(&endpoints[i]))
    }

    /// Sends a request to an endpoint over a pooled connection.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        endpoint.pool.send(req).await
    }

    /// Sends an `Upgrade` request on a fresh HTTP/1.1 connection that stays
    /// usable for the upgraded protocol.
    pub async fn send_upgrade(
        &self,
        endpoint: &Endpoint,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let addr = endpoint.addr;
        let mut sender =
            connect::http1(addr, self.config.connect_timeout, &self.metrics, true).await?;
        sender
            .send_request(req)
            .await
            .map_err(|source| UpstreamError::Reset { addr, source })
    }
}
