//! The wasp configuration equivalent to an [`EnvoyConfig`], so differential
//! tests run the same topology — one listener, one route through the same
//! ordered plugins to the `upstream` cluster, the same extra clusters — in
//! both proxies.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::config::EnvoyConfig;

impl EnvoyConfig {
    /// wasp's YAML (each top-level value in JSON flow style) for this
    /// topology, with its listener on `listen`; [`crate::Wasp::start`] adds
    /// the admin server.
    pub fn to_wasp_yaml(&self, listen: SocketAddr) -> String {
        let plugins: Vec<Value> = self
            .plugins
            .iter()
            .map(|plugin| {
                let mut vm_config = json!({ "environment": plugin.vm_config.environment });
                if !plugin.vm_config.vm_id.is_empty() {
                    vm_config["vm_id"] = json!(plugin.vm_config.vm_id);
                }
                if !plugin.vm_config.configuration.is_empty() {
                    vm_config["configuration"] = json!(plugin.vm_config.configuration);
                }
                let mut rendered = json!({
                    "name": plugin.name,
                    "module": plugin.module.to_string_lossy(),
                    "failure_policy": if plugin.fail_open { "fail_open" } else { "fail_closed" },
                    "vm_config": vm_config,
                });
                if !plugin.root_id.is_empty() {
                    rendered["root_id"] = json!(plugin.root_id);
                }
                if !plugin.configuration.is_empty() {
                    rendered["configuration"] = json!(plugin.configuration);
                }
                rendered
            })
            .collect();
        let mut route = json!({
            "name": "all",
            "match": { "prefix": "/" },
            "route": { "cluster": "upstream" },
        });
        if !plugins.is_empty() {
            route["filter_chain"] = json!("chain");
        }
        let listeners = json!([{
            "name": "differential",
            "address": listen.to_string(),
            "routes": [route],
        }]);
        let mut clusters =
            vec![json!({ "name": "upstream", "endpoints": [self.upstream.to_string()] })];
        clusters.extend(
            self.clusters.iter().map(
                |(name, endpoint)| json!({ "name": name, "endpoints": [endpoint.to_string()] }),
            ),
        );
        let mut yaml = String::new();
        if let Some(node) = &self.node {
            let node = json!({ "id": node.id, "cluster": node.cluster, "metadata": node.metadata });
            yaml += &format!("node: {node}\n");
        }
        if !plugins.is_empty() {
            let chains = json!([{ "name": "chain", "plugins": plugins }]);
            yaml += &format!("filter_chains: {chains}\n");
        }
        yaml += &format!(
            "listeners: {listeners}\nclusters: {}\n",
            Value::Array(clusters)
        );
        yaml
    }
}
