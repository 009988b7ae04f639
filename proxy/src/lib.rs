//! wasp, the WebAssembly Sidecar Proxy: listeners, routing, upstream pools,
//! a declarative configuration hot-swapped as immutable snapshots, and an
//! admin server.
//!
//! The binary (`src/main.rs`) is a thin command-line edge over [`server`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod body;
pub mod conn;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod http;
pub mod limits;
pub mod listener;
pub mod mesh;
pub mod reload;
pub mod router;
pub mod server;
pub mod serving;
pub mod snapshot;
pub mod source;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod wasm;

pub use server::{RunOptions, run};
pub use snapshot::Snapshot;
