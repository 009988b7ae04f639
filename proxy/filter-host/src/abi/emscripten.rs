//! The `env` functions that C and C++ filters built with Emscripten import
//! besides the proxy-wasm ABI: `emscripten_notify_memory_growth` (every
//! module built with `ALLOW_MEMORY_GROWTH`, as the proxy-wasm C++ SDK's are)
//! and `pthread_equal` (some libc builds).

use wasmtime::Caller;

use super::{ENV, HostImports};
use crate::state::VmState;

/// Called after the module grew its memory. Nothing to do: the host looks
/// the memory up again on every access, so it never holds a stale view.
fn notify_memory_growth(_caller: Caller<'_, VmState>, _memory_index: i32) {}

/// POSIX `pthread_equal`: non-zero when both thread ids are the same. Filters
/// are single-threaded, so this is a plain comparison.
fn pthread_equal(_caller: Caller<'_, VmState>, a: i32, b: i32) -> i32 {
    i32::from(a == b)
}

pub(super) fn register(imports: &mut HostImports) -> wasmtime::Result<()> {
    imports.func(ENV, "emscripten_notify_memory_growth", notify_memory_growth)?;
    imports.func(ENV, "pthread_equal", pthread_equal)?;
    Ok(())
}
