//! Proxy-wasm filters written as tiny WAT programs, and a directory to
//! write them to for a plugin's `module:`.
//!
//! [`wat`] wraps a filter's imports and callbacks in the module every
//! filter needs (memory, a bump allocator, the ABI marker, context
//! creation); the filters here are the ones several test files use. Memory
//! below 100 is scratch space for return pointers; string constants live
//! from 100 up.

use std::path::{Path, PathBuf};

use crate::client::Resp;

/// A proxy-wasm module: `imports`, then memory, a bump allocator, the ABI
/// marker, context creation, then `body`.
pub fn wat(imports: &str, body: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 65536))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    global.get $heap
    local.set $p
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    local.get $p)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  {body}
)"#
    )
}

/// Adds `x-filter: added` to requests and responses.
pub fn add_header_filter() -> String {
    header_filter("added")
}

/// Adds `x-filter: <value>` to requests and responses.
pub fn header_filter(value: &str) -> String {
    wat(
        r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#,
        &format!(
            r#"(data (i32.const 100) "x-filter")
  (data (i32.const 120) "{value}")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 0) (i32.const 100) (i32.const 8) (i32.const 120) (i32.const {len})))
    i32.const 0)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 100) (i32.const 8) (i32.const 120) (i32.const {len})))
    i32.const 0)"#,
            len = value.len()
        ),
    )
}

/// Imports `env.proxy_no_such_call`, which the host does not have.
pub fn unknown_import_filter() -> String {
    wat(
        r#"(import "env" "proxy_no_such_call" (func (param i32)))"#,
        "",
    )
}

/// Pauses the request for an HTTP callout to `cluster` (`GET /side`,
/// authority `up`) and resumes it with the callout's body as `x-filter`.
pub fn callout_filter(cluster: &str) -> String {
    let map: &[(&str, &str)] = &[(":method", "GET"), (":path", "/side"), (":authority", "up")];
    let map = wasp_abi::encode_map(map);
    let escaped: String = map.iter().map(|b| format!("\\{b:02x}")).collect();
    wat(
        r#"(import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))"#,
        &format!(
            r#"(data (i32.const 100) "{cluster}")
  (data (i32.const 120) "x-filter")
  (data (i32.const 200) "{escaped}")
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (i32.store (i32.const 48) (local.get $ctx))
    (if (i32.ne (call $call (i32.const 100) (i32.const {cluster_len}) (i32.const 200) (i32.const {len})
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 2000) (i32.const 32)) (i32.const 0))
      (then unreachable))
    i32.const 1)
  (func (export "proxy_on_http_call_response") (param i32 i32 i32) (param $size i32) (param i32)
    ;; delivered to the root context: switch to the stream that made the call
    (drop (call $effective (i32.load (i32.const 48))))
    (drop (call $get (i32.const 4) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (drop (call $add (i32.const 0) (i32.const 120) (i32.const 8) (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (drop (call $continue (i32.const 0))))"#,
            cluster_len = cluster.len(),
            len = map.len()
        ),
    )
}

/// What an echoing [`crate::Upstream`] saw of the filters' work, from its
/// answer: `x-filter=<the x-filter request header>\nbody=<the request body>`.
pub fn upstream_saw(resp: &Resp) -> String {
    let echo = resp.json();
    let header = echo["headers"]["x-filter"].as_str().unwrap_or_default();
    let body = echo["body"].as_str().expect("the request body is echoed");
    format!("x-filter={header}\nbody={body}")
}

/// A temporary directory of `.wat` modules, removed when dropped.
pub struct WatDir {
    dir: tempfile::TempDir,
}

impl WatDir {
    /// A new empty directory.
    pub fn new() -> WatDir {
        WatDir {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// The directory (for other files a test needs next to the modules).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` as `<name>.wat` and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.wat"));
        std::fs::write(&path, text).expect("writing a WAT module");
        path
    }
}

impl Default for WatDir {
    fn default() -> WatDir {
        WatDir::new()
    }
}
