//! The ABI layer: the proxy-wasm 0.2.1 host functions as raw calls, the guest
//! memory protocol, and safe wrappers the rest of the SDK uses.
//!
//! On `wasm32` the raw functions are the host's imports (module `env`); on
//! every other target the very same signatures are served by the in-process
//! mock host (`mock`, whose state lives in `crate::testing`), so native tests
//! exercise this layer too.
//!
//! This module is the only place in the SDK with `unsafe` code: the crate
//! denies `unsafe_code` and only this module allows it (every other crate of
//! the workspace forbids it).
#![allow(unsafe_code)]

#[cfg(any(test, target_arch = "wasm32"))]
pub(crate) mod allocator;
pub(crate) mod hostcalls;
pub(crate) mod memory;
pub(crate) mod reactor;
pub(crate) mod text;

#[cfg(target_arch = "wasm32")]
pub(crate) mod imports;

#[cfg(target_arch = "wasm32")]
pub(crate) use imports as raw;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod mock;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use mock as raw;

/// The module's allocator: free lists by size class over the system
/// allocator (see `allocator.rs`). Off with the SDK's default features off,
/// for a filter that brings its own `#[global_allocator]`.
#[cfg(all(
    target_arch = "wasm32",
    not(target_feature = "atomics"),
    feature = "size-class-allocator"
))]
#[global_allocator]
static ALLOCATOR: allocator::SizeClassAlloc<std::alloc::System> =
    allocator::SizeClassAlloc::new(std::alloc::System);
