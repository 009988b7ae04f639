//! The wasp filter SDK: write proxy-wasm ABI 0.2.1 HTTP filters in idiomatic
//! Rust, test them natively against a mock host, and build them to
//! `wasm32-wasip1` modules that run in wasp (and Envoy).
//!
//! A filter implements [`RootFilter`] (per plugin) and [`HttpFilter`] (per
//! stream) and registers them with [`export!`]. See `filter-sdk/README.md`.

// Only the ABI module (src/abi/) allows unsafe code; see filter-sdk/Cargo.toml.
#![deny(unsafe_code)]

mod abi;
mod callout;
mod context;
mod dispatch;
mod error;
mod export;
mod filter;
mod headers;
pub mod log;
pub mod metrics;
mod properties;
pub mod shared;
mod snapshot;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use callout::{DEFAULT_CALLOUT_TIMEOUT, GrpcRequest, GrpcResponse, HttpRequest, HttpResponse};
pub use context::{HttpCtx, RootCtx};
pub use dispatch::TIMER_GRANULARITY;
pub use error::{Error, Result};
pub use filter::{Action, Callbacks, HeaderList, HttpFilter, RootFilter};
pub use headers::{Body, Headers};
pub use metrics::{Counter, Gauge, Histogram, labeled_name};
pub use properties::{Properties, PropertyPath, get_property, now};
pub use shared::{SharedQueue, SharedValue};
pub use snapshot::HeaderSnapshot;
pub use wasp_abi::{LogLevel, Status};

/// Everything a filter usually needs: `use wasp_filter_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Action, Callbacks, Counter, Gauge, GrpcRequest, GrpcResponse, Histogram, HttpCtx,
        HttpFilter, HttpRequest, HttpResponse, Properties, RootCtx, RootFilter, SharedQueue,
    };
}

/// Support for the [`export!`] macro; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::abi::memory::allocate;
    pub use crate::abi::reactor::initialize;
    pub use crate::dispatch::{
        on_body, on_configure, on_context_create, on_delete, on_done, on_grpc_close,
        on_grpc_initial_metadata, on_grpc_message, on_grpc_trailing_metadata, on_headers,
        on_http_call_response, on_log, on_queue_ready, on_tick, on_trailers, on_vm_start,
    };

    /// A root filter boxed for the registry.
    pub type BoxedRoot = Box<dyn crate::dispatch::ErasedRoot>;
    /// The request direction.
    pub const REQUEST: wasp_abi::StreamType = wasp_abi::StreamType::HttpRequest;
    /// The response direction.
    pub const RESPONSE: wasp_abi::StreamType = wasp_abi::StreamType::HttpResponse;

    /// Boxes a root filter for the registry.
    pub fn boxed_root<R: crate::RootFilter>(id: u32, root: R) -> BoxedRoot {
        crate::dispatch::boxed_root(id, root)
    }
}
