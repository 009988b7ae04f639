//! Endpoint resolution: `IP:port` endpoints as they are, `host:port`
//! endpoints through the system resolver, again every `dns_refresh_rate`.

use std::net::SocketAddr;
use std::sync::Weak;

use super::Cluster;

/// Resolves every endpoint; names that fail to resolve are logged and skipped.
pub async fn resolve(cluster: &str, endpoints: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for endpoint in endpoints {
        if let Ok(addr) = endpoint.parse::<SocketAddr>() {
            out.push(addr);
            continue;
        }
        match tokio::net::lookup_host(endpoint.as_str()).await {
            Ok(addrs) => out.extend(addrs),
            Err(err) => tracing::warn!(cluster, endpoint, error = %err, "cannot resolve endpoint"),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// True when some endpoint is a host name that needs resolving.
pub fn needs_refresh(endpoints: &[String]) -> bool {
    endpoints.iter().any(|e| e.parse::<SocketAddr>().is_err())
}

/// Re-resolves the cluster's endpoints periodically until the cluster is dropped.
pub fn spawn_refresh(cluster: Weak<Cluster>) {
    tokio::spawn(async move {
        loop {
            let Some(rate) = cluster.upgrade().map(|c| c.config.dns_refresh_rate) else {
                return;
            };
            tokio::time::sleep(rate).await;
            let Some(current) = cluster.upgrade() else {
                return;
            };
            let addrs = resolve(&current.name, &current.config.endpoints).await;
            current.set_endpoints(&addrs);
        }
    });
}
