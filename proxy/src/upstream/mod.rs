//! Upstream clusters: endpoints (resolved and refreshed), load balancing,
//! per-endpoint connection pools, circuit breakers, outlier detection and
//! active health checks.

mod breaker;
mod connect;
mod dns;
mod endpoint;
mod error;
mod guard;
mod health;
mod lb;
mod outlier;
mod pool;
pub mod request;
mod ring;

pub use breaker::{Breaker, Breakers, Permit};
pub use connect::{ConnMetrics, LocalAddr};
pub use endpoint::{ActiveRequest, Endpoint};
pub use error::{RetryClass, UpstreamError};
pub use guard::RequestGuard;
pub use outlier::Outcome;
pub use pool::Connection;
pub use ring::hash_key;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use prometheus::IntCounter;

use crate::body::UpstreamBody;
use crate::telemetry::Metrics;
use breaker::BreakerMetrics;
use endpoint::EndpointMetrics;
use lb::{Balancer, PickContext};
use pool::{Http1Pool, Http2Pool, Pool, PoolSettings};
use wasp_config::{ClusterConfig, UpstreamProtocol};

/// How often idle pooled connections are pruned and ejection gauges refreshed.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// Per-cluster metric handles, resolved once.
#[derive(Clone)]
pub struct ClusterMetrics {
    /// Retried attempts.
    pub retries: IntCounter,
    /// Route timeouts.
    pub timeouts: IntCounter,
    /// Per-try timeouts.
    pub per_try_timeouts: IntCounter,
    /// Outlier ejections.
    pub ejections: IntCounter,
    registry: Metrics,
}

/// The endpoints of a cluster and the balancer built for them, swapped as one.
struct EndpointSet {
    endpoints: Vec<Arc<Endpoint>>,
    balancer: Balancer,
}

/// A named set of endpoints speaking one protocol.
pub struct Cluster {
    /// Cluster name.
    pub name: Arc<str>,
    /// The configuration it was built from.
    pub config: ClusterConfig,
    set: ArcSwap<EndpointSet>,
    epoch: Instant,
    conn_metrics: ConnMetrics,
    breakers: Arc<Breakers>,
    tls: Option<Arc<crate::mesh::outbound::UpstreamTls>>,
    /// Metric handles.
    pub metrics: ClusterMetrics,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("name", &self.name).finish()
    }
}

impl Cluster {
    /// Builds a cluster, resolving its endpoints, and starts its background
    /// work (DNS refresh, health checks, pool maintenance) for as long as it
    /// lives. `tls`: how it originates TLS, if it does.
    pub async fn new(
        config: ClusterConfig,
        metrics: &Metrics,
        tls: Option<crate::mesh::outbound::UpstreamTls>,
    ) -> Arc<Self> {
        let name: Arc<str> = config.name.as_str().into();
        let label = [&*name];
        let conn_metrics = ConnMetrics {
            active: metrics.upstream_cx_active.with_label_values(&label),
            total: metrics.upstream_cx_total.with_label_values(&label),
            connect_fail: metrics.upstream_cx_connect_fail.with_label_values(&label),
        };
        let overflow = |breaker: Breaker| {
            metrics
                .upstream_rq_overflow
                .with_label_values(&[&*name, breaker.label()])
        };
        let breakers = Breakers::new(
            config.circuit_breakers.clone(),
            config.retry_budget.clone(),
            BreakerMetrics {
                requests: overflow(Breaker::MaxRequests),
                pending: overflow(Breaker::MaxPending),
                retries: overflow(Breaker::MaxRetries),
            },
        );
        let cluster_metrics = ClusterMetrics {
            retries: metrics.upstream_rq_retry.with_label_values(&label),
            timeouts: metrics.upstream_rq_timeout.with_label_values(&label),
            per_try_timeouts: metrics
                .upstream_rq_per_try_timeout
                .with_label_values(&label),
            ejections: metrics.upstream_ejections.with_label_values(&label),
            registry: metrics.clone(),
        };
        let addrs = dns::resolve(&name, &config.endpoints).await;
        let refresh = dns::needs_refresh(&config.endpoints);
        let cluster = Arc::new(Self {
            set: ArcSwap::from_pointee(EndpointSet {
                endpoints: Vec::new(),
                balancer: Balancer::new(config.lb_policy, &[]),
            }),
            name,
            config,
            epoch: Instant::now(),
            conn_metrics,
            breakers,
            tls: tls.map(Arc::new),
            metrics: cluster_metrics,
        });
        cluster.set_endpoints(&addrs);
        if refresh {
            dns::spawn_refresh(Arc::downgrade(&cluster));
        }
        if cluster.config.health_check.is_some() {
            health::spawn(Arc::downgrade(&cluster));
        }
        spawn_maintenance(Arc::downgrade(&cluster));
        cluster
    }

    /// Replaces the endpoint set, keeping the pools and state of endpoints
    /// that remain, and rebuilds the balancer.
    pub fn set_endpoints(&self, addrs: &[(SocketAddr, u32)]) {
        let current = self.set.load();
        let endpoints: Vec<Arc<Endpoint>> = addrs
            .iter()
            .map(|(addr, weight)| {
                current
                    .endpoints
                    .iter()
                    .find(|e| e.addr == *addr && e.weight == *weight)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(self.endpoint(*addr, *weight)))
            })
            .collect();
        let changed = endpoints.len() != current.endpoints.len()
            || endpoints
                .iter()
                .zip(current.endpoints.iter())
                .any(|(a, b)| !Arc::ptr_eq(a, b));
        if !changed {
            return;
        }
        for gone in current
            .endpoints
            .iter()
            .filter(|e| !endpoints.iter().any(|n| n.addr == e.addr))
        {
            let labels = [&*self.name, &gone.addr.to_string()];
            let m = &self.metrics.registry;
            let _ = m.upstream_endpoint_ejected.remove_label_values(&labels);
            let _ = m.upstream_endpoint_healthy.remove_label_values(&labels);
        }
        tracing::info!(cluster = %self.name, endpoints = ?addrs, "cluster endpoints updated");
        let balancer = Balancer::new(self.config.lb_policy, &endpoints);
        self.set.store(Arc::new(EndpointSet {
            endpoints,
            balancer,
        }));
    }

    fn endpoint(&self, addr: SocketAddr, weight: u32) -> Endpoint {
        let settings = PoolSettings {
            addr,
            connect_timeout: self.config.connect_timeout,
            max_idle: self.config.max_idle_per_endpoint,
            idle_timeout: self.config.idle_timeout,
            metrics: self.conn_metrics.clone(),
            breakers: Arc::clone(&self.breakers),
            tls: self.tls.clone(),
        };
        let pool = match self.config.protocol {
            UpstreamProtocol::Http1 => Pool::Http1(Http1Pool::new(settings)),
            UpstreamProtocol::Http2 => Pool::Http2(Http2Pool::new(settings)),
        };
        let addr_label = addr.to_string();
        let labels = [&*self.name, addr_label.as_str()];
        let m = &self.metrics.registry;
        let metrics = EndpointMetrics {
            requests: m.upstream_endpoint_rq.with_label_values(&labels),
            ejected: m.upstream_endpoint_ejected.with_label_values(&labels),
            healthy: m.upstream_endpoint_healthy.with_label_values(&labels),
        };
        Endpoint::new(addr, weight, pool, metrics)
    }

    /// The current endpoints.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.set.load().endpoints.clone()
    }

    /// The protocol spoken upstream.
    pub fn protocol(&self) -> UpstreamProtocol {
        self.config.protocol
    }

    /// The cluster's circuit breakers.
    pub fn breakers(&self) -> &Arc<Breakers> {
        &self.breakers
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Picks an endpoint for an attempt: by the cluster's policy, among
    /// healthy, non-ejected endpoints (all of them in panic mode), preferring
    /// ones this request has not tried.
    pub fn pick(
        &self,
        hash: Option<u64>,
        tried: &[SocketAddr],
    ) -> Result<Arc<Endpoint>, UpstreamError> {
        let set = self.set.load();
        let now = self.now_ms();
        let total = set.endpoints.len();
        let available = set.endpoints.iter().filter(|e| e.is_available(now)).count();
        let panic = available * 100 < total * self.config.panic_threshold as usize;
        let usable = |e: &Endpoint| panic || e.is_available(now);
        let cx = PickContext {
            hash,
            tried,
            usable: &usable,
        };
        set.balancer
            .pick(&set.endpoints, &cx)
            .map(|i| Arc::clone(&set.endpoints[i]))
            .ok_or_else(|| UpstreamError::NoEndpoint(self.name.to_string()))
    }

    /// A pooled or new connection to the endpoint.
    pub async fn acquire(&self, endpoint: &Endpoint) -> Result<Connection, UpstreamError> {
        endpoint.pool.acquire().await
    }

    /// Records how an attempt on an endpoint went (outlier detection).
    pub fn report(&self, endpoint: &Endpoint, outcome: Outcome) {
        let Some(policy) = &self.config.outlier_detection else {
            return;
        };
        if outcome == Outcome::Success {
            // Only a failure reads the clock and the endpoint set.
            outlier::record_success(endpoint);
            return;
        }
        let set = self.set.load();
        if outlier::record(policy, &set.endpoints, endpoint, outcome, self.now_ms()) {
            self.metrics.ejections.inc();
            tracing::warn!(cluster = %self.name, endpoint = %endpoint.addr, "endpoint ejected by outlier detection");
        }
    }

    /// Sends an `Upgrade` request on a fresh HTTP/1.1 connection that stays
    /// usable for the upgraded protocol.
    pub async fn send_upgrade(
        &self,
        endpoint: &Endpoint,
        req: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, LocalAddr), UpstreamError> {
        let addr = endpoint.addr;
        let permit = self
            .breakers
            .try_connection()
            .ok_or(UpstreamError::Overflow(Breaker::MaxPending))?;
        let (mut sender, local) = connect::http1(
            addr,
            self.config.connect_timeout,
            &self.conn_metrics,
            permit,
            true,
            self.tls.as_deref(),
        )
        .await?;
        let response = sender
            .send_request(req)
            .await
            .map_err(|source| UpstreamError::Reset { addr, source })?;
        Ok((response, local))
    }

    /// A JSON view of the cluster's live state for `/config_dump`.
    pub fn dump(&self) -> serde_json::Value {
        let now = self.now_ms();
        serde_json::json!({
            "name": &*self.name,
            "lb_policy": self.config.lb_policy,
            "active_requests": self.breakers.active_requests(),
            "open_connections": self.breakers.open_connections(),
            "endpoints": self.set.load().endpoints.iter().map(|e| e.dump(now, self.epoch)).collect::<Vec<_>>(),
        })
    }

    fn maintain(&self) {
        let now = self.now_ms();
        for endpoint in self.set.load().endpoints.iter() {
            endpoint.pool.prune();
            endpoint
                .metrics
                .ejected
                .set(i64::from(endpoint.is_ejected(now)));
        }
    }
}

fn spawn_maintenance(cluster: std::sync::Weak<Cluster>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
        loop {
            tick.tick().await;
            match cluster.upgrade() {
                Some(cluster) => cluster.maintain(),
                None => return,
            }
        }
    });
}

/// Endpoints with default state for unit tests.
#[cfg(test)]
pub(crate) fn test_endpoints(n: u16) -> Vec<Arc<Endpoint>> {
    let metrics = Metrics::new();
    let breakers = Breakers::new(
        wasp_config::CircuitBreakers::default(),
        None,
        BreakerMetrics {
            requests: IntCounter::new("a", "a").unwrap(),
            pending: IntCounter::new("b", "b").unwrap(),
            retries: IntCounter::new("c", "c").unwrap(),
        },
    );
    (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([127, 0, 0, 1], 10_000 + i));
            let settings = PoolSettings {
                addr,
                connect_timeout: Duration::from_secs(1),
                max_idle: 1,
                idle_timeout: Duration::from_secs(1),
                metrics: ConnMetrics {
                    active: metrics.upstream_cx_active.with_label_values(&["t"]),
                    total: metrics.upstream_cx_total.with_label_values(&["t"]),
                    connect_fail: metrics.upstream_cx_connect_fail.with_label_values(&["t"]),
                },
                breakers: Arc::clone(&breakers),
                tls: None,
            };
            let labels = ["t", &addr.to_string()];
            Arc::new(Endpoint::new(
                addr,
                1,
                Pool::Http1(Http1Pool::new(settings)),
                EndpointMetrics {
                    requests: metrics.upstream_endpoint_rq.with_label_values(&labels),
                    ejected: metrics.upstream_endpoint_ejected.with_label_values(&labels),
                    healthy: metrics.upstream_endpoint_healthy.with_label_values(&labels),
                },
            ))
        })
        .collect()
}
