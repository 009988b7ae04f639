//! The wasp Wasm filter host: runs chains of proxy-wasm ABI 0.2.1 filters on wasmtime.
