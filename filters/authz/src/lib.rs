//! `authz`: authorization with Istio's `AuthorizationPolicy` semantics, as a
//! proxy-wasm filter for wasp (and Envoy). Policies match on the request
//! (host, method, path, port, headers), the connection (peer and client
//! addresses, SNI, the peer's identity) and what an authentication filter
//! published (`request.auth.principal`, `.audiences`, `.presenter`,
//! `.claims`); a matching DENY denies, then an ALLOW must match if any
//! exists. The configuration is documented in this crate's README.
//!
//! Test natively: `cargo test -p wasp-authz`. Build the module:
//! `scripts/build-filters.sh` (writes `target/filters/wasp_authz.wasm`).

pub mod attributes;
pub mod compile;
pub mod config;
pub mod engine;
pub mod filter;
mod metrics;
pub mod pattern;
pub mod policy;

pub use attributes::{Attribute, Host, Request};
pub use compile::{ConfigError, compile};
pub use config::Config;
pub use engine::{Decision, Engine, Outcome, Verdict};
pub use filter::{Authz, AuthzStream, Plugin, configure};

wasp_filter_sdk::export!(Authz);
