//! What a loaded plugin keeps in memory: not its module bytes, nor the
//! compiler's buffers; and the engine's hook after each load.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn module(marker: u32) -> String {
    wat(
        "",
        &format!(r#"(func (export "marker") (result i32) i32.const {marker})"#),
    )
}

#[test]
fn a_loaded_plugin_keeps_no_module_bytes() {
    let spec = spec("bytes-dropped", module(1));
    assert!(!spec.wasm.is_empty());
    let plugin = load(spec.clone());
    assert!(
        plugin.spec().wasm.is_empty(),
        "the module bytes are dropped"
    );
    assert_eq!(plugin.sha256(), FilterEngine::sha256(&spec.wasm));
    assert_eq!(plugin.spec().configuration, spec.configuration);
}

#[test]
fn a_plugin_is_loaded_from_the_same_bytes_and_settings_only() {
    let spec = PluginSpec {
        configuration: Bytes::from_static(b"{\"a\": 1}"),
        ..super::spec("reuse", module(2))
    };
    let plugin = load(spec.clone());
    assert!(plugin.is_loaded_from(&spec));
    let other_configuration = PluginSpec {
        configuration: Bytes::from_static(b"{\"a\": 2}"),
        ..spec.clone()
    };
    assert!(!plugin.is_loaded_from(&other_configuration));
    let other_module = PluginSpec {
        wasm: Bytes::from(module(3)),
        ..spec.clone()
    };
    assert!(!plugin.is_loaded_from(&other_module));
    let other_name = PluginSpec {
        name: "reuse-2".into(),
        ..spec
    };
    assert!(!plugin.is_loaded_from(&other_name));
}

static LOADS: AtomicUsize = AtomicUsize::new(0);

fn count_load() {
    LOADS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn release_memory_runs_after_every_load_even_a_failed_one() {
    let engine = FilterEngine::new(EngineOptions {
        max_instances: 4,
        max_memory_bytes: 1 << 20,
        release_memory: Some(count_load),
        ..EngineOptions::default()
    })
    .expect("engine");
    engine
        .load(spec("first", module(4)))
        .expect("compiled and loaded");
    assert_eq!(LOADS.load(Ordering::SeqCst), 1);
    engine
        .load(spec("second", module(4)))
        .expect("cached and loaded");
    assert_eq!(LOADS.load(Ordering::SeqCst), 2);
    let broken = spec("broken", "(module (func (export \"x\") i32.add))".into());
    assert!(engine.load(broken).is_err());
    assert_eq!(LOADS.load(Ordering::SeqCst), 3);
}

#[test]
fn a_module_compiled_in_the_throwaway_engine_runs_in_the_process_engine() {
    let plugin = load(spec("compiled-apart", module(5)));
    assert_eq!(plugin.status().vms, 1, "its first VM started");
}

static CODE_RELEASES: AtomicUsize = AtomicUsize::new(0);

fn count_code_release() {
    CODE_RELEASES.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn compiler_code_is_released_only_after_a_load_that_compiled() {
    let engine = FilterEngine::new(EngineOptions {
        max_instances: 4,
        max_memory_bytes: 1 << 20,
        release_compiler_code: Some(count_code_release),
        ..EngineOptions::default()
    })
    .expect("engine");
    // Kept alive, so the compiled module stays in the engine's cache.
    let _compiled = engine
        .load(spec("compiled", module(5)))
        .expect("compiled and loaded");
    assert_eq!(CODE_RELEASES.load(Ordering::SeqCst), 1);
    let _cached = engine
        .load(spec("cached", module(5)))
        .expect("cached and loaded");
    assert_eq!(CODE_RELEASES.load(Ordering::SeqCst), 1, "nothing compiled");
    engine
        .load(spec("other", module(6)))
        .expect("compiled and loaded");
    assert_eq!(CODE_RELEASES.load(Ordering::SeqCst), 2);
}

/// A module that grows its memory by a page on each request and writes
/// to and reads back from the new page; a request with more than five
/// headers then stores past the end of its memory.
fn growing_module() -> String {
    wat(
        "",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (local $page i32)
    (local.set $page (memory.grow (i32.const 1)))
    (i32.store (i32.mul (local.get $page) (i32.const 65536)) (i32.const 42))
    (if (i32.ne (i32.load (i32.mul (local.get $page) (i32.const 65536))) (i32.const 42))
      (then unreachable))
    (if (i32.gt_u (local.get 1) (i32.const 5))
      (then (i32.store (i32.mul (memory.size) (i32.const 65536)) (i32.const 1))))
    i32.const 0)"#,
    )
}

#[tokio::test]
async fn vms_are_allocated_one_by_one_when_the_pool_cannot_be_reserved() {
    // A pool of this many VMs needs far more address space than a
    // process has: the engine falls back to allocating VMs one by one.
    let engine = FilterEngine::new(EngineOptions {
        max_instances: u32::MAX,
        max_memory_bytes: 16 << 20,
        ..EngineOptions::default()
    })
    .expect("an engine without the pool");
    assert!(!engine.pooled());
    assert!(super::engine().pooled(), "a pool that fits is reserved");
    let plugin = engine
        .load(PluginSpec {
            failure_policy: crate::FailurePolicy::FailClosed,
            ..spec("unpooled", growing_module())
        })
        .expect("loads");
    let chain = chain(vec![Arc::clone(&plugin)]);
    for _ in 0..3 {
        let stream = chain.start(crate::StreamInfo::default());
        stream
            .request_headers(request(), true)
            .await
            .expect("memory grows, and reads back what was written");
    }
    assert_eq!(plugin.status().traps, 0);
    // Past the end of memory traps, bounds-checked without guard pages.
    let mut headers = request();
    headers.extend((0..6).map(|i| (format!("x-out-{i}"), b"1".to_vec())));
    let stream = chain.start(crate::StreamInfo::default());
    let reply = stream
        .request_headers(headers, true)
        .await
        .expect_err("the trap fails the request closed");
    assert_eq!(reply.status, 503);
    assert_eq!(plugin.status().traps, 1);
}
