//! The proxy side of the Wasm host: filter chains built for a snapshot from
//! the configuration (reusing unchanged plugins of the previous snapshot),
//! callouts to clusters, header conversion and filtered bodies.

pub mod body;
pub mod callouts;
pub mod convert;

use std::collections::HashMap;
use std::sync::Arc;

use wasp_filter_host::{FilterChain, FilterEngine, Plugin, PluginLimits, PluginSpec};

use wasp_config::{Config, ErrorSink, PluginConfig, configuration_bytes};

/// Filter chains of a snapshot, by name.
pub type Chains = HashMap<String, Arc<FilterChain>>;

/// The host's view of one configured plugin.
fn plugin_spec(plugin: &PluginConfig, wasm: Vec<u8>) -> PluginSpec {
    PluginSpec {
        name: plugin.name.clone(),
        root_id: plugin.root_id.clone(),
        vm_id: plugin.vm_config.vm_id.clone(),
        wasm: wasm.into(),
        environment: plugin
            .vm_config
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        vm_configuration: configuration_bytes(plugin.vm_config.configuration.as_ref()).into(),
        configuration: configuration_bytes(plugin.configuration.as_ref()).into(),
        failure_policy: plugin.failure_policy,
        limits: PluginLimits {
            memory_bytes: plugin.limits.memory_bytes,
            cpu_deadline: plugin.limits.cpu_deadline,
            max_vms: plugin.limits.max_vms,
        },
    }
}

/// Loads every chain of `config`: reads the modules, checks their sha256,
/// compiles (through the engine's cache), starts one VM per plugin. Plugins
/// identical to one of `previous` are taken over with their VMs. Errors go to
/// `sink` with their configuration path.
pub async fn build_chains(
    config: &Config,
    previous: Option<&Chains>,
    engine: &FilterEngine,
    sink: &mut ErrorSink,
) -> Chains {
    let old: Vec<Arc<Plugin>> = previous
        .into_iter()
        .flat_map(|chains| chains.values())
        .flat_map(|chain| chain.plugins().iter().cloned())
        .collect();
    let mut chains = HashMap::new();
    for (i, chain) in config.filter_chains.iter().enumerate() {
        let mut plugins = Vec::new();
        for (j, plugin) in chain.plugins.iter().enumerate() {
            let at = format!("filter_chains[{i}].plugins[{j}]");
            let wasm = match tokio::fs::read(&plugin.module).await {
                Ok(wasm) => wasm,
                Err(err) => {
                    sink.push(
                        format!("{at}.module"),
                        format!("cannot read {}: {err}", plugin.module),
                    );
                    continue;
                }
            };
            if let Some(expected) = &plugin.sha256 {
                let actual = FilterEngine::sha256(&wasm);
                if !actual.eq_ignore_ascii_case(expected) {
                    sink.push(
                        format!("{at}.sha256"),
                        format!("module {} has sha256 {actual}", plugin.module),
                    );
                    continue;
                }
            }
            let spec = plugin_spec(plugin, wasm);
            if let Some(reused) = old.iter().find(|p| *p.spec() == spec) {
                plugins.push(Arc::clone(reused));
                continue;
            }
            let engine = engine.clone();
            match tokio::task::spawn_blocking(move || engine.load(spec)).await {
                Ok(Ok(loaded)) => plugins.push(loaded),
                Ok(Err(err)) => {
                    sink.push(format!("{at}.module"), format!("{}: {err}", plugin.module))
                }
                Err(err) => sink.push(format!("{at}.module"), format!("plugin load failed: {err}")),
            }
        }
        chains.insert(
            chain.name.clone(),
            Arc::new(FilterChain::new(chain.name.clone(), plugins)),
        );
    }
    chains
}

/// `/filters`: every chain with its plugins' state.
pub fn dump(chains: &Chains, engine: &FilterEngine) -> serde_json::Value {
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
            serde_json::json!({ "name": name, "plugins": plugins })
        })
        .collect();
    serde_json::json!({
        "compiled_modules": engine.compiled_modules(),
        "filter_chains": chains,
    })
}
