//! Callout limits: calls in flight per VM and bytes per callout request are
//! refused with `BadArgument`; a response past `max_callout_response_bytes`
//! fails the call (no headers, no body; gRPC `RESOURCE_EXHAUSTED`); each is
//! counted in `wasp_filter_limit_exceeded_total`.

use std::time::Duration;

use wasp_abi::encode_map;

use super::{chain, engine, load, request, spec, wat, wat_bytes};
use crate::{PluginLimits, PluginSpec, StreamInfo};

const IMPORTS: &str = r#"(import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))"#;

fn exceeded(plugin: &str, limit: &str) -> u64 {
    engine()
        .inner_services()
        .metrics
        .limit_exceeded
        .with_label_values(&[plugin, limit])
        .get()
}

fn limited(name: &str, module: String, limits: PluginLimits) -> PluginSpec {
    PluginSpec {
        limits,
        vm_id: name.to_owned(),
        ..spec(name, module)
    }
}

/// `proxy_http_call` to cluster `up` with the headers at 200 and `body`
/// bytes of body at 1024.
fn call(len: usize, body: u32) -> String {
    format!(
        "(call $call (i32.const 100) (i32.const 2) (i32.const 200) (i32.const {len}) (i32.const 1024) (i32.const {body}) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 32))"
    )
}

#[tokio::test]
async fn callouts_in_flight_and_request_bytes_are_bounded() {
    let map = encode_map(&[(":method", "GET"), (":path", "/side"), (":authority", "up")]);
    let len = map.len();
    // Three calls (the third past 2 in flight), then one with a 100-byte
    // body (past 64 request bytes); the statuses go into `x-statuses`.
    let module = wat(
        IMPORTS,
        &format!(
            r#"(data (i32.const 100) "up")
  (data (i32.const 120) "x-statuses")
  (data (i32.const 200) "{map}")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 300) (i32.add (i32.const 48) {first}))
    (i32.store8 (i32.const 301) (i32.add (i32.const 48) {first}))
    (i32.store8 (i32.const 302) (i32.add (i32.const 48) {first}))
    (drop (call $add (i32.const 0) (i32.const 120) (i32.const 10) (i32.const 300) (i32.const 3)))
    i32.const 0)"#,
            map = wat_bytes(&map),
            first = call(len, 0),
        ),
    );
    let limits = PluginLimits {
        max_callouts_in_flight: 2,
        ..PluginLimits::default()
    };
    let stream =
        chain(vec![load(limited("in-flight", module, limits))]).start(StreamInfo::default());
    let headers = stream
        .request_headers(request(), true)
        .await
        .expect("continues");
    let statuses = headers
        .iter()
        .find(|(k, _)| k == "x-statuses")
        .expect("recorded");
    assert_eq!(
        statuses.1, b"002",
        "the third call in flight is a BadArgument"
    );
    assert_eq!(exceeded("in-flight", "max_callouts_in_flight"), 1);

    let module = wat(
        IMPORTS,
        &format!(
            r#"(data (i32.const 100) "up")
  (data (i32.const 120) "x-statuses")
  (data (i32.const 200) "{map}")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 300) (i32.add (i32.const 48) {small}))
    (i32.store8 (i32.const 301) (i32.add (i32.const 48) {large}))
    (drop (call $add (i32.const 0) (i32.const 120) (i32.const 10) (i32.const 300) (i32.const 2)))
    i32.const 0)"#,
            map = wat_bytes(&map),
            small = call(len, 0),
            large = call(len, 100),
        ),
    );
    let limits = PluginLimits {
        max_callout_request_bytes: 64,
        ..PluginLimits::default()
    };
    let stream =
        chain(vec![load(limited("req-bytes", module, limits))]).start(StreamInfo::default());
    let headers = stream
        .request_headers(request(), true)
        .await
        .expect("continues");
    let statuses = headers
        .iter()
        .find(|(k, _)| k == "x-statuses")
        .expect("recorded");
    assert_eq!(statuses.1, b"02", "32 header bytes pass, 32 + 100 do not");
    assert_eq!(exceeded("req-bytes", "max_callout_request_bytes"), 1);
}

/// A filter that calls `up` (which answers `200 pong`), waits, and adds
/// `x-response: <headers><body size>` from what it was given.
fn response_recorder() -> String {
    let map = encode_map(&[(":method", "GET"), (":path", "/big"), (":authority", "up")]);
    wat(
        IMPORTS,
        &format!(
            r#"(data (i32.const 100) "up")
  (data (i32.const 120) "x-response")
  (data (i32.const 200) "{map}")
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (i32.store (i32.const 48) (local.get $ctx))
    (drop {call})
    i32.const 1)
  (func (export "proxy_on_http_call_response") (param i32 i32) (param $h i32) (param $size i32) (param i32)
    (i32.store8 (i32.const 300) (i32.add (i32.const 48) (local.get $h)))
    (i32.store8 (i32.const 301) (i32.add (i32.const 48) (local.get $size)))
    (drop (call $effective (i32.load (i32.const 48))))
    (drop (call $add (i32.const 0) (i32.const 120) (i32.const 10) (i32.const 300) (i32.const 2)))
    (drop (call $continue (i32.const 0))))"#,
            map = wat_bytes(&map),
            call = call(map.len(), 0),
        ),
    )
}

async fn response_seen(name: &str, limits: PluginLimits) -> Vec<u8> {
    let plugin = load(limited(name, response_recorder(), limits));
    let stream = chain(vec![plugin]).start(StreamInfo::default());
    let headers = tokio::time::timeout(
        Duration::from_secs(5),
        stream.request_headers(request(), true),
    )
    .await
    .expect("resumed")
    .expect("continues");
    headers
        .into_iter()
        .find(|(k, _)| k == "x-response")
        .expect("recorded")
        .1
}

#[tokio::test]
async fn a_response_past_max_callout_response_bytes_fails_the_call() {
    // `:status: 200` and `pong`: 14 bytes.
    assert_eq!(
        response_seen("resp-ok", PluginLimits::default()).await,
        b"14"
    );
    let limits = PluginLimits {
        max_callout_response_bytes: 13,
        ..PluginLimits::default()
    };
    assert_eq!(
        response_seen("resp-big", limits).await,
        b"00",
        "delivered as a failed call: no headers, no body"
    );
    assert_eq!(exceeded("resp-big", "max_callout_response_bytes"), 1);
}
