//! The documents a rollout's end produces, edited from the version it ran
//! in (as YAML values, so everything else stays as the operator wrote
//! it): promotion makes the canary the plugin's module (and its
//! configuration, when it had one); a rollback drops the canary.

use serde_yaml_ng::{Mapping, Value};

/// What becomes of the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The canary version becomes the plugin.
    Promote,
    /// The canary is removed.
    RollBack,
}

/// The plugin `plugin` of chain `chain` in `document`.
fn plugin_mut<'a>(
    document: &'a mut Value,
    chain: &str,
    plugin: &str,
) -> Result<&'a mut Mapping, String> {
    let named = |v: &Value, name: &str| v.get("name").and_then(Value::as_str) == Some(name);
    document
        .get_mut("filter_chains")
        .and_then(Value::as_sequence_mut)
        .and_then(|chains| chains.iter_mut().find(|c| named(c, chain)))
        .and_then(|c| c.get_mut("plugins"))
        .and_then(Value::as_sequence_mut)
        .and_then(|plugins| plugins.iter_mut().find(|p| named(p, plugin)))
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| format!("the document has no plugin {chain}/{plugin}"))
}

/// `document` with the canary of `chain`/`plugin` ended as `end`.
pub fn end_canary(document: &str, chain: &str, plugin: &str, end: End) -> Result<String, String> {
    let mut value: Value = serde_yaml_ng::from_str(document).map_err(|e| e.to_string())?;
    let map = plugin_mut(&mut value, chain, plugin)?;
    let canary = map
        .remove("canary")
        .ok_or_else(|| format!("plugin {chain}/{plugin} has no canary"))?;
    if end == End::Promote {
        let field = |name: &str| canary.get(name).cloned();
        map.insert(
            "module".into(),
            field("module").ok_or("the canary has no module")?,
        );
        match field("sha256") {
            Some(sha) => map.insert("sha256".into(), sha),
            None => map.remove("sha256"),
        };
        if let Some(configuration) = field("configuration") {
            map.insert("configuration".into(), configuration);
        }
    }
    Ok(serde_yaml_ng::to_string(&value).expect("a parsed document serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "filter_chains:\n\
        - name: edge\n  plugins:\n\
        \x20 - {name: log, module: log@v1}\n\
        \x20 - name: auth\n    module: auth@v1\n    sha256: aaaa\n    configuration: {k: 1}\n\
        \x20   canary: {module: auth@v2, sha256: bbbb, percent: 10}\n\
        listeners: []\n";

    fn plugin(document: &str) -> wasp_config::PluginConfig {
        let value: Value = serde_yaml_ng::from_str(document).unwrap();
        serde_yaml_ng::from_value(value["filter_chains"][0]["plugins"][1].clone()).unwrap()
    }

    #[test]
    fn promotion_runs_the_canary_as_the_plugin() {
        let promoted = end_canary(DOC, "edge", "auth", End::Promote).unwrap();
        let p = plugin(&promoted);
        assert_eq!(
            (p.module.as_str(), p.sha256.as_deref()),
            ("auth@v2", Some("bbbb"))
        );
        assert_eq!(p.configuration, Some(serde_json::json!({"k": 1})), "kept");
        assert!(p.canary.is_none());
    }

    #[test]
    fn a_rollback_drops_the_canary_and_keeps_the_stable_version() {
        let back = end_canary(DOC, "edge", "auth", End::RollBack).unwrap();
        let p = plugin(&back);
        assert_eq!(p.module, "auth@v1");
        assert!(p.canary.is_none());
        assert!(back.contains("log@v1"));
    }

    #[test]
    fn a_missing_plugin_or_canary_is_an_error() {
        assert_eq!(
            end_canary(DOC, "edge", "nope", End::RollBack).unwrap_err(),
            "the document has no plugin edge/nope"
        );
        assert_eq!(
            end_canary(DOC, "edge", "log", End::Promote).unwrap_err(),
            "plugin edge/log has no canary"
        );
    }
}
