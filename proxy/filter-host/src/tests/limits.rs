//! Host limits: what a filter may make the host allocate (headers, bodies,
//! properties, shared data, queues) is refused past the plugin's limits with
//! `BadArgument` and counted; misuse is counted; bad modules and rejected
//! configurations are reported clearly; the module cache drops what no
//! plugin uses.

use bytes::Bytes;

use super::{chain, engine, load, request, spec, wat};
use crate::{EngineOptions, FilterEngine, HostError, PluginLimits, PluginSpec, StreamInfo};

const IMPORTS: &str = r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $setp (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $setd (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_register_shared_queue" (func $reg (param i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $enq (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $deq (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $setb (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_size" (func $size (param i32 i32) (result i32)))"#;

/// A filter whose request-headers callback runs `body`, which leaves result
/// bytes at 200.. (`len` of them); they are stored as the property `result`.
fn recorder(body: &str, len: u32) -> String {
    wat(
        IMPORTS,
        &format!(
            r#"(data (i32.const 100) "x-flood")
  (data (i32.const 120) "result")
  (data (i32.const 130) "abcdefgh")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (local $n i32) (local $s i32)
    {body}
    (drop (call $setp (i32.const 120) (i32.const 6) (i32.const 200) (i32.const {len})))
    i32.const 0)"#
        ),
    )
}

/// Adds `x-flood` headers of `value_len` bytes until a call fails (at most
/// 200); records the number added and the failing status.
fn header_flood(value_len: u32) -> String {
    recorder(
        &format!(
            r#"(block $done
      (loop $again
        (local.set $s (call $add (i32.const 0) (i32.const 100) (i32.const 7) (i32.const 1024) (i32.const {value_len})))
        (br_if $done (i32.ne (local.get $s) (i32.const 0)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br_if $again (i32.lt_u (local.get $n) (i32.const 200)))))
    (i32.store8 (i32.const 200) (local.get $n))
    (i32.store8 (i32.const 201) (local.get $s))"#
        ),
        2,
    )
}

fn with_limits(name: &str, module: String, limits: PluginLimits) -> PluginSpec {
    PluginSpec {
        limits,
        vm_id: name.to_owned(),
        ..spec(name, module)
    }
}

/// Runs request headers through a one-plugin chain; returns the `result`
/// property and the headers that went on.
async fn run(plugin_spec: PluginSpec) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let stream = chain(vec![load(plugin_spec)]).start(StreamInfo::default());
    let headers = stream.request_headers(request(), true).await.unwrap();
    (stream.filter_state("result").unwrap_or_default(), headers)
}

fn exceeded(plugin: &str, limit: &str) -> u64 {
    let metrics = &engine().inner_services().metrics;
    metrics
        .limit_exceeded
        .with_label_values(&[plugin, limit])
        .get()
}

#[tokio::test]
async fn header_additions_stop_at_max_header_bytes_with_bad_argument() {
    let limits = PluginLimits {
        max_header_bytes: 4096,
        ..PluginLimits::default()
    };
    let (result, headers) = run(with_limits("hdr-bytes", header_flood(1000), limits)).await;
    // 38 bytes of pseudo headers + 4 x 1007 fit in 4096; the fifth is refused.
    assert_eq!(result, [4, 2]);
    assert_eq!(headers.iter().filter(|(k, _)| k == "x-flood").count(), 4);
    assert_eq!(exceeded("hdr-bytes", "max_header_bytes"), 1);
}

#[tokio::test]
async fn a_64k_header_is_refused_under_the_default_limits() {
    let (result, headers) = run(with_limits(
        "hdr-default",
        header_flood(64 << 10),
        PluginLimits::default(),
    ))
    .await;
    assert_eq!(result, [0, 2]);
    assert_eq!(headers.len(), request().len());
}

#[tokio::test]
async fn header_additions_stop_at_max_header_count() {
    let limits = PluginLimits {
        max_header_count: 10,
        ..PluginLimits::default()
    };
    let (result, _) = run(with_limits("hdr-count", header_flood(1), limits)).await;
    assert_eq!(result, [7, 2], "3 request headers + 7 added = 10");
    assert_eq!(exceeded("hdr-count", "max_header_count"), 1);
}

#[tokio::test]
async fn shared_data_is_bounded_by_keys_and_bytes_per_vm_id() {
    // Sets keys a, b, c, d (one byte each), then grows a to 100 bytes, then
    // shrinks it back to 1 byte.
    let set = |at: u32, key: u32, len: u32| {
        format!(
            "(i32.store8 (i32.const {at}) (call $setd (i32.const {key}) (i32.const 1) (i32.const 1024) (i32.const {len}) (i32.const 0)))"
        )
    };
    let body = [
        set(200, 130, 1),
        set(201, 131, 1),
        set(202, 132, 1),
        set(203, 133, 1),
        set(204, 130, 100),
        set(205, 130, 1),
    ]
    .join("\n    ");
    let limits = PluginLimits {
        max_shared_data_keys: 3,
        max_shared_data_bytes: 64,
        ..PluginLimits::default()
    };
    let (result, _) = run(with_limits("shared", recorder(&body, 6), limits)).await;
    assert_eq!(result, [0, 0, 0, 2, 2, 0]);
    assert_eq!(exceeded("shared", "max_shared_data_keys"), 1);
    assert_eq!(exceeded("shared", "max_shared_data_bytes"), 1);
}

#[tokio::test]
async fn a_full_shared_queue_refuses_items_instead_of_dropping_old_ones() {
    let enqueue = |at: u32| {
        format!(
            "(i32.store8 (i32.const {at}) (call $enq (i32.load (i32.const 300)) (i32.const 130) (i32.const 4)))"
        )
    };
    let body = format!(
        "(drop (call $reg (i32.const 100) (i32.const 7) (i32.const 300)))
    {} {} {}
    (drop (call $deq (i32.load (i32.const 300)) (i32.const 304) (i32.const 308)))
    {}",
        enqueue(200),
        enqueue(201),
        enqueue(202),
        enqueue(203)
    );
    let limits = PluginLimits {
        max_queue_depth: 2,
        ..PluginLimits::default()
    };
    let (result, _) = run(with_limits("queue", recorder(&body, 4), limits)).await;
    assert_eq!(result, [0, 0, 2, 0]);
    assert_eq!(exceeded("queue", "max_queue_depth"), 1);
}

#[tokio::test]
async fn properties_set_on_a_request_are_bounded() {
    let body = "(i32.store8 (i32.const 200) (call $setp (i32.const 130) (i32.const 1) (i32.const 1024) (i32.const 100)))
    (i32.store8 (i32.const 201) (call $setp (i32.const 130) (i32.const 1) (i32.const 1024) (i32.const 10)))";
    let limits = PluginLimits {
        max_property_bytes: 50,
        ..PluginLimits::default()
    };
    let (result, _) = run(with_limits("props", recorder(body, 2), limits)).await;
    assert_eq!(result, [2, 0]);
    assert_eq!(exceeded("props", "max_property_bytes"), 1);
}

/// Pauses in every request body callback (buffering), and tries to grow the
/// body buffer by 100 bytes first, recording the status as property `grow`.
const BUFFERER: &str = r#"(data (i32.const 140) "grow")
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 200) (call $setb (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1024) (i32.const 100)))
    (drop (call $setp (i32.const 140) (i32.const 4) (i32.const 200) (i32.const 1)))
    i32.const 1)"#;

#[tokio::test]
async fn a_filter_buffering_past_max_buffered_body_bytes_gets_413() {
    let limits = PluginLimits {
        max_buffered_body_bytes: 64,
        ..PluginLimits::default()
    };
    let plugin = load(with_limits("buffer", wat(IMPORTS, BUFFERER), limits));
    let stream = chain(vec![plugin]).start(StreamInfo::default());
    stream.request_headers(request(), false).await.unwrap();
    assert_eq!(stream.filter_state("grow"), None);
    let held = stream
        .request_body(Bytes::from(vec![b'a'; 40]), false)
        .await
        .unwrap();
    assert!(held.is_empty(), "the filter buffers");
    assert_eq!(stream.filter_state("grow"), Some(vec![2]), "40 + 100 > 64");
    let reply = stream
        .request_body(Bytes::from(vec![b'b'; 40]), false)
        .await
        .unwrap_err();
    assert_eq!(reply.status, 413);
    assert_eq!(reply.details, "request_payload_too_large");
    assert!(exceeded("buffer", "max_buffered_body_bytes") >= 2);
}

#[tokio::test]
async fn every_abi_misuse_is_counted() {
    let body = r#"(block $done
      (loop $again
        (drop (call $size (i32.const 99) (i32.const 16)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br_if $again (i32.lt_u (local.get $n) (i32.const 50)))))"#;
    run(with_limits(
        "misuser",
        recorder(body, 0),
        PluginLimits::default(),
    ))
    .await;
    let metrics = &engine().inner_services().metrics;
    let counted = metrics
        .abi_misuse
        .with_label_values(&["misuser", "proxy_get_header_map_size"])
        .get();
    assert_eq!(counted, 50);
}

#[test]
fn garbage_bytes_are_reported_as_neither_wasm_nor_wat() {
    let err = engine()
        .compile(b"\x89PNG\r\n\x1a\n\xff\xfe\xfd")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, HostError::NotAModule { len: 11, .. }),
        "{text}"
    );
    assert!(
        text.contains("not a Wasm module") && text.contains("89504e47"),
        "{text}"
    );
    assert!(text.contains("not WAT text"), "{text}");
    assert!(!text.contains("utf-8"), "{text}");
    let wat_err = engine().compile(b"(module (func oops))").unwrap_err();
    assert!(matches!(wat_err, HostError::Compile(_)), "{wat_err}");
}

#[test]
fn a_rejected_configuration_names_it_and_carries_the_filters_log() {
    let module = wat(
        r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 100) "missing field `header` at line 1")
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $log (i32.const 4) (i32.const 100) (i32.const 32)))
    i32.const 0)"#,
    );
    let err = engine().load(spec("picky", module)).unwrap_err();
    assert_eq!(err.configuration_field(), Some("configuration"));
    assert_eq!(
        err.to_string(),
        "plugin `picky` rejected its configuration (proxy_on_configure returned false); \
         its log: missing field `header` at line 1"
    );
}

#[test]
fn the_module_cache_drops_modules_no_plugin_uses_and_is_bounded_by_bytes() {
    let engine = FilterEngine::new(EngineOptions {
        max_instances: 8,
        max_memory_bytes: 1 << 20,
        module_cache_bytes: 1,
        ..EngineOptions::default()
    })
    .unwrap();
    let module = wat("", "");
    let sha = FilterEngine::sha256(module.as_bytes());
    let plugin = engine.load(spec("cached", module.clone())).unwrap();
    let status = engine.module_cache();
    assert_eq!(status.modules.len(), 1, "{status:?}");
    assert_eq!(status.modules[0].sha256, sha);
    assert_eq!(status.modules[0].plugins, 1);
    assert!(
        status.bytes > module.len() as u64,
        "weighs its compiled image"
    );
    // In use, it is found although the one-byte bound evicted it.
    let again = engine.load(spec("cached2", module.clone())).unwrap();
    assert_eq!(engine.compiled_modules(), 1);
    drop((plugin, again));
    let status = engine.module_cache();
    assert!(status.modules.is_empty(), "{status:?}");
    assert_eq!(status.bytes, 0);
    // Unused and over the bound: compiled again.
    engine.compile(module.as_bytes()).unwrap();
    engine.compile(module.as_bytes()).unwrap();
    assert_eq!(engine.compiled_modules(), 3);
}
