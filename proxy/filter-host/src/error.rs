//! Errors of loading and running plugins.

use thiserror::Error;

/// Why the host could not load a module or plugin.
#[derive(Debug, Error)]
pub enum HostError {
    /// The wasmtime engine could not be configured.
    #[error("wasm engine: {0}")]
    Engine(String),
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
    /// Instantiation or a start callback trapped or failed.
    #[error("plugin `{plugin}` failed to start: {reason}")]
    Start {
        /// Plugin name.
        plugin: String,
        /// What failed.
        reason: String,
    },
}
