//! The egress policy of outbound listeners: where a request that matches no
//! route may go. The registry is the configuration's clusters (a cluster
//! named like the request's host, or `host:port`) plus the `egress` allow
//! list; REGISTRY_ONLY answers anything else with 502 `egress to HOST is not
//! allowed`, ALLOW_ANY forwards it to the original destination (the
//! authority's `host:port`, as a sidecar sees it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasp_config::{ClusterConfig, Config, OutboundTrafficPolicy};
use wasp_filter_host::FilterChain;

use super::Route;
use crate::telemetry::Metrics;
use crate::upstream::Cluster;

/// Name of the clusters that carry allowed traffic to its original
/// destination (Istio's name).
pub const PASSTHROUGH: &str = "PassthroughCluster";
/// Distinct `host` labels of `wasp_egress_denied_total`; more count as `other`.
const MAX_HOST_LABELS: usize = 100;
/// Destinations with a passthrough cluster kept at once.
const MAX_PASSTHROUGH: usize = 1024;
/// One log line per denied host per this period.
const LOG_PERIOD: Duration = Duration::from_secs(60);
/// Hosts whose last log time is remembered (older entries go first).
const MAX_LOGGED: usize = 4096;

/// Where a request that matched no route goes.
pub enum Decision {
    /// Serve it along this route.
    Route(Arc<Route>),
    /// Refuse it: the destination is not in the registry.
    Deny(String),
}

/// One `egress` entry.
struct Allowed {
    /// Exact host, or the suffix after `*.`.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl Allowed {
    fn parse(entry: &str) -> Self {
        let (host, port) = match entry.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()),
            None => (entry, None),
        };
        let host = host.to_ascii_lowercase();
        match host.strip_prefix("*.") {
            Some(suffix) => Self {
                host: format!(".{suffix}"),
                wildcard: true,
                port,
            },
            None => Self {
                host,
                wildcard: false,
                port,
            },
        }
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        let host_ok = if self.wildcard {
            host.ends_with(&self.host)
        } else {
            host == self.host
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// The egress policy of one outbound listener.
pub struct Egress {
    policy: OutboundTrafficPolicy,
    allowed: Vec<Allowed>,
    registry: HashMap<String, Arc<Route>>,
    filter_chain: Option<Arc<FilterChain>>,
    metrics: Metrics,
    passthrough: Mutex<HashMap<String, Arc<Route>>>,
    denials: Mutex<Denials>,
}

/// What denials have been counted under their own label and logged when.
#[derive(Default)]
struct Denials {
    labels: std::collections::HashSet<String>,
    logged: HashMap<String, Instant>,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("policy", &self.policy)
            .finish()
    }
}

impl Egress {
    /// The policy of `config` for a listener running `filter_chain` on
    /// requests it forwards without a route.
    pub fn new(
        config: &Config,
        clusters: &HashMap<String, Arc<Cluster>>,
        filter_chain: Option<Arc<FilterChain>>,
        metrics: &Metrics,
    ) -> Self {
        let registry = clusters
            .iter()
            .map(|(name, cluster)| {
                let route = Route::to_cluster(name, Arc::clone(cluster), filter_chain.clone());
                (name.to_ascii_lowercase(), Arc::new(route))
            })
            .collect();
        Self {
            policy: config.outbound_traffic_policy,
            allowed: config.egress.iter().map(|e| Allowed::parse(e)).collect(),
            registry,
            filter_chain,
            metrics: metrics.clone(),
            passthrough: Mutex::new(HashMap::new()),
            denials: Mutex::new(Denials::default()),
        }
    }

    /// Decides for a request to `authority` (`host[:port]`; `default_port`
    /// when it names none).
    pub async fn resolve(&self, authority: &str, default_port: u16) -> Decision {
        let (host, port) = split(authority, default_port);
        let host = host.to_ascii_lowercase();
        let with_port = format!("{host}:{port}");
        if let Some(route) = self
            .registry
            .get(&host)
            .or_else(|| self.registry.get(&with_port))
        {
            return Decision::Route(Arc::clone(route));
        }
        let allowed = self.policy == OutboundTrafficPolicy::AllowAny
            || self.allowed.iter().any(|a| a.matches(&host, port));
        if !allowed {
            self.denied(&with_port);
            return Decision::Deny(authority.to_owned());
        }
        Decision::Route(self.passthrough(&with_port).await)
    }

    async fn passthrough(&self, destination: &str) -> Arc<Route> {
        if let Some(route) = self.passthrough.lock().expect("lock").get(destination) {
            return Arc::clone(route);
        }
        let config: ClusterConfig = serde_json::from_value(serde_json::json!({
            "name": PASSTHROUGH,
            "endpoints": [destination],
        }))
        .expect("a passthrough cluster with defaults");
        let cluster = Cluster::new(config, &self.metrics, None).await;
        let route = Arc::new(Route::to_cluster(
            PASSTHROUGH,
            cluster,
            self.filter_chain.clone(),
        ));
        let mut cache = self.passthrough.lock().expect("lock");
        if cache.len() >= MAX_PASSTHROUGH {
            cache.clear();
        }
        Arc::clone(cache.entry(destination.to_owned()).or_insert(route))
    }

    /// Counts a denial (host labels capped) and logs it once per host per
    /// minute.
    fn denied(&self, destination: &str) {
        let mut denials = self.denials.lock().expect("lock");
        let own_label = denials.labels.contains(destination)
            || (denials.labels.len() < MAX_HOST_LABELS
                && denials.labels.insert(destination.to_owned()));
        let label = if own_label { destination } else { "other" };
        self.metrics.egress_denied.with_label_values(&[label]).inc();
        let now = Instant::now();
        let due = denials
            .logged
            .get(destination)
            .is_none_or(|last| now.duration_since(*last) >= LOG_PERIOD);
        if !due {
            return;
        }
        tracing::warn!(
            destination,
            "egress denied: not in the registry nor the egress list (REGISTRY_ONLY)"
        );
        if denials.logged.len() >= MAX_LOGGED {
            denials
                .logged
                .retain(|_, last| now.duration_since(*last) < LOG_PERIOD);
            if denials.logged.len() >= MAX_LOGGED {
                denials.logged.clear();
            }
        }
        denials.logged.insert(destination.to_owned(), now);
    }
}

/// `host[:port]` → host and port (brackets of IPv6 literals removed).
fn split(authority: &str, default_port: u16) -> (&str, u16) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').unwrap_or((rest, ""));
        let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
        return (host, port.unwrap_or(default_port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().unwrap_or(default_port)),
        _ => (authority, default_port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_entries_match_hosts_and_ports() {
        let exact = Allowed::parse("api.example.com:443");
        assert!(exact.matches("api.example.com", 443));
        assert!(!exact.matches("api.example.com", 80));
        let any_port = Allowed::parse("API.example.com");
        assert!(any_port.matches("api.example.com", 8080));
        let wildcard = Allowed::parse("*.example.com");
        assert!(wildcard.matches("a.b.example.com", 80));
        assert!(!wildcard.matches("example.com", 80));
    }

    #[test]
    fn denied_host_labels_are_capped() {
        let metrics = Metrics::new();
        let egress = Egress::new(&Config::default(), &HashMap::new(), None, &metrics);
        for i in 0..MAX_HOST_LABELS + 5 {
            egress.denied(&format!("host{i}.example:80"));
        }
        egress.denied("host0.example:80");
        let counter = |host: &str| metrics.egress_denied.with_label_values(&[host]).get();
        assert_eq!(counter("host0.example:80"), 2);
        assert_eq!(counter("other"), 5);
        let families = metrics.registry.gather();
        let denied = families
            .iter()
            .find(|f| f.name() == "wasp_egress_denied_total")
            .unwrap();
        assert_eq!(denied.get_metric().len(), MAX_HOST_LABELS + 1);
    }

    #[test]
    fn authorities_split_into_host_and_port() {
        assert_eq!(split("a.example:8080", 80), ("a.example", 8080));
        assert_eq!(split("a.example", 80), ("a.example", 80));
        assert_eq!(split("[::1]:9000", 80), ("::1", 9000));
        assert_eq!(split("[::1]", 80), ("::1", 80));
    }
}
