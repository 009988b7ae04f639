//! HTTP stream behaviour: headers, local replies, bodies, failures, limits,
//! module validation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::{
    FailurePolicy, FilterEngine, HostError, LocalReply, PluginLimits, PluginSpec, StreamInfo,
};

const ADD_HEADER: &str = r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#;

fn add_header_filter(name: &str, value: &str) -> PluginSpec {
    spec(
        name,
        wat(
            ADD_HEADER,
            &format!(
                r#"(data (i32.const 100) "x-filter")
  (data (i32.const 120) "{value}")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 0) (i32.const 100) (i32.const 8) (i32.const 120) (i32.const {len})))
    i32.const 0)"#,
                len = value.len()
            ),
        ),
    )
}

#[tokio::test]
async fn filters_add_request_headers_in_order() {
    let chain = chain(vec![
        load(add_header_filter("a", "one")),
        load(add_header_filter("b", "two")),
    ]);
    let stream = chain.start(StreamInfo::default());
    let headers = stream
        .request_headers(request(), true)
        .await
        .expect("continues");
    let added: Vec<&[u8]> = headers
        .iter()
        .filter(|(k, _)| k == "x-filter")
        .map(|(_, v)| v.as_slice())
        .collect();
    assert_eq!(added, vec![&b"one"[..], &b"two"[..]]);
}

#[tokio::test]
async fn local_reply_stops_the_chain() {
    let reply = spec(
        "deny",
        wat(
            r#"(import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#,
            r#"(data (i32.const 100) "denied")
  (data (i32.const 200) "\01\00\00\00\05\00\00\00\03\00\00\00x-why\00yes\00")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $reply (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 6) (i32.const 200) (i32.const 22) (i32.const -1)))
    i32.const 1)"#,
        ),
    );
    let chain = chain(vec![load(reply), load(add_header_filter("after", "x"))]);
    let stream = chain.start(StreamInfo::default());
    let reply: LocalReply = stream
        .request_headers(request(), true)
        .await
        .expect_err("replies");
    assert_eq!(reply.status, 403);
    assert_eq!(&reply.body[..], b"denied");
    assert_eq!(reply.headers, vec![("x-why".to_owned(), b"yes".to_vec())]);
    assert_eq!(reply.grpc_status, None);
}

#[test]
fn unknown_import_is_rejected_by_name() {
    let module = wat(
        r#"(import "env" "proxy_frobnicate" (func (param i32)))"#,
        "",
    );
    let err = engine().load(spec("bad", module)).expect_err("rejected");
    assert!(
        matches!(&err, HostError::UnknownImport { name, .. } if name == "proxy_frobnicate"),
        "{err}"
    );
    assert!(err.to_string().contains("env.proxy_frobnicate"), "{err}");
}

#[test]
fn missing_exports_are_named() {
    let err = engine()
        .load(spec(
            "bare",
            r#"(module (memory (export "memory") 1))"#.into(),
        ))
        .expect_err("rejected");
    assert!(err.to_string().contains("proxy_abi_version_0_2_1"), "{err}");
    let no_alloc = r#"(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_context_create") (param i32 i32)))"#;
    let err = engine()
        .load(spec("noalloc", no_alloc.into()))
        .expect_err("rejected");
    assert!(
        err.to_string().contains("proxy_on_memory_allocate"),
        "{err}"
    );
}

#[test]
fn bad_export_signature_is_reported() {
    let module = wat(
        "",
        r#"(func (export "proxy_on_request_headers") (param i32) (result i32) i32.const 0)"#,
    );
    let err = engine().load(spec("sig", module)).expect_err("rejected");
    assert!(
        matches!(&err, HostError::BadExport { name, .. } if name == "proxy_on_request_headers"),
        "{err}"
    );
}

/// A filter that reads its plugin configuration and accepts only "ok".
fn configured(config: &str) -> PluginSpec {
    let module = wat(
        r#"(import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32)
    ;; ask for "usize::MAX" bytes, as SDKs do
    (if (i32.ne (call $get (i32.const 7) (i32.const 0) (i32.const -1) (i32.const 16) (i32.const 20)) (i32.const 0))
      (then (return (i32.const 0))))
    (if (i32.ne (i32.load (i32.const 20)) (i32.const 2)) (then (return (i32.const 0))))
    (i32.eq (i32.load16_u (i32.load (i32.const 16))) (i32.const 0x6b6f)))"#,
    );
    PluginSpec {
        configuration: Bytes::from(config.to_owned()),
        ..spec("configured", module)
    }
}

#[test]
fn configuration_reaches_on_configure_and_a_refusal_fails_the_load() {
    assert!(engine().load(configured("ok")).is_ok());
    let err = engine().load(configured("no")).expect_err("refused");
    assert!(
        err.to_string()
            .contains("proxy_on_configure returned false"),
        "{err}"
    );
}

#[test]
fn unchanged_modules_are_not_recompiled() {
    let module = wat("", r#"(func (export "proxy_on_tick") (param i32))"#);
    // The module stays cached while a plugin uses it.
    let _first = engine().load(spec("cache-a", module.clone())).unwrap();
    let before = engine().compiled_modules();
    let plugin = engine().load(spec("cache-b", module.clone())).unwrap();
    assert_eq!(engine().compiled_modules(), before);
    assert_eq!(plugin.sha256(), FilterEngine::sha256(module.as_bytes()));
}

const TRAP: &str =
    r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable)"#;

#[tokio::test]
async fn a_trap_fails_closed_with_503_naming_the_plugin() {
    let plugin = load(PluginSpec {
        limits: PluginLimits {
            max_vms: 1,
            ..PluginLimits::default()
        },
        ..spec("trapper", wat("", TRAP))
    });
    let chain = chain(vec![Arc::clone(&plugin)]);
    let reply = chain
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await
        .expect_err("503");
    assert_eq!(reply.status, 503);
    assert!(String::from_utf8_lossy(&reply.body).contains("trapper"));
    let status = plugin.status();
    assert_eq!(status.traps, 1);
    assert_eq!(status.vms, 0, "the trapped VM is gone");
    // Within the back-off the plugin is unavailable; afterwards the VM is re-created.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let reply = chain
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await
        .expect_err("503");
    assert_eq!(reply.status, 503);
    assert_eq!(plugin.status().restarts, 1);
    assert_eq!(plugin.status().traps, 2);
}

#[tokio::test]
async fn a_trap_fails_open_by_skipping_the_filter() {
    let trapper = load(PluginSpec {
        failure_policy: FailurePolicy::FailOpen,
        ..spec("open-trapper", wat("", TRAP))
    });
    let chain = chain(vec![trapper, load(add_header_filter("next", "ran"))]);
    let headers = chain
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await
        .expect("skipped");
    assert!(headers.iter().any(|(k, v)| k == "x-filter" && v == b"ran"));
}

#[test]
fn the_epoch_ticker_starts_with_the_first_plugin() {
    let engine = crate::FilterEngine::new(crate::EngineOptions {
        max_instances: 2,
        max_memory_bytes: 1 << 20,
        ..crate::EngineOptions::default()
    })
    .expect("engine");
    assert!(!engine.ticking(), "no plugin, no ticker thread");
    engine.load(spec("first", wat("", ""))).expect("loads");
    assert!(engine.ticking());
}

#[tokio::test]
async fn an_infinite_loop_is_cut_off_at_the_deadline() {
    let looping = load(PluginSpec {
        limits: PluginLimits {
            cpu_deadline: Duration::from_millis(50),
            ..PluginLimits::default()
        },
        ..spec(
            "looper",
            wat(
                "",
                r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (loop (br 0)) i32.const 0)"#,
            ),
        )
    });
    let chain = chain(vec![Arc::clone(&looping)]);
    let started = Instant::now();
    let reply = chain
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await
        .expect_err("cut off");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(reply.status, 503);
    assert_eq!(looping.status().timeouts, 1);
}

#[test]
fn a_callback_that_waits_off_the_cpu_past_its_deadline_is_not_cut_off() {
    // Reads shared data (waiting while the test holds its lock), then loops
    // a little: the loop's back edges check the deadline once the wait ends.
    let waiter = load(PluginSpec {
        limits: PluginLimits {
            cpu_deadline: Duration::from_millis(20),
            ..PluginLimits::default()
        },
        ..spec(
            "waiter",
            wat(
                r#"(import "env" "proxy_get_shared_data" (func $get (param i32 i32 i32 i32 i32) (result i32)))"#,
                r#"(data (i32.const 100) "key")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (local $i i32)
    (drop (call $get (i32.const 100) (i32.const 3) (i32.const 200) (i32.const 204) (i32.const 208)))
    (loop $again
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 1000))))
    i32.const 0)"#,
            ),
        )
    });
    let held = waiter.core.services.shared_data.hold();
    let plugin = Arc::clone(&waiter);
    let request_headers = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            chain(vec![plugin])
                .start(StreamInfo::default())
                .request_headers(request(), true)
                .await
                .map(|_| ())
                .map_err(|reply| reply.status)
        })
    });
    std::thread::sleep(Duration::from_millis(150));
    drop(held);
    assert_eq!(request_headers.join().unwrap(), Ok(()));
    assert_eq!(waiter.status().timeouts, 0);
}

#[tokio::test]
async fn memory_growth_past_the_cap_traps() {
    let hog = load(PluginSpec {
        limits: PluginLimits {
            memory_bytes: 5 * 65536,
            ..PluginLimits::default()
        },
        ..spec(
            "hog",
            wat(
                "",
                r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (memory.grow (i32.const 1)))
    (drop (memory.grow (i32.const 1)))
    i32.const 0)"#,
            ),
        )
    });
    let reply = chain(vec![Arc::clone(&hog)])
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await;
    assert_eq!(reply.expect_err("stopped").status, 503);
    assert_eq!(hog.status().traps, 1);
}

#[tokio::test]
async fn out_of_bounds_pointers_get_a_status_not_a_panic() {
    // Stores the status of an out-of-bounds header read at address 0 and
    // replies with it as the HTTP status (6 = InvalidMemoryAccess → 206 + 200).
    let module = wat(
        &format!(
            "{ADD_HEADER}\n{}",
            r#"(import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#
        ),
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $reply
      (i32.add (i32.const 200) (call $add (i32.const 0) (i32.const 0x7ffffff0) (i32.const 64) (i32.const 0) (i32.const 1)))
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))
    i32.const 1)"#,
    );
    let plugin = load(spec("oob", module));
    let reply = chain(vec![plugin])
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await;
    assert_eq!(reply.expect_err("replies").status, 206);
}

#[tokio::test]
async fn paused_bodies_are_buffered_and_seen_whole() {
    // Pauses until end of stream, then replaces the body with its own size
    // as one byte, proving it was called with the cumulative size.
    let module = wat(
        r#"(import "env" "proxy_set_buffer_bytes" (func $set (param i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 1))))
    (i32.store8 (i32.const 300) (i32.add (i32.const 48) (local.get $size)))
    (drop (call $set (i32.const 0) (i32.const 0) (local.get $size) (i32.const 300) (i32.const 1)))
    i32.const 0)"#,
    );
    let chain = chain(vec![load(spec("buffer", module))]);
    let stream = chain.start(StreamInfo::default());
    stream.request_headers(request(), false).await.unwrap();
    assert!(
        stream
            .request_body(Bytes::from_static(b"abc"), false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        stream
            .request_body(Bytes::from_static(b"de"), false)
            .await
            .unwrap()
            .is_empty()
    );
    let out = stream
        .request_body(Bytes::from_static(b"f"), true)
        .await
        .unwrap();
    assert_eq!(&out[..], b"6");
}

#[tokio::test]
async fn shared_data_cas_conflicts_return_cas_mismatch() {
    // set(k, v, cas=0) → Ok; set(k, v, cas=99) → CasMismatch (8); reply with 200 + status.
    let module = wat(
        r#"(import "env" "proxy_set_shared_data" (func $set (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 100) "key")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $set (i32.const 100) (i32.const 3) (i32.const 100) (i32.const 3) (i32.const 0)))
    (drop (call $reply
      (i32.add (i32.const 200) (call $set (i32.const 100) (i32.const 3) (i32.const 100) (i32.const 3) (i32.const 99)))
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))
    i32.const 1)"#,
    );
    let reply = chain(vec![load(spec("cas", module))])
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await;
    assert_eq!(reply.expect_err("replies").status, 208);
}

#[tokio::test]
async fn response_phase_runs_in_reverse_and_lifecycle_callbacks_run() {
    // Each filter appends its name to response header x-order; on_done logs by
    // setting shared data "done-<name>".
    let filter = |name: &str| {
        let module = wat(
            r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set (param i32 i32 i32 i32 i32) (result i32)))"#,
            &format!(
                r#"(data (i32.const 100) "x-order")
  (data (i32.const 120) "{name}")
  (data (i32.const 140) "done-{name}")
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 100) (i32.const 7) (i32.const 120) (i32.const 1)))
    i32.const 0)
  (func (export "proxy_on_done") (param i32) (result i32)
    (drop (call $set (i32.const 140) (i32.const 6) (i32.const 120) (i32.const 1) (i32.const 0)))
    i32.const 1)"#
            ),
        );
        PluginSpec {
            vm_id: "lifecycle".into(),
            ..spec(name, module)
        }
    };
    let chain = chain(vec![load(filter("a")), load(filter("b"))]);
    let stream = chain.start(StreamInfo::default());
    let headers = stream
        .response_headers(vec![(":status".into(), b"200".to_vec())], true)
        .await
        .unwrap();
    let order: Vec<&[u8]> = headers
        .iter()
        .filter(|(k, _)| k == "x-order")
        .map(|(_, v)| v.as_slice())
        .collect();
    assert_eq!(order, vec![&b"b"[..], &b"a"[..]]);
    let shared = &chain.plugins()[0].core.services.shared_data;
    assert!(shared.get("lifecycle", "done-a").is_none());
    drop(stream);
    assert_eq!(
        shared.get("lifecycle", "done-a").map(|(v, _)| v),
        Some(b"a".to_vec())
    );
    assert_eq!(
        shared.get("lifecycle", "done-b").map(|(v, _)| v),
        Some(b"b".to_vec())
    );
}

#[tokio::test]
async fn trailers_pass_the_chain_and_can_be_changed() {
    let module = wat(
        ADD_HEADER,
        r#"(data (i32.const 100) "x-t")
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32)
    (drop (call $add (i32.const 1) (i32.const 100) (i32.const 3) (i32.const 100) (i32.const 1)))
    i32.const 0)"#,
    );
    let chain = chain(vec![load(spec("trailers", module))]);
    let stream = chain.start(StreamInfo::default());
    stream.request_headers(request(), false).await.unwrap();
    let data = stream
        .request_body(Bytes::from_static(b"ab"), false)
        .await
        .unwrap();
    assert_eq!(&data[..], b"ab");
    let (rest, trailers) = stream
        .request_trailers(vec![("grpc-status".into(), b"0".to_vec())])
        .await
        .unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        trailers,
        vec![
            ("grpc-status".to_owned(), b"0".to_vec()),
            ("x-t".to_owned(), b"x".to_vec())
        ]
    );
}

#[tokio::test]
async fn close_stream_ends_the_request_with_503() {
    let module = wat(
        r#"(import "env" "proxy_close_stream" (func $close (param i32) (result i32)))"#,
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $close (i32.const 0)))
    i32.const 1)"#,
    );
    let chain = chain(vec![load(spec("closer", module))]);
    let reply = chain
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await
        .expect_err("closed");
    assert_eq!(reply.status, 503);
    assert!(String::from_utf8_lossy(&reply.body).contains("closer"));
}

#[tokio::test]
async fn a_crash_looping_plugin_is_marked_unhealthy_and_backs_off() {
    let plugin = load(spec("crasher", wat("", TRAP)));
    let chain = chain(vec![Arc::clone(&plugin)]);
    // Real time, not the sum of the sleeps: on a loaded machine a sleep
    // lasts longer than asked, and the back-off runs on the clock.
    let started = Instant::now();
    let mut waited = Duration::ZERO;
    while plugin.status().traps < 5 {
        let _ = chain
            .start(StreamInfo::default())
            .request_headers(request(), true)
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited = started.elapsed();
        assert!(waited < Duration::from_secs(20), "{:?}", plugin.status());
    }
    let status = plugin.status();
    assert!(!status.healthy, "{status:?}");
    assert_eq!(status.restarts, 4);
    // Back-off grows: 100 + 200 + 400 + 800 ms before the fifth failure.
    assert!(waited >= Duration::from_millis(1400), "{waited:?}");
    // While backing off, requests get the failure policy without a restart.
    let reply = chain
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await;
    assert_eq!(reply.expect_err("unavailable").status, 503);
    assert_eq!(plugin.status().restarts, 4);
}

#[tokio::test]
async fn a_local_reply_passes_the_response_phase_of_the_filters_that_saw_the_request() {
    // Each filter adds `x-resp: <name>` to response headers; `b` replies.
    let filter = |name: &str, reply: bool| {
        let on_request = if reply {
            r#"(drop (call $reply (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 140) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const -1)))
    i32.const 1"#
        } else {
            "i32.const 0"
        };
        let module = wat(
            &format!(
                r#"{ADD_HEADER}
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#
            ),
            &format!(
                r#"(data (i32.const 100) "x-resp")
  (data (i32.const 120) "{name}")
  (data (i32.const 140) "denied")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    {on_request})
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 100) (i32.const 6) (i32.const 120) (i32.const 1)))
    i32.const 0)"#
            ),
        );
        load(spec(name, module))
    };
    let chain = chain(vec![
        filter("a", false),
        filter("b", true),
        filter("c", false),
    ]);
    let stream = chain.start(StreamInfo::default());
    let reply = stream
        .request_headers(request(), true)
        .await
        .expect_err("replies");
    let reply = stream.respond_locally(reply).await;
    assert_eq!(reply.status, 403);
    assert_eq!(&reply.body[..], b"denied");
    let seen: Vec<&[u8]> = reply
        .headers
        .iter()
        .filter(|(k, _)| k == "x-resp")
        .map(|(_, v)| v.as_slice())
        .collect();
    assert_eq!(seen, vec![&b"b"[..], &b"a"[..]], "{:?}", reply.headers);
}
