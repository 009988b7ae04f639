//! The wasp filter SDK: write proxy-wasm ABI 0.2.1 HTTP filters in idiomatic Rust.
