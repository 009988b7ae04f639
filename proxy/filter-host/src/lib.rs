//! The wasp Wasm filter host: runs chains of proxy-wasm ABI 0.2.1 filters on
//! wasmtime.
//!
//! Shape: one [`FilterEngine`] per process (Cranelift, pooling allocator,
//! epoch interruption, a module cache keyed by sha256) loads [`Plugin`]s from
//! [`PluginSpec`]s; a [`FilterChain`] is an ordered list of plugins and starts
//! one [`ChainStream`] per HTTP request, which the proxy drives phase by phase.
//! Services that need the proxy (HTTP and gRPC callouts to clusters) go through
//! the [`Callouts`] trait.
// `deny`, not `forbid`: `compiled_cache` and `compiler` alone allow loading
// compiled machine code, which wasmtime marks unsafe (see their module docs).
#![deny(unsafe_code)]

mod abi;
mod callout;
mod calls;
mod chain;
mod compiled_cache;
mod compiler;
mod engine;
mod error;
mod facts;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
mod headers;
mod limits;
mod memory;
mod metrics;
mod module_cache;
mod node;
mod plugin;
mod pool;
mod properties;
mod shared;
mod spec;
mod state;
mod stream;
mod validate;
mod vm;
mod warnings;

#[cfg(test)]
mod tests;

pub use callout::{
    CalloutError, CalloutFuture, CalloutRequest, CalloutResponse, Callouts, StreamEvent,
};
pub use chain::{ChainStream, FilterChain};
pub use engine::{EngineOptions, FilterEngine};
pub use error::HostError;
pub use facts::{FactName, StreamFacts, UpstreamFacts, response_flags};
pub use headers::{HeadChange, HeaderEdits, HeaderSource};
pub use metrics::DEFAULT_MAX_SERIES_PER_FAMILY;
pub use module_cache::{CachedModule, ModuleCacheStatus};
pub use node::NodeInfo;
pub use plugin::{Plugin, PluginStatus};
pub use spec::{FailurePolicy, PluginLimits, PluginSpec};
pub use stream::{HeaderList, LocalReply, StreamInfo, TlsInfo};
