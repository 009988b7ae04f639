//! Compiling a module in a throwaway engine: Cranelift keeps its compiler
//! contexts (function bodies, register allocation and e-graph buffers,
//! megabytes once a large function went through) in the engine that
//! compiled, for the next compilation. A proxy compiles at start and on a
//! reload only, so those buffers would stay resident for nothing. Here a
//! compile-only engine with the same code-generation settings (not the
//! pooling allocator: it instantiates nothing) compiles the module to its
//! serialized form and is dropped with its contexts; the process's engine
//! loads the result.
//!
//! Loading serialized machine code is `unsafe` in wasmtime: the bytes must
//! be what `precompile_module` of a compatible engine produced. They are:
//! they never leave this function, and the compile engine's settings are
//! the process engine's (`Engine::new` of the same `Config` but its
//! allocation strategy); wasmtime checks that compatibility again when it
//! loads them.
#![allow(unsafe_code)]

use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module};

use crate::error::HostError;

/// Compiles modules for an engine configured with `config`.
pub(crate) struct Compiler {
    config: Config,
}

impl Compiler {
    /// A compiler for engines of `config` (its allocation strategy aside).
    pub fn new(config: &Config) -> Self {
        let mut config = config.clone();
        config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        Self { config }
    }

    /// Compiles `wasm` (binary or WAT text) for `engine`, freeing the
    /// compiler's memory before returning.
    pub fn compile(&self, engine: &Engine, wasm: &[u8]) -> Result<Module, HostError> {
        let compiled = {
            let compiler =
                Engine::new(&self.config).map_err(|e| HostError::Engine(format!("{e:#}")))?;
            compiler
                .precompile_module(wasm)
                .map_err(|e| HostError::Compile(format!("{e:#}")))?
        };
        // SAFETY: `compiled` is what `precompile_module` of an engine with
        // this engine's code-generation settings just produced (see the
        // module doc); wasmtime checks the compatibility on load.
        unsafe { Module::deserialize(engine, &compiled) }
            .map_err(|e| HostError::Compile(format!("{e:#}")))
    }
}
