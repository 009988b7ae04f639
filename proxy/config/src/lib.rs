//! The declarative configuration of wasp: model, parsing and validation,
//! shared by the proxy and the control plane so both accept and reject
//! exactly the same documents with the same path-precise errors.
//!
//! A file is parsed as YAML (JSON is valid YAML), unknown fields rejected, then
//! validated as a whole so the operator sees every problem at once, each with
//! its path.

mod canary;
pub mod defaults;
mod error;
mod filters;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
mod mesh;
mod mesh_validate;
mod model;
mod resilience_validate;
mod route_validate;
mod validate;

pub use canary::{
    CanaryConfig, DEFAULT_HEALTHY_PERIOD, DEFAULT_MAX_ERROR_PERCENT, DEFAULT_MIN_REQUESTS,
    RolloutPolicy, chain_canary,
};
pub use error::{ConfigError, ErrorSink, FieldError};
pub use filters::{
    FailurePolicy, FilterChainConfig, MAX_PLUGIN_MEMORY_BYTES, PluginConfig, PluginLimitsConfig,
    PluginValidator, VmConfig, configuration_bytes,
};
pub use mesh::{
    ClusterTls, DEFAULT_TRUST_DOMAIN, ListenerMtls, MeshConfig, MtlsMode, OutboundTrafficPolicy,
    UpstreamTlsMode, check_spiffe_id, check_trust_domain,
};
pub use model::*;
pub use validate::{validate, validate_with};

use std::path::Path;

/// Reads, parses and validates a configuration file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text)
}

/// Parses and validates a configuration from YAML or JSON text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        // The root is "." (or empty, for an unknown field at the top).
        let path = if path == "." || path.is_empty() {
            "config".to_owned()
        } else {
            path
        };
        let message = err.into_inner().to_string();
        // The YAML parser may repeat (part of) the path in front of its message.
        let message = match message.split_once(": ") {
            Some((prefix, rest)) if !prefix.contains(' ') && path.starts_with(prefix) => {
                rest.to_owned()
            }
            _ => message,
        };
        ConfigError::Invalid(vec![FieldError { path, message }])
    })?;
    validate(&config)?;
    Ok(config)
}

#[cfg(test)]
mod tests;
