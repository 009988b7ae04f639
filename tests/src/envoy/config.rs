//! What an Envoy under test runs: a listener with one route to one cluster and
//! an ordered list of proxy-wasm plugins (`envoy.filters.http.wasm`), rendered
//! as Envoy's JSON bootstrap.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{Value, json};

/// The Wasm runtime Envoy runs a plugin's VM on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Runtime {
    /// V8 (`envoy.wasm.runtime.v8`), compiled into every Envoy release.
    #[default]
    V8,
    /// Wasmtime (`envoy.wasm.runtime.wasmtime`); the PyPI build of Envoy 1.40
    /// does not include it and rejects plugins that ask for it.
    Wasmtime,
}

impl Runtime {
    /// Envoy's extension name of the runtime.
    pub fn extension_name(self) -> &'static str {
        match self {
            Runtime::V8 => "envoy.wasm.runtime.v8",
            Runtime::Wasmtime => "envoy.wasm.runtime.wasmtime",
        }
    }
}

/// A plugin's VM settings (Envoy's `vm_config`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmConfig {
    /// The runtime.
    pub runtime: Runtime,
    /// VM id: plugins with the same id and module share a VM.
    pub vm_id: String,
    /// Handed to `proxy_on_vm_start`.
    pub configuration: String,
    /// Environment variables the module sees through WASI.
    pub environment: BTreeMap<String, String>,
}

/// One proxy-wasm plugin in the HTTP filter chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmPlugin {
    /// Plugin name (the `plugin_name` property).
    pub name: String,
    /// Root id (the `plugin_root_id` property).
    pub root_id: String,
    /// Path of the `.wasm` module.
    pub module: PathBuf,
    /// Handed to `proxy_on_configure`.
    pub configuration: String,
    /// VM settings.
    pub vm_config: VmConfig,
    /// Skip the plugin when its VM fails instead of answering 503.
    pub fail_open: bool,
}

impl WasmPlugin {
    /// A plugin on V8 with an empty root id and VM configuration.
    pub fn new(name: &str, module: impl Into<PathBuf>, configuration: &str) -> WasmPlugin {
        WasmPlugin {
            name: name.to_owned(),
            root_id: String::new(),
            module: module.into(),
            configuration: configuration.to_owned(),
            vm_config: VmConfig::default(),
            fail_open: false,
        }
    }

    /// The same plugin on another runtime.
    pub fn on(mut self, runtime: Runtime) -> WasmPlugin {
        self.vm_config.runtime = runtime;
        self
    }

    fn to_http_filter(&self) -> Value {
        let string_value = |s: &str| json!({ "@type": "type.googleapis.com/google.protobuf.StringValue", "value": s });
        let environment: serde_json::Map<String, Value> = self
            .vm_config
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "name": "envoy.filters.http.wasm",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": self.name,
                    "root_id": self.root_id,
                    "configuration": string_value(&self.configuration),
                    "failure_policy": if self.fail_open { "FAIL_OPEN" } else { "FAIL_CLOSED" },
                    "vm_config": {
                        "runtime": self.vm_config.runtime.extension_name(),
                        "vm_id": self.vm_config.vm_id,
                        "configuration": string_value(&self.vm_config.configuration),
                        "environment_variables": { "key_values": environment },
                        "code": { "local": { "filename": self.module.to_string_lossy() } },
                    },
                },
            },
        })
    }
}

/// The proxy's node identity: Envoy's bootstrap `node`, wasp's `node`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// `node.id`.
    pub id: String,
    /// `node.cluster`.
    pub cluster: String,
    /// `node.metadata` (string values).
    pub metadata: BTreeMap<String, String>,
}

/// An Envoy to start: one listener on loopback whose single route (named
/// `all`, prefix `/`) goes through `plugins` in order to the cluster
/// `upstream`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvoyConfig {
    /// Address of the `upstream` cluster's only endpoint.
    pub upstream: SocketAddr,
    /// The plugins, in request order.
    pub plugins: Vec<WasmPlugin>,
    /// More static clusters (name, endpoint), e.g. for HTTP callouts.
    pub clusters: Vec<(String, SocketAddr)>,
    /// Worker threads (`--concurrency`).
    pub concurrency: usize,
    /// Envoy's log level (`-l`): trace, debug, info, warning, error.
    pub log_level: String,
    /// The node identity, when set.
    pub node: Option<Node>,
}

impl EnvoyConfig {
    /// One worker, `info` logs, no plugins yet.
    pub fn new(upstream: SocketAddr) -> EnvoyConfig {
        EnvoyConfig {
            upstream,
            plugins: Vec::new(),
            clusters: Vec::new(),
            concurrency: 1,
            log_level: "info".to_owned(),
            node: None,
        }
    }

    /// Sets the node identity.
    pub fn node(mut self, id: &str, cluster: &str, metadata: &[(&str, &str)]) -> EnvoyConfig {
        self.node = Some(Node {
            id: id.to_owned(),
            cluster: cluster.to_owned(),
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
        self
    }

    /// Appends a plugin to the chain.
    pub fn plugin(mut self, plugin: WasmPlugin) -> EnvoyConfig {
        self.plugins.push(plugin);
        self
    }

    /// Adds a static cluster.
    pub fn cluster(mut self, name: &str, endpoint: SocketAddr) -> EnvoyConfig {
        self.clusters.push((name.to_owned(), endpoint));
        self
    }

    /// The bootstrap: listener and admin on loopback with the given ports
    /// (0: any free port; the harness reads the real ones back).
    pub fn bootstrap(&self, listener_port: u16, admin_port: u16) -> Value {
        let address = |addr: &SocketAddr| json!({ "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } });
        let loopback =
            |port: u16| json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } });
        let cluster = |name: &str, endpoint: &SocketAddr| {
            json!({
                "name": name,
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": address(endpoint) } }] }],
                },
            })
        };
        let mut http_filters: Vec<Value> = self
            .plugins
            .iter()
            .map(WasmPlugin::to_http_filter)
            .collect();
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
        }));
        let mut clusters = vec![cluster("upstream", &self.upstream)];
        clusters.extend(
            self.clusters
                .iter()
                .map(|(name, endpoint)| cluster(name, endpoint)),
        );
        let mut bootstrap = json!({
            "admin": { "address": loopback(admin_port) },
            "static_resources": {
                "listeners": [{
                    "name": "ingress",
                    "address": loopback(listener_port),
                    "filter_chains": [{ "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "ingress",
                            "route_config": { "virtual_hosts": [{
                                "name": "all",
                                "domains": ["*"],
                                "routes": [{ "name": "all", "match": { "prefix": "/" }, "route": { "cluster": "upstream" } }],
                            }] },
                            "http_filters": http_filters,
                        },
                    }] }],
                }],
                "clusters": clusters,
            },
        });
        if let Some(node) = &self.node {
            bootstrap["node"] =
                json!({ "id": node.id, "cluster": node.cluster, "metadata": node.metadata });
        }
        bootstrap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_plugins_in_order_before_the_router() {
        let upstream: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let mut second = WasmPlugin::new("b", "/m/b.wasm", "{\"k\":1}").on(Runtime::Wasmtime);
        second.root_id = "root-b".into();
        second.fail_open = true;
        second.vm_config.vm_id = "vm".into();
        second.vm_config.configuration = "vm-conf".into();
        second.vm_config.environment.insert("K".into(), "V".into());
        let config = EnvoyConfig::new(upstream)
            .plugin(WasmPlugin::new("a", "/m/a.wasm", ""))
            .plugin(second)
            .cluster("callout", "127.0.0.1:9000".parse().unwrap());
        let boot = config.bootstrap(8080, 9901);
        let hcm = &boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        let filters = hcm["http_filters"].as_array().unwrap();
        assert_eq!(filters.len(), 3);
        assert_eq!(filters[2]["name"], "envoy.filters.http.router");
        let a = &filters[0]["typed_config"]["config"];
        assert_eq!(a["name"], "a");
        assert_eq!(a["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
        assert_eq!(a["failure_policy"], "FAIL_CLOSED");
        let b = &filters[1]["typed_config"]["config"];
        assert_eq!(b["root_id"], "root-b");
        assert_eq!(b["configuration"]["value"], "{\"k\":1}");
        assert_eq!(b["failure_policy"], "FAIL_OPEN");
        assert_eq!(b["vm_config"]["runtime"], "envoy.wasm.runtime.wasmtime");
        assert_eq!(b["vm_config"]["vm_id"], "vm");
        assert_eq!(b["vm_config"]["configuration"]["value"], "vm-conf");
        assert_eq!(
            b["vm_config"]["environment_variables"]["key_values"]["K"],
            "V"
        );
        assert_eq!(b["vm_config"]["code"]["local"]["filename"], "/m/b.wasm");
        let clusters = boot["static_resources"]["clusters"].as_array().unwrap();
        assert_eq!(clusters[0]["name"], "upstream");
        assert_eq!(
            clusters[1]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["port_value"],
            9000
        );
        assert_eq!(
            boot["admin"]["address"]["socket_address"]["port_value"],
            9901
        );
        assert!(boot.get("node").is_none());
    }

    #[test]
    fn renders_the_node_in_both_proxies() {
        let upstream: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let config = EnvoyConfig::new(upstream).node("n-1", "web", &[("ns", "prod")]);
        let boot = config.bootstrap(0, 0);
        assert_eq!(boot["node"]["id"], "n-1");
        assert_eq!(boot["node"]["cluster"], "web");
        assert_eq!(boot["node"]["metadata"]["ns"], "prod");
        let yaml = config.to_wasp_yaml("127.0.0.1:8080".parse().unwrap());
        let line = yaml
            .lines()
            .find(|l| l.starts_with("node: "))
            .expect("node");
        for part in [
            r#""id":"n-1""#,
            r#""cluster":"web""#,
            r#""metadata":{"ns":"prod"}"#,
        ] {
            assert!(line.contains(part), "{yaml}");
        }
    }
}
