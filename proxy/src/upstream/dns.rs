//! Endpoint resolution: `IP:port` endpoints as they are, `host:port`
//! endpoints through the system resolver, again every `dns_refresh_rate`.

use std::net::SocketAddr;
use std::sync::Weak;

use super::Cluster;
use wasp_config::EndpointConfig;

/// Resolves every endpoint to `(address, weight)`; names that fail to
/// resolve are logged and skipped. Order follows the configuration.
pub async fn resolve(cluster: &str, endpoints: &[EndpointConfig]) -> Vec<(SocketAddr, u32)> {
    let mut out: Vec<(SocketAddr, u32)> = Vec::new();
    for endpoint in endpoints {
        let addrs: Vec<SocketAddr> = match endpoint.address.parse::<SocketAddr>() {
            Ok(addr) => vec![addr],
            Err(_) => match tokio::net::lookup_host(endpoint.address.as_str()).await {
                Ok(addrs) => addrs.collect(),
                Err(err) => {
                    tracing::warn!(cluster, endpoint = %endpoint.address, error = %err, "cannot resolve endpoint");
                    continue;
                }
            },
        };
        for addr in addrs {
            if !out.iter().any(|(seen, _)| *seen == addr) {
                out.push((addr, endpoint.weight));
            }
        }
    }
    out
}

/// True when some endpoint is a host name that needs resolving.
pub fn needs_refresh(endpoints: &[EndpointConfig]) -> bool {
    endpoints
        .iter()
        .any(|e| e.address.parse::<SocketAddr>().is_err())
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
