//! The proxy side of the Wasm host: filter chains built for a snapshot from
//! the configuration with modules from a [`ModuleStore`] (reusing unchanged
//! plugins of the previous snapshot), callouts to clusters, header
//! conversion, heads read in place, and filtered bodies.

pub mod body;
pub mod callouts;
pub mod canary;
pub mod cluster_directory;
pub mod convert;
pub mod head;
pub mod module_cache;
pub mod modules;
pub mod names;
pub mod node;

use std::collections::HashMap;
use std::sync::Arc;

use wasp_filter_host::{FilterChain, FilterEngine, Plugin, PluginLimits, PluginSpec};

use wasp_config::{Config, ErrorSink, PluginConfig, PluginValidator, configuration_bytes};

use modules::{Module, ModuleStore};

/// Filter chains of a snapshot, by name.
pub type Chains = HashMap<String, Arc<FilterChain>>;

/// The host's view of one configured plugin.
fn plugin_spec(plugin: &PluginConfig, wasm: bytes::Bytes) -> PluginSpec {
    PluginSpec {
        name: plugin.name.clone(),
        root_id: plugin.root_id.clone(),
        vm_id: plugin.vm_config.vm_id.clone(),
        wasm,
        environment: plugin
            .vm_config
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        vm_configuration: configuration_bytes(plugin.vm_config.configuration.as_ref()).into(),
        configuration: configuration_bytes(plugin.configuration.as_ref()).into(),
        failure_policy: plugin.failure_policy,
        limits: PluginLimits::from(&plugin.limits),
    }
}

/// Loads plugins: their modules from a [`ModuleStore`] (checked against
/// the configured sha256), compiled through the engine's cache, one VM
/// started and configured. Also the proxy's [`PluginValidator`].
#[derive(Clone)]
pub struct PluginLoader {
    /// The engine plugins are loaded in.
    pub engine: FilterEngine,
    /// Where module bytes come from.
    pub modules: Arc<dyn ModuleStore>,
    /// Command-line node settings, applied over each configuration's `node`.
    pub node: node::NodeOverrides,
    /// The clusters plugins' callouts reach.
    pub clusters: Arc<cluster_directory::ClusterDirectory>,
}

/// Why a plugin could not be loaded: `(path under the plugin, message)`.
type LoadError = (&'static str, String);

impl PluginLoader {
    /// Makes `config`'s node (with the command line's settings) the one VMs
    /// created from now on see; returns the node it replaces.
    pub fn apply_node(&self, config: &wasp_config::NodeConfig) -> wasp_filter_host::NodeInfo {
        self.engine.set_node(self.node.node_info(config))
    }

    /// The module of `plugin`, checked against its `sha256`. Blocking.
    fn module(&self, plugin: &PluginConfig) -> Result<Module, LoadError> {
        let module = self
            .modules
            .fetch(&plugin.module)
            .map_err(|err| ("module", err.to_string()))?;
        match &plugin.sha256 {
            Some(expected) if !module.sha256.eq_ignore_ascii_case(expected) => Err((
                "sha256",
                format!("module {} has sha256 {}", plugin.module, module.sha256),
            )),
            _ => Ok(module),
        }
    }

    /// Loads `spec` for `plugin`. Blocking.
    fn start(&self, plugin: &PluginConfig, spec: PluginSpec) -> Result<Arc<Plugin>, LoadError> {
        self.engine
            .load(spec)
            .map_err(|err| match err.configuration_field() {
                Some(field) => (field, err.to_string()),
                None => ("module", format!("{}: {err}", plugin.module)),
            })
    }
}

impl PluginValidator for PluginLoader {
    fn validate_plugin(&self, plugin: &PluginConfig, at: &str, sink: &mut ErrorSink) {
        let loaded = self
            .module(plugin)
            .and_then(|module| self.start(plugin, plugin_spec(plugin, module.bytes)));
        if let Err((field, message)) = loaded {
            sink.push(format!("{at}.{field}"), message);
        }
        if let Some(version) = plugin.canary_version() {
            let loaded = self
                .module(&version)
                .and_then(|module| self.start(&version, plugin_spec(&version, module.bytes)));
            if let Err((field, message)) = loaded {
                sink.push(format!("{at}.canary.{field}"), message);
            }
        }
    }
}

/// Every plugin of `chains` and `canaries` (for reuse by the next snapshot).
pub fn plugins_of(chains: &Chains, canaries: &canary::Canaries) -> Vec<Arc<Plugin>> {
    chains
        .values()
        .chain(canaries.values().map(|c| &c.canary_chain))
        .flat_map(|chain| chain.plugins().iter().cloned())
        .collect()
}

/// Loads `plugin` (found at `at`), or takes over the identical one of
/// `old`; errors go to `sink`.
async fn load(
    loader: &PluginLoader,
    plugin: &PluginConfig,
    old: &[Arc<Plugin>],
    at: &str,
    sink: &mut ErrorSink,
) -> Option<Arc<Plugin>> {
    let loaded = {
        let (loader, plugin) = (loader.clone(), plugin.clone());
        let old = old.to_vec();
        tokio::task::spawn_blocking(move || {
            let module = loader.module(&plugin)?;
            let spec = plugin_spec(&plugin, module.bytes);
            match old.iter().find(|p| p.is_loaded_from(&spec)) {
                Some(reused) => Ok(Arc::clone(reused)),
                None => loader.start(&plugin, spec),
            }
        })
        .await
    };
    match loaded {
        Ok(Ok(plugin)) => Some(plugin),
        Ok(Err((field, message))) => {
            sink.push(format!("{at}.{field}"), message);
            None
        }
        Err(err) => {
            sink.push(format!("{at}.module"), format!("plugin load failed: {err}"));
            None
        }
    }
}

/// Loads every chain of `config` with `loader`, off the async workers,
/// and for a chain with a canary also the chain running the canary
/// version. Plugins identical to one of `old` (same module bytes and
/// settings) are taken over with their VMs, and a canary identical to one
/// of `old_canaries` with its counts. Errors go to `sink` with their
/// configuration path.
pub async fn build_chains(
    config: &Config,
    old: &[Arc<Plugin>],
    old_canaries: Option<&canary::Canaries>,
    loader: &PluginLoader,
    sink: &mut ErrorSink,
) -> (Chains, canary::Canaries) {
    let mut chains = HashMap::new();
    let mut canaries = HashMap::new();
    for (i, chain) in config.filter_chains.iter().enumerate() {
        let mut plugins = Vec::new();
        for (j, plugin) in chain.plugins.iter().enumerate() {
            let at = format!("filter_chains[{i}].plugins[{j}]");
            if let Some(plugin) = load(loader, plugin, old, &at, sink).await {
                plugins.push(plugin);
            }
        }
        if let Some((j, plugin)) = wasp_config::chain_canary(chain)
            && let Some(version) = plugin.canary_version()
            && let Some(stable) = plugins.get(j).cloned()
        {
            let at = format!("filter_chains[{i}].plugins[{j}].canary");
            if let Some(loaded) = load(loader, &version, old, &at, sink).await {
                let mut with_canary = plugins.clone();
                with_canary[j] = Arc::clone(&loaded);
                let percent = plugin.canary.as_ref().map_or(0.0, |c| c.percent);
                let mut canary = canary::Canary::new(
                    &chain.name,
                    &plugin.name,
                    percent,
                    Arc::new(FilterChain::new(chain.name.clone(), with_canary)),
                    stable.status().sha256,
                    loaded.status().sha256,
                );
                if let Some(previous) = old_canaries.and_then(|c| c.get(&chain.name)) {
                    canary.carry_counts(previous);
                }
                canaries.insert(chain.name.clone(), Arc::new(canary));
            }
        }
        chains.insert(
            chain.name.clone(),
            Arc::new(FilterChain::new(chain.name.clone(), plugins)),
        );
    }
    (chains, canaries)
}

/// `/filters`: every chain with its plugins' state.
pub fn dump(
    chains: &Chains,
    canaries: &canary::Canaries,
    engine: &FilterEngine,
) -> serde_json::Value {
    let mut names: Vec<&String> = chains.keys().collect();
    names.sort();
    let chains: Vec<serde_json::Value> = names
        .into_iter()
        .map(|name| {
            let plugins: Vec<serde_json::Value> = chains[name]
                .plugins()
                .iter()
                .map(|plugin| {
                    let s = plugin.status();
                    serde_json::json!({
                        "name": s.name,
                        "root_id": s.root_id,
                        "sha256": s.sha256,
                        "failure_policy": s.failure_policy.as_str(),
                        "vms": s.vms,
                        "memory_bytes": s.memory_bytes,
                        "traps": s.traps,
                        "timeouts": s.timeouts,
                        "restarts": s.restarts,
                        "healthy": s.healthy,
                    })
                })
                .collect();
            let canary = canaries.get(name).map(|c| {
                let plugin = c
                    .canary_chain
                    .plugins()
                    .iter()
                    .find(|p| p.name() == c.plugin)
                    .map(|p| p.status());
                serde_json::json!({
                    "plugin": c.plugin,
                    "percent": c.percent,
                    "stable_sha256": c.stable.sha256,
                    "sha256": c.canary.sha256,
                    "traps": plugin.as_ref().map(|s| s.traps),
                    "healthy": plugin.as_ref().map(|s| s.healthy),
                })
            });
            serde_json::json!({ "name": name, "plugins": plugins, "canary": canary })
        })
        .collect();
    let cache = engine.module_cache();
    let modules: Vec<_> = cache
        .modules
        .iter()
        .map(|m| serde_json::json!({"sha256": m.sha256, "bytes": m.bytes, "plugins": m.plugins}))
        .collect();
    serde_json::json!({
        "compiled_modules": engine.compiled_modules(),
        "vm_pool": engine.pooled(),
        "module_cache": {
            "capacity_bytes": cache.capacity_bytes,
            "bytes": cache.bytes,
            "modules": modules,
        },
        "filter_chains": chains,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Metrics;
    use modules::MemoryModules;

    /// The smallest module the host accepts as a proxy-wasm filter.
    const MINIMAL: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 1024)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32)))"#;

    fn loader(modules: MemoryModules) -> PluginLoader {
        PluginLoader {
            engine: crate::server::filter_engine(&Metrics::new()).unwrap(),
            modules: Arc::new(modules),
            node: node::NodeOverrides::default(),
            clusters: Arc::default(),
        }
    }

    fn errors(loader: &PluginLoader, yaml: &str) -> Vec<String> {
        let config: PluginConfig = serde_yaml_ng::from_str(yaml).unwrap();
        let mut sink = ErrorSink::default();
        loader.validate_plugin(&config, "filter_chains[0].plugins[0]", &mut sink);
        match sink.finish() {
            Ok(()) => Vec::new(),
            Err(err) => err.field_errors().iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn the_loader_validates_plugins_from_its_module_store() {
        let modules = MemoryModules::default();
        modules.insert("good", MINIMAL);
        modules.insert("garbage", &b"\0asm\x01\0\0\0garbage"[..]);
        modules.insert(
            "refusing",
            MINIMAL.replace(
                "(func (export \"proxy_abi_version_0_2_1\"))",
                "(func (export \"proxy_abi_version_0_2_1\")) \
                 (func (export \"proxy_on_configure\") (param i32 i32) (result i32) i32.const 0)",
            ),
        );
        let loader = loader(modules);
        assert_eq!(
            errors(&loader, "{name: p, module: good}"),
            Vec::<String>::new()
        );
        assert_eq!(
            errors(&loader, "{name: p, module: absent}"),
            ["filter_chains[0].plugins[0].module: no module absent"]
        );
        let garbage = errors(&loader, "{name: p, module: garbage}");
        assert_eq!(garbage.len(), 1);
        assert!(
            garbage[0].starts_with("filter_chains[0].plugins[0].module: garbage: "),
            "{garbage:?}"
        );
        assert_eq!(
            errors(&loader, "{name: p, module: refusing}"),
            [
                "filter_chains[0].plugins[0].configuration: plugin `p` rejected its configuration \
              (proxy_on_configure returned false); it logged nothing"
            ]
        );
        let mismatch = errors(
            &loader,
            &format!("{{name: p, module: good, sha256: {}}}", "0".repeat(64)),
        );
        assert_eq!(mismatch.len(), 1);
        assert!(
            mismatch[0].starts_with("filter_chains[0].plugins[0].sha256: module good has sha256 "),
            "{mismatch:?}"
        );
    }
}
