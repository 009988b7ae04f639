//! Errors of loading and running plugins.

use thiserror::Error;

/// Why the host could not load a module or plugin.
#[derive(Debug, Error)]
pub enum HostError {
    /// The wasmtime engine could not be configured.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The bytes are neither a Wasm binary nor WAT text.
    #[error(
        "not a Wasm module: {len} bytes that start with {head} instead of the Wasm binary header 0061736d (\"\\0asm\") and are not WAT text (not UTF-8)"
    )]
    NotAModule {
        /// Size of the bytes.
        len: usize,
        /// Their first bytes, in hex.
        head: String,
    },
    /// The module did not compile.
    #[error("module does not compile: {0}")]
    Compile(String),
    /// The module imports a function the host does not provide.
    #[error("module imports unknown function `{module}.{name}`")]
    UnknownImport {
        /// Import module (`env`, `wasi_snapshot_preview1`, ...).
        module: String,
        /// Import name.
        name: String,
    },
    /// The module lacks an export the ABI requires.
    #[error("module does not export `{0}`, required by proxy-wasm ABI 0.2.1")]
    MissingExport(String),
    /// An export has the wrong kind or signature.
    #[error("module export `{name}` has the wrong type: {reason}")]
    BadExport {
        /// Export name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Linking the module against the host failed.
    #[error("module cannot be linked: {0}")]
    Link(String),
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false.
    #[error("plugin `{plugin}` rejected its {what} ({callback} returned false){}", log_suffix(.log))]
    Rejected {
        /// Plugin name.
        plugin: String,
        /// What was rejected: `configuration` or `VM configuration`.
        what: &'static str,
        /// The callback that answered false.
        callback: &'static str,
        /// What the filter logged while it started (first lines).
        log: Vec<String>,
    },
    /// Instantiation or a start callback trapped or failed.
    #[error("plugin `{plugin}` failed to start: {reason}")]
    Start {
        /// Plugin name.
        plugin: String,
        /// What failed.
        reason: String,
    },
}

/// ": its log: a | b" for a non-empty log.
fn log_suffix(log: &[String]) -> String {
    if log.is_empty() {
        "; it logged nothing".to_owned()
    } else {
        format!("; its log: {}", log.join(" | "))
    }
}

impl HostError {
    /// Whether the error is about the plugin's configuration (its
    /// `configuration` or `vm_config.configuration`) rather than its module:
    /// the configuration field it concerns.
    pub fn configuration_field(&self) -> Option<&'static str> {
        match self {
            Self::Rejected {
                what: "configuration",
                ..
            } => Some("configuration"),
            Self::Rejected { .. } => Some("vm_config.configuration"),
            _ => None,
        }
    }
}
