//! The wasp control plane: a registry of Wasm modules stored by sha256,
//! versioned configurations validated exactly as the proxy validates them,
//! and their distribution to proxies over a streaming gRPC subscription;
//! the mesh's certificate authority ([`ca`]). Proxies bootstrap on the
//! plaintext endpoint with the token, then subscribe on the TLS endpoint
//! ([`server::tls`]) authenticated by their workload certificate.
//!
//! Binaries: `wasp-cp` (the server, [`server::serve`]) and `waspctl` (the
//! operator's command line). The [`Store`](store::Store) trait is where the
//! data lives; [`store::RedbStore`] keeps it in an embedded database in the
//! data directory.

pub mod auth;
pub mod ca;
pub mod configs;
pub mod error;
pub mod metrics;
pub mod proxies;
pub mod reference;
pub mod registry;
pub mod rollout;
pub mod server;
pub mod store;
pub mod targeting;
pub mod time;

pub use error::CpError;
pub use registry::Registry;
