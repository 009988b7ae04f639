//! The module's `_initialize` export: runs its static constructors once, as
//! a WASI reactor does. Without it the linker makes the module a command
//! and wraps every export in a run of the constructors before and the
//! destructors after the call, on every callback of every request. wasp
//! and Envoy call `_initialize` once, before any other export.

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// The constructors of the module, synthesized by the linker.
    fn __wasm_call_ctors();
}

/// Backs the `_initialize` export. Referencing the constructors here is
/// what tells the linker that the module calls them itself.
pub fn initialize() {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the linker's constructor function takes no arguments; the
    // host calls `_initialize` once, before any other export.
    unsafe {
        __wasm_call_ctors()
    };
}
