//! Configuration documents as the control plane sees them: validated with
//! exactly the proxy's code (`wasp_config::parse` then `validate_with`, the
//! registry standing in for the proxy's Wasm engine as the
//! [`PluginValidator`]), and resolved for the proxies by pinning every
//! plugin's module to `sha256:<hex>`.

use std::collections::{HashMap, HashSet};

use serde_yaml_ng::Value;
use wasp_config::{Config, ErrorSink, FieldError, PluginConfig, PluginValidator};

use crate::reference::ModuleRef;
use crate::store::ModuleRecord;

/// Module references resolved against a view of the registry.
#[derive(Debug, Default)]
pub struct Resolver {
    by_tag: HashMap<(String, String), String>,
    shas: HashSet<String>,
}

impl Resolver {
    /// A resolver over these registry entries.
    pub fn new(modules: &[ModuleRecord]) -> Self {
        Self {
            by_tag: modules
                .iter()
                .map(|m| ((m.name.clone(), m.tag.clone()), m.sha256.clone()))
                .collect(),
            shas: modules.iter().map(|m| m.sha256.clone()).collect(),
        }
    }

    /// The sha256 a reference names, or why it names none.
    pub fn resolve(&self, reference: &str) -> Result<String, String> {
        match ModuleRef::parse(reference)? {
            ModuleRef::Tagged { name, tag } => self
                .by_tag
                .get(&(name.clone(), tag.clone()))
                .cloned()
                .ok_or_else(|| format!("no module {name}@{tag} in the registry")),
            ModuleRef::Sha256(hex) if self.shas.contains(&hex) => Ok(hex),
            ModuleRef::Sha256(hex) => Err(format!("no module sha256:{hex} in the registry")),
        }
    }
}

impl Resolver {
    /// Checks that `module` names a module (with `sha256`, when given),
    /// at `at`.
    fn check(&self, module: &str, sha256: Option<&String>, at: &str, sink: &mut ErrorSink) {
        match self.resolve(module) {
            Ok(sha) => {
                if let Some(expected) = sha256
                    && !sha.eq_ignore_ascii_case(expected)
                {
                    sink.push(
                        format!("{at}.sha256"),
                        format!("module {module} has sha256 {sha}"),
                    );
                }
            }
            Err(message) => sink.push(format!("{at}.module"), message),
        }
    }
}

impl PluginValidator for Resolver {
    fn validate_plugin(&self, plugin: &PluginConfig, at: &str, sink: &mut ErrorSink) {
        self.check(&plugin.module, plugin.sha256.as_ref(), at, sink);
        if let Some(canary) = &plugin.canary {
            let at = format!("{at}.canary");
            self.check(&canary.module, canary.sha256.as_ref(), &at, sink);
        }
    }
}

/// Pins `map`'s `module` to `sha256:<hex>` and sets its `sha256`.
fn pin(
    map: &mut serde_yaml_ng::Mapping,
    resolver: &Resolver,
    at: String,
) -> Result<(), FieldError> {
    let module = map
        .get("module")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match resolver.resolve(module) {
        Ok(sha) => {
            map.insert("module".into(), format!("sha256:{sha}").into());
            map.insert("sha256".into(), sha.into());
            Ok(())
        }
        Err(message) => Err(FieldError {
            path: format!("{at}.module"),
            message,
        }),
    }
}

/// Parses and validates `document` as the proxy would, with module
/// references checked against `resolver`; every problem with its path.
pub fn validate(document: &str, resolver: &Resolver) -> Result<Config, Vec<FieldError>> {
    let config = wasp_config::parse(document).map_err(|e| e.field_errors().to_vec())?;
    wasp_config::validate_with(&config, resolver).map_err(|e| e.field_errors().to_vec())?;
    Ok(config)
}

/// `document` (already valid) with every plugin `module` replaced by
/// `sha256:<hex>` and its `sha256` set: what proxies receive.
pub fn resolve(document: &str, resolver: &Resolver) -> Result<String, Vec<FieldError>> {
    let mut value: Value = serde_yaml_ng::from_str(document).map_err(|err| {
        vec![FieldError {
            path: "config".into(),
            message: err.to_string(),
        }]
    })?;
    let mut errors = Vec::new();
    let chains = value
        .get_mut("filter_chains")
        .and_then(Value::as_sequence_mut);
    for (i, chain) in chains.into_iter().flatten().enumerate() {
        let plugins = chain.get_mut("plugins").and_then(Value::as_sequence_mut);
        for (j, plugin) in plugins.into_iter().flatten().enumerate() {
            let Some(map) = plugin.as_mapping_mut() else {
                continue;
            };
            let at = format!("filter_chains[{i}].plugins[{j}]");
            if let Some(canary) = map.get_mut("canary").and_then(Value::as_mapping_mut) {
                errors.extend(pin(canary, resolver, format!("{at}.canary")).err());
            }
            errors.extend(pin(map, resolver, at).err());
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(serde_yaml_ng::to_string(&value).expect("a parsed document serializes"))
}

/// Every plugin's module reference in `config` (canaries' too), with its path.
pub fn module_references(config: &Config) -> Vec<(String, String)> {
    config
        .filter_chains
        .iter()
        .enumerate()
        .flat_map(|(i, chain)| {
            chain
                .plugins
                .iter()
                .enumerate()
                .flat_map(move |(j, plugin)| {
                    let at = format!("filter_chains[{i}].plugins[{j}]");
                    let canary = plugin
                        .canary
                        .as_ref()
                        .map(|c| (format!("{at}.canary"), c.module.clone()));
                    std::iter::once((at, plugin.module.clone())).chain(canary)
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Resolver {
        Resolver::new(&[ModuleRecord {
            name: "auth".into(),
            tag: "v1".into(),
            sha256: "a".repeat(64),
            size: 3,
            uploaded_at: String::new(),
            signatures: 0,
        }])
    }

    fn doc(module: &str) -> String {
        format!(
            "filter_chains: [{{name: c, plugins: [{{name: p, module: '{module}'}}]}}]\n\
             listeners: [{{name: l, address: '127.0.0.1:8080', filter_chain: c, routes: []}}]\n"
        )
    }

    #[test]
    fn a_reference_to_a_missing_module_is_an_error_at_its_path() {
        let errors = validate(&doc("auth@v2"), &registry()).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "filter_chains[0].plugins[0].module: no module auth@v2 in the registry"
        );
        assert!(validate(&doc("auth@v1"), &registry()).is_ok());
        assert!(validate(&doc(&format!("sha256:{}", "a".repeat(64))), &registry()).is_ok());
    }

    #[test]
    fn document_errors_come_from_the_proxys_validation() {
        let errors = validate(
            "listeners: [{name: l, address: nope, routes: []}]",
            &registry(),
        )
        .unwrap_err();
        assert_eq!(errors[0].path, "listeners[0].address");
    }

    #[test]
    fn resolving_pins_every_module_to_its_sha256() {
        let resolved = resolve(&doc("auth@v1"), &registry()).unwrap();
        let config = wasp_config::parse(&resolved).unwrap();
        let plugin = &config.filter_chains[0].plugins[0];
        assert_eq!(plugin.module, format!("sha256:{}", "a".repeat(64)));
        assert_eq!(plugin.sha256.as_deref(), Some(&*"a".repeat(64)));
    }
}
