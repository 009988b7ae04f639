//! The wasp control plane: it will store Wasm modules by sha256, version
//! configurations and push them to proxies over a streaming RPC.
//!
//! Not built yet: this crate only reserves its place in the workspace (see the
//! status table in the top-level README).
