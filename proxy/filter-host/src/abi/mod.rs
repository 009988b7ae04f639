//! The host side of the proxy-wasm ABI 0.2.1: every function a module may
//! import (plus WASI and the few Emscripten names C++ filters import),
//! registered in one wasmtime `Linker`, plus the names of all of them for
//! load-time validation.

mod callouts;
mod emscripten;
mod http;
mod services;
mod wasi;

use std::collections::HashSet;

use wasmtime::{Engine, IntoFunc, Linker};

use crate::state::VmState;

pub(crate) use callouts::parse_grpc_messages;

/// The import module of proxy-wasm functions.
pub(crate) const ENV: &str = "env";

/// The linker with every host function, and the `(module, name)` of each.
pub(crate) struct HostImports {
    pub linker: Linker<VmState>,
    pub names: HashSet<(String, String)>,
}

impl HostImports {
    /// Links every host function.
    pub fn new(engine: &Engine) -> wasmtime::Result<Self> {
        let mut imports = Self {
            linker: Linker::new(engine),
            names: HashSet::new(),
        };
        http::register(&mut imports)?;
        services::register(&mut imports)?;
        callouts::register(&mut imports)?;
        emscripten::register(&mut imports)?;
        wasi::register(&mut imports, "wasi_snapshot_preview1")?;
        wasi::register(&mut imports, "wasi_unstable")?;
        Ok(imports)
    }

    /// Defines one host function.
    pub fn func<Params, Args>(
        &mut self,
        module: &str,
        name: &str,
        func: impl IntoFunc<VmState, Params, Args>,
    ) -> wasmtime::Result<()> {
        self.linker.func_wrap(module, name, func)?;
        self.names.insert((module.to_owned(), name.to_owned()));
        Ok(())
    }

    /// True when the host provides this import.
    pub fn provides(&self, module: &str, name: &str) -> bool {
        self.names.contains(&(module.to_owned(), name.to_owned()))
    }
}
