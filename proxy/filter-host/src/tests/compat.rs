//! Compatibility with what Envoy filters expect of their host: metrics
//! shared by name across plugins, and the Emscripten imports of C++ filters.

use wasp_abi::MetricType;

use super::*;
use crate::StreamInfo;

const ADD: &str = r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#;

/// Defines the counter `name` and adds 1 on every request's headers.
fn counting_filter(name: &str) -> String {
    wat(
        r#"(import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))"#,
        &format!(
            r#"(data (i32.const 100) "{name}")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (call $define (i32.const 0) (i32.const 100) (i32.const {len}) (i32.const 32)) (then unreachable))
    (if (call $inc (i32.load (i32.const 32)) (i64.const 1)) (then unreachable))
    i32.const 0)"#,
            len = name.len()
        ),
    )
}

#[tokio::test]
async fn plugins_defining_the_same_name_update_one_metric() {
    // As in Envoy, where every plugin's define of a name finds the same stat.
    let name = "compat.shared_requests_total";
    let first = load(spec("count-first", counting_filter(name)));
    let second = load(spec("count-second", counting_filter(name)));
    let chain = chain(vec![first, second]);
    for _ in 0..3 {
        chain
            .start(StreamInfo::default())
            .request_headers(request(), true)
            .await
            .expect("continues");
    }
    let metrics = &engine().inner_services().metrics;
    let id = metrics.define(MetricType::Counter, name).unwrap();
    assert_eq!(metrics.get(id), Ok(6));
    // The sanitized spelling is the same metric.
    let sanitized = metrics
        .define(MetricType::Counter, "compat_shared_requests_total")
        .unwrap();
    assert_eq!(sanitized, id);
}

#[tokio::test]
async fn modules_importing_emscriptens_names_load_and_run() {
    // What em++ links into a proxy-wasm C++ filter besides the ABI: the
    // memory growth notification (ALLOW_MEMORY_GROWTH) and pthread_equal.
    let module = wat(
        &format!(
            r#"(import "env" "emscripten_notify_memory_growth" (func $grown (param i32)))
  (import "env" "pthread_equal" (func $equal (param i32 i32) (result i32)))
  {ADD}"#
        ),
        r#"(data (i32.const 100) "x-emscripten")
  (data (i32.const 120) "grown")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
    (call $grown (i32.const 0))
    (if (i32.eqz (call $equal (i32.const 7) (i32.const 7))) (then unreachable))
    (if (call $equal (i32.const 7) (i32.const 8)) (then unreachable))
    ;; the grown page is usable, and the host reads from it
    (i32.store (i32.const 262144) (i32.load (i32.const 120)))
    (i32.store8 (i32.const 262148) (i32.load8_u (i32.const 124)))
    (drop (call $add (i32.const 0) (i32.const 100) (i32.const 12) (i32.const 262144) (i32.const 5)))
    i32.const 0)"#,
    );
    let headers = chain(vec![load(spec("emscripten", module))])
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await
        .expect("continues");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "x-emscripten" && v == b"grown"),
        "{headers:?}"
    );
}
