//! Host services: callouts with pause and resume, gRPC, ticks, queues,
//! properties and filter state, metrics, WASI, ABI misuse statuses.

use std::time::Duration;

use wasp_abi::{MetricType, encode_map, encode_property_path};

use super::*;
use crate::{PluginSpec, StreamInfo};

const ADD: &str = r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#;
const GET_BUFFER: &str = r#"(import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))"#;
const CONTINUE: &str = r#"(import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))"#;

fn header_value<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

#[tokio::test]
async fn an_http_callout_response_reaches_the_root_context_which_resumes_the_stream() {
    let map = encode_map(&[(":method", "GET"), (":path", "/side"), (":authority", "up")]);
    let module = wat(
        &format!(
            r#"(import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  {ADD} {GET_BUFFER} {CONTINUE}"#
        ),
        &format!(
            r#"(data (i32.const 100) "up")
  (data (i32.const 110) "nope")
  (data (i32.const 120) "x-callout")
  (data (i32.const 200) "{map}")
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (i32.store (i32.const 48) (local.get $ctx))
    ;; an unknown cluster is a BadArgument (2), stored at 40
    (i32.store (i32.const 40) (call $call (i32.const 110) (i32.const 4) (i32.const 200) (i32.const {len})
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 32)))
    (drop (call $call (i32.const 100) (i32.const 2) (i32.const 200) (i32.const {len})
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 32)))
    i32.const 1)
  (func (export "proxy_on_http_call_response") (param $ctx i32) (param $token i32) (param $h i32) (param $size i32) (param $t i32)
    (if (i32.ne (local.get $token) (i32.load (i32.const 32))) (then unreachable))
    (if (i32.ne (i32.load (i32.const 40)) (i32.const 2)) (then unreachable))
    ;; delivered to the root context (1), where there is no stream to continue
    (if (i32.ne (local.get $ctx) (i32.const 1)) (then unreachable))
    (if (i32.ne (call $continue (i32.const 0)) (i32.const 1)) (then unreachable))
    ;; an unknown context is a BadArgument; the stream's own context is Ok
    (if (i32.ne (call $effective (i32.const 999)) (i32.const 2)) (then unreachable))
    (if (i32.ne (call $effective (i32.load (i32.const 48))) (i32.const 0)) (then unreachable))
    (drop (call $get (i32.const 4) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (drop (call $add (i32.const 0) (i32.const 120) (i32.const 9) (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (drop (call $continue (i32.const 0))))"#,
            map = wat_bytes(&map),
            len = map.len()
        ),
    );
    let chain = chain(vec![load(spec("callout", module))]);
    let stream = chain.start(StreamInfo::default());
    let headers = tokio::time::timeout(
        Duration::from_secs(5),
        stream.request_headers(request(), true),
    )
    .await
    .expect("resumed")
    .expect("continues");
    assert_eq!(header_value(&headers, "x-callout"), Some(&b"pong"[..]));
    let sent = callouts().requests.lock().unwrap();
    assert!(
        sent.iter()
            .any(|r| r.cluster == "up" && header_value(&r.headers, ":path") == Some(b"/side"))
    );
    assert!(!sent.iter().any(|r| r.cluster == "nope"));
}

#[tokio::test]
async fn a_grpc_call_delivers_its_message_to_the_root_context() {
    let module = wat(
        &format!(
            r#"(import "env" "proxy_grpc_call" (func $grpc (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  {ADD} {GET_BUFFER} {CONTINUE}"#
        ),
        r#"(data (i32.const 100) "grpc")
  (data (i32.const 110) "pkg.Svc")
  (data (i32.const 120) "Do")
  (data (i32.const 130) "req")
  (data (i32.const 140) "x-grpc")
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (i32.store (i32.const 48) (local.get $ctx))
    (drop (call $grpc (i32.const 100) (i32.const 4) (i32.const 110) (i32.const 7) (i32.const 120) (i32.const 2)
      (i32.const 0) (i32.const 0) (i32.const 130) (i32.const 3) (i32.const 1000) (i32.const 32)))
    i32.const 1)
  (func (export "proxy_on_grpc_receive") (param $ctx i32) (param $token i32) (param $size i32)
    (if (i32.ne (local.get $ctx) (i32.const 1)) (then unreachable))
    (drop (call $effective (i32.load (i32.const 48))))
    (drop (call $get (i32.const 5) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (drop (call $add (i32.const 0) (i32.const 140) (i32.const 6) (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (drop (call $continue (i32.const 0))))
  (func (export "proxy_on_grpc_close") (param i32 i32 i32) unreachable)"#,
    );
    let chain = chain(vec![load(spec("grpc", module))]);
    let stream = chain.start(StreamInfo::default());
    let headers = tokio::time::timeout(
        Duration::from_secs(5),
        stream.request_headers(request(), true),
    )
    .await
    .expect("resumed")
    .expect("continues");
    assert_eq!(header_value(&headers, "x-grpc"), Some(&b"hi"[..]));
    let sent = callouts().requests.lock().unwrap();
    let call = sent.iter().find(|r| r.cluster == "grpc").expect("sent");
    assert!(call.http2);
    assert_eq!(
        header_value(&call.headers, ":path"),
        Some(&b"/pkg.Svc/Do"[..])
    );
    assert_eq!(&call.body[..], b"\0\0\0\0\x03req");
}

#[tokio::test]
async fn grpc_streams_are_full_duplex_and_deliver_to_the_root_context() {
    // Sends "a"; on its echo sends "b" and ends the stream; on close with
    // status 0 resumes the request. Each received message becomes x-msg.
    let module = wat(
        &format!(
            r#"(import "env" "proxy_grpc_stream" (func $open (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_send" (func $send (param i32 i32 i32 i32) (result i32)))
  {ADD} {GET_BUFFER} {CONTINUE}"#
        ),
        r#"(data (i32.const 100) "chat")
  (data (i32.const 110) "pkg.Chat")
  (data (i32.const 120) "Talk")
  (data (i32.const 130) "ab")
  (data (i32.const 140) "x-msg")
  (data (i32.const 150) "x-done")
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (i32.store (i32.const 48) (local.get $ctx))
    (if (i32.ne (call $open (i32.const 100) (i32.const 4) (i32.const 110) (i32.const 8) (i32.const 120) (i32.const 4)
      (i32.const 0) (i32.const 0) (i32.const 32)) (i32.const 0)) (then unreachable))
    (drop (call $send (i32.load (i32.const 32)) (i32.const 130) (i32.const 1) (i32.const 0)))
    i32.const 1)
  (func (export "proxy_on_grpc_receive") (param $ctx i32) (param $token i32) (param $size i32)
    (if (i32.ne (local.get $ctx) (i32.const 1)) (then unreachable))
    (drop (call $effective (i32.load (i32.const 48))))
    (drop (call $get (i32.const 5) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (drop (call $add (i32.const 0) (i32.const 140) (i32.const 5) (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (if (i32.eq (i32.load8_u (i32.load (i32.const 16))) (i32.const 97))
      (then (drop (call $send (local.get $token) (i32.const 131) (i32.const 1) (i32.const 1))))))
  (func (export "proxy_on_grpc_close") (param $ctx i32) (param $token i32) (param $status i32)
    (if (i32.ne (local.get $ctx) (i32.const 1)) (then unreachable))
    (drop (call $effective (i32.load (i32.const 48))))
    (if (i32.eqz (local.get $status))
      (then
        (drop (call $add (i32.const 0) (i32.const 150) (i32.const 6) (i32.const 130) (i32.const 2)))
        (drop (call $continue (i32.const 0))))))"#,
    );
    let chain = chain(vec![load(spec("chat", module))]);
    let stream = chain.start(StreamInfo::default());
    let headers = tokio::time::timeout(
        Duration::from_secs(5),
        stream.request_headers(request(), true),
    )
    .await
    .expect("resumed")
    .expect("continues");
    let messages: Vec<&[u8]> = headers
        .iter()
        .filter(|(k, _)| k == "x-msg")
        .map(|(_, v)| v.as_slice())
        .collect();
    assert_eq!(messages, vec![&b"a"[..], &b"b"[..]]);
    assert_eq!(header_value(&headers, "x-done"), Some(&b"ab"[..]));
    let sent = callouts().requests.lock().unwrap();
    let open = sent.iter().find(|r| r.cluster == "chat").expect("opened");
    assert_eq!(
        header_value(&open.headers, ":path"),
        Some(&b"/pkg.Chat/Talk"[..])
    );
}

/// A callout belongs to the root context (as in Envoy): an HTTP context that
/// makes one and finishes at once does not cancel it, and the root context
/// receives the response.
#[tokio::test]
async fn a_callout_outlives_the_http_context_that_made_it() {
    let map = encode_map(&[(":method", "GET"), (":path", "/late"), (":authority", "up")]);
    let module = wat(
        &format!(
            r#"(import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $get_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))
  {ADD} {GET_BUFFER}"#
        ),
        &format!(
            r#"(data (i32.const 100) "up")
  (data (i32.const 120) "late")
  (data (i32.const 140) "x-late")
  (data (i32.const 200) "{map}")
  ;; Shows the response a finished context's callout left, else calls out.
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (call $get_shared (i32.const 120) (i32.const 4) (i32.const 16) (i32.const 20) (i32.const 24)))
      (then (drop (call $add (i32.const 0) (i32.const 140) (i32.const 6) (i32.load (i32.const 16)) (i32.load (i32.const 20)))))
      (else (drop (call $call (i32.const 100) (i32.const 2) (i32.const 200) (i32.const {len})
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 32)))))
    i32.const 0)
  (func (export "proxy_on_http_call_response") (param $ctx i32) (param i32 i32) (param $size i32) (param i32)
    (if (i32.ne (local.get $ctx) (i32.const 1)) (then unreachable))
    (drop (call $get (i32.const 4) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (drop (call $set_shared (i32.const 120) (i32.const 4) (i32.load (i32.const 16)) (i32.load (i32.const 20)) (i32.const 0))))"#,
            map = wat_bytes(&map),
            len = map.len()
        ),
    );
    let mut spec = spec("late", module);
    spec.vm_id = "late-callout".into();
    let chain = chain(vec![load(spec)]);
    {
        let stream = chain.start(StreamInfo::default());
        stream
            .request_headers(request(), true)
            .await
            .expect("continues");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stream = chain.start(StreamInfo::default());
        let headers = stream
            .request_headers(request(), true)
            .await
            .expect("continues");
        if header_value(&headers, "x-late") == Some(&b"pong"[..]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the root context never got the response"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The statuses `calls` leave at 300.. (one digit each), as the body of the
/// local reply a filter sends after making them on the request headers.
async fn statuses_of(name: &str, imports: &str, data: &str, calls: &str, count: usize) -> Vec<u8> {
    let module = wat(
        &format!(
            r#"{imports}
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#
        ),
        &format!(
            r#"{data}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    {calls}
    (drop (call $reply (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 300) (i32.const {count}) (i32.const 0) (i32.const 0) (i32.const -1)))
    i32.const 1)"#
        ),
    );
    let reply = chain(vec![load(spec(name, module))])
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await
        .unwrap_err();
    reply.body.to_vec()
}

#[tokio::test]
async fn an_http_callout_to_an_unknown_cluster_is_a_bad_argument() {
    // Envoy's httpCall answers BadArgument (2) for an unknown cluster.
    let map = encode_map(&[(":method", "GET"), (":path", "/"), (":authority", "absent")]);
    let body = statuses_of(
        "http-unknown-cluster",
        r#"(import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#,
        &format!(
            r#"(data (i32.const 100) "absent")
  (data (i32.const 200) "{}")"#,
            wat_bytes(&map)
        ),
        &format!(
            r#"(i32.store8 (i32.const 300) (i32.add (i32.const 48) (call $call (i32.const 100) (i32.const 6) (i32.const 200) (i32.const {})
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 32))))"#,
            map.len()
        ),
        1,
    )
    .await;
    assert_eq!(&body[..], b"2");
    let sent = callouts().requests.lock().unwrap();
    assert!(!sent.iter().any(|r| r.cluster == "absent"));
}

#[tokio::test]
async fn grpc_callouts_to_an_unknown_cluster_are_a_parse_failure() {
    // Envoy's grpcCall and grpcStream answer ParseFailure (4) for a cluster
    // name they do not know.
    let body = statuses_of(
        "grpc-unknown-cluster",
        r#"(import "env" "proxy_grpc_call" (func $grpc (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_stream" (func $open (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 100) "missing")
  (data (i32.const 110) "pkg.Svc")
  (data (i32.const 120) "Do")
  (data (i32.const 130) "req")"#,
        r#"(i32.store8 (i32.const 300) (i32.add (i32.const 48) (call $grpc (i32.const 100) (i32.const 7) (i32.const 110) (i32.const 7) (i32.const 120) (i32.const 2)
      (i32.const 0) (i32.const 0) (i32.const 130) (i32.const 3) (i32.const 1000) (i32.const 32))))
    (i32.store8 (i32.const 301) (i32.add (i32.const 48) (call $open (i32.const 100) (i32.const 7) (i32.const 110) (i32.const 7) (i32.const 120) (i32.const 2)
      (i32.const 0) (i32.const 0) (i32.const 32))))"#,
        2,
    )
    .await;
    assert_eq!(&body[..], b"44");
    let sent = callouts().requests.lock().unwrap();
    assert!(!sent.iter().any(|r| r.cluster == "missing"));
}

#[tokio::test]
async fn ticks_run_at_the_period_the_root_context_sets() {
    let module = wat(
        r#"(import "env" "proxy_set_tick_period_milliseconds" (func $period (param i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))"#,
        r#"(data (i32.const 100) "test_ticks")
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $define (i32.const 0) (i32.const 100) (i32.const 10) (i32.const 32)))
    (drop (call $period (i32.const 10)))
    i32.const 1)
  (func (export "proxy_on_tick") (param i32)
    (drop (call $inc (i32.load (i32.const 32)) (i64.const 1))))"#,
    );
    let plugin = load(spec("ticker", module));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = &plugin.core.services.metrics;
    let id = metrics.define(MetricType::Counter, "test_ticks").unwrap();
    let ticks = metrics.get(id).unwrap();
    assert!((3..=25).contains(&ticks), "{ticks} ticks in 200ms at 10ms");
}

#[tokio::test]
async fn queued_items_reach_the_registering_vm() {
    let consumer = wat(
        r#"(import "env" "proxy_register_shared_queue" (func $register (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $dequeue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set (param i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 100) "jobs")
  (data (i32.const 110) "got")
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (drop (call $register (i32.const 100) (i32.const 4) (i32.const 32)))
    i32.const 1)
  (func (export "proxy_on_queue_ready") (param $root i32) (param $queue i32)
    (if (i32.ne (call $dequeue (local.get $queue) (i32.const 16) (i32.const 20)) (i32.const 0)) (then unreachable))
    (drop (call $set (i32.const 110) (i32.const 3) (i32.load (i32.const 16)) (i32.load (i32.const 20)) (i32.const 0))))"#,
    );
    let producer = wat(
        r#"(import "env" "proxy_resolve_shared_queue" (func $resolve (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $enqueue (param i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 100) "queues")
  (data (i32.const 110) "jobs")
  (data (i32.const 120) "hello")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.ne (call $resolve (i32.const 100) (i32.const 6) (i32.const 110) (i32.const 4) (i32.const 32)) (i32.const 0))
      (then unreachable))
    (drop (call $enqueue (i32.load (i32.const 32)) (i32.const 120) (i32.const 5)))
    i32.const 0)"#,
    );
    let with_vm = |name: &str, module: String| PluginSpec {
        vm_id: "queues".into(),
        ..spec(name, module)
    };
    let consumer = load(with_vm("consumer", consumer));
    let chain = chain(vec![load(with_vm("producer", producer))]);
    chain
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await
        .unwrap();
    let shared = &consumer.core.services.shared_data;
    for _ in 0..100 {
        if let Some((value, _)) = shared.get("queues", "got") {
            assert_eq!(value, b"hello");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("proxy_on_queue_ready did not run");
}

#[tokio::test]
async fn properties_and_filter_state_are_visible_to_later_filters() {
    let path = encode_property_path(&["my", "key"]);
    // More segments than are decoded without allocating, and a trailing NUL.
    let mut long = encode_property_path(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]);
    long.push(0);
    let setter = wat(
        r#"(import "env" "proxy_set_property" (func $setp (param i32 i32 i32 i32) (result i32)))"#,
        &format!(
            r#"(data (i32.const 100) "{path}")
  (data (i32.const 140) "v1")
  (data (i32.const 160) "{long}")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $setp (i32.const 100) (i32.const {len}) (i32.const 140) (i32.const 2)))
    (drop (call $setp (i32.const 160) (i32.const {long_len}) (i32.const 140) (i32.const 2)))
    i32.const 0)"#,
            path = wat_bytes(&path),
            len = path.len(),
            long = wat_bytes(&long),
            long_len = long.len(),
        ),
    );
    // Copies the properties at 100 (my.key), 150 (plugin_name), 200
    // (request.url_path) into headers x-a, x-b, x-c.
    let paths = [
        encode_property_path(&["my", "key"]),
        b"plugin_name".to_vec(),
        encode_property_path(&["request", "url_path"]),
    ];
    let getter = wat(
        &format!(
            r#"(import "env" "proxy_get_property" (func $getp (param i32 i32 i32 i32) (result i32))) {ADD}"#
        ),
        &format!(
            r#"(data (i32.const 100) "{p0}")
  (data (i32.const 150) "{p1}")
  (data (i32.const 200) "{p2}")
  (data (i32.const 250) "x-ax-bx-c")
  (func $copy (param $path i32) (param $len i32) (param $name i32)
    (if (i32.ne (call $getp (local.get $path) (local.get $len) (i32.const 16) (i32.const 20)) (i32.const 0)) (then unreachable))
    (drop (call $add (i32.const 0) (local.get $name) (i32.const 3) (i32.load (i32.const 16)) (i32.load (i32.const 20)))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $copy (i32.const 100) (i32.const {l0}) (i32.const 250))
    (call $copy (i32.const 150) (i32.const {l1}) (i32.const 253))
    (call $copy (i32.const 200) (i32.const {l2}) (i32.const 256))
    i32.const 0)"#,
            p0 = wat_bytes(&paths[0]),
            p1 = wat_bytes(&paths[1]),
            p2 = wat_bytes(&paths[2]),
            l0 = paths[0].len(),
            l1 = paths[1].len(),
            l2 = paths[2].len(),
        ),
    );
    let chain = chain(vec![
        load(spec("setter", setter)),
        load(spec("getter", getter)),
    ]);
    let stream = chain.start(StreamInfo::default());
    let headers = stream.request_headers(request(), true).await.unwrap();
    assert_eq!(header_value(&headers, "x-a"), Some(&b"v1"[..]));
    assert_eq!(header_value(&headers, "x-b"), Some(&b"getter"[..]));
    assert_eq!(header_value(&headers, "x-c"), Some(&b"/a"[..]));
    assert_eq!(stream.filter_state("my.key"), Some(b"v1".to_vec()));
    assert_eq!(
        stream.filter_state("a.b.c.d.e.f.g.h.i.j"),
        Some(b"v1".to_vec())
    );
}

#[tokio::test]
async fn filters_cannot_set_the_proxys_own_attributes() {
    // Sets source.principal (segmented and dotted), a request header
    // attribute and request.auth.principal; records the four statuses in
    // x-set. A later filter reads source.principal and
    // request.auth.principal and records the statuses in x-get.
    let sets = [
        encode_property_path(&["source", "principal"]),
        b"source.principal".to_vec(),
        encode_property_path(&["request", "headers", "x-user"]),
        encode_property_path(&["request", "auth", "principal"]),
    ];
    let mut data = String::new();
    let mut calls = String::new();
    for (i, path) in sets.iter().enumerate() {
        let at = 100 + 40 * i;
        data += &format!(r#"(data (i32.const {at}) "{}")"#, wat_bytes(path));
        calls += &format!(
            "(i32.store8 (i32.const {}) (i32.add (i32.const 48) (call $setp (i32.const {at}) (i32.const {}) (i32.const 280) (i32.const 8))))\n",
            300 + i,
            path.len()
        );
    }
    let setter = wat(
        &format!(
            r#"(import "env" "proxy_set_property" (func $setp (param i32 i32 i32 i32) (result i32))) {ADD}"#
        ),
        &format!(
            r#"{data}
  (data (i32.const 280) "spiffe:x")
  (data (i32.const 320) "x-set")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    {calls}
    (drop (call $add (i32.const 0) (i32.const 320) (i32.const 5) (i32.const 300) (i32.const 4)))
    i32.const 0)"#
        ),
    );
    let gets = [&sets[0], &sets[3]];
    let getter = wat(
        &format!(
            r#"(import "env" "proxy_get_property" (func $getp (param i32 i32 i32 i32) (result i32))) {ADD}"#
        ),
        &format!(
            r#"(data (i32.const 100) "{p0}")
  (data (i32.const 150) "{p1}")
  (data (i32.const 320) "x-get")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 300) (i32.add (i32.const 48) (call $getp (i32.const 100) (i32.const {l0}) (i32.const 16) (i32.const 20))))
    (i32.store8 (i32.const 301) (i32.add (i32.const 48) (call $getp (i32.const 150) (i32.const {l1}) (i32.const 16) (i32.const 20))))
    (drop (call $add (i32.const 0) (i32.const 320) (i32.const 5) (i32.const 300) (i32.const 2)))
    i32.const 0)"#,
            p0 = wat_bytes(gets[0]),
            p1 = wat_bytes(gets[1]),
            l0 = gets[0].len(),
            l1 = gets[1].len(),
        ),
    );
    let chain = chain(vec![
        load(spec("setter", setter)),
        load(spec("getter", getter)),
    ]);
    let stream = chain.start(StreamInfo::default());
    let headers = stream.request_headers(request(), true).await.unwrap();
    // BadArgument (2) for each of the proxy's attributes, Ok (0) for the
    // filter's own name.
    assert_eq!(header_value(&headers, "x-set"), Some(&b"2220"[..]));
    // NotFound (1): a plain-text connection has no peer principal.
    assert_eq!(header_value(&headers, "x-get"), Some(&b"10"[..]));
    assert_eq!(stream.filter_state("source.principal"), None);
    assert_eq!(stream.filter_state("request.headers.x-user"), None);
    assert_eq!(
        stream.filter_state("request.auth.principal"),
        Some(b"spiffe:x".to_vec())
    );
}

#[tokio::test]
async fn abi_misuse_gets_the_spec_status() {
    // Replies with 200 + the status of each bad call, in order: unknown map
    // type, unknown buffer type, missing header (NotFound), a key that is not
    // UTF-8.
    let module = wat(
        r#"(import "env" "proxy_get_header_map_value" (func $getv (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 100) "x-missing")
  (data (i32.const 120) "\ff\fe")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 300) (i32.add (i32.const 48) (call $getv (i32.const 99) (i32.const 100) (i32.const 9) (i32.const 16) (i32.const 20))))
    (i32.store8 (i32.const 301) (i32.add (i32.const 48) (call $get (i32.const 42) (i32.const 0) (i32.const 1) (i32.const 16) (i32.const 20))))
    (i32.store8 (i32.const 302) (i32.add (i32.const 48) (call $getv (i32.const 0) (i32.const 100) (i32.const 9) (i32.const 16) (i32.const 20))))
    (i32.store8 (i32.const 303) (i32.add (i32.const 48) (call $getv (i32.const 0) (i32.const 120) (i32.const 2) (i32.const 16) (i32.const 20))))
    (drop (call $reply (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 300) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const -1)))
    i32.const 1)"#,
    );
    let chain = chain(vec![load(spec("misuse", module))]);
    let reply = chain
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await
        .unwrap_err();
    assert_eq!(&reply.body[..], b"2212");
}

#[tokio::test]
async fn wasi_environment_is_the_plugins_and_proc_exit_kills_the_vm() {
    let module = wat(
        r#"(import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $env (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#,
        r#"(data (i32.const 400) "hello from wasi\n")
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (i32.store (i32.const 300) (i32.const 400))
    (i32.store (i32.const 304) (i32.const 16))
    (if (i32.ne (call $write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308)) (i32.const 0)) (then unreachable))
    (if (i32.ne (i32.load (i32.const 308)) (i32.const 16)) (then unreachable))
    (drop (call $sizes (i32.const 16) (i32.const 20)))
    (if (i32.ne (i32.load (i32.const 16)) (i32.const 1)) (then (return (i32.const 0))))
    (drop (call $env (i32.const 24) (i32.const 1000)))
    ;; "A=1\0"
    (i32.eq (i32.load (i32.load (i32.const 24))) (i32.const 0x00313d41)))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $exit (i32.const 3))
    i32.const 0)"#,
    );
    let with_env = |env: &str| PluginSpec {
        environment: vec![(env.to_owned(), "1".to_owned())],
        ..spec("wasi", module.clone())
    };
    assert!(
        engine().load(with_env("B")).is_err(),
        "configure sees the environment"
    );
    let plugin = load(with_env("A"));
    let reply = chain(vec![Arc::clone(&plugin)])
        .start(StreamInfo::default())
        .request_headers(request(), true)
        .await
        .unwrap_err();
    assert_eq!(reply.status, 503);
    assert_eq!(plugin.status().traps, 1);
}

#[test]
fn plugin_metrics_are_defined_once_and_typed() {
    let metrics = &engine().inner_services().metrics;
    let id = metrics.define(MetricType::Counter, "unit_counter").unwrap();
    assert_eq!(
        metrics.define(MetricType::Counter, "unit_counter").ok(),
        Some(id)
    );
    assert!(matches!(
        metrics.define(MetricType::Gauge, "unit_counter"),
        Err(crate::metrics::DefineError::TypeMismatch { .. })
    ));
    metrics.increment(id, 2).unwrap();
    assert_eq!(
        metrics.increment(id, -1),
        Err(wasp_abi::Status::BadArgument)
    );
    assert_eq!(metrics.get(id), Ok(2));
    let gauge = metrics.define(MetricType::Gauge, "unit_gauge").unwrap();
    metrics.record(gauge, 7).unwrap();
    metrics.increment(gauge, -2).unwrap();
    assert_eq!(metrics.get(gauge), Ok(5));
    let hist = metrics.define(MetricType::Histogram, "unit_hist").unwrap();
    metrics.record(hist, 3).unwrap();
    assert_eq!(metrics.get(hist), Err(wasp_abi::Status::BadArgument));
    assert_eq!(metrics.get(9999), Err(wasp_abi::Status::NotFound));
}
