//! What the host spares filters that need little: callbacks a module
//! declares it does not need (`wasp_http_callbacks`) are never called (a
//! chain of such filters lets bodies pass untouched), and headers no filter
//! wrote to are not handed back.

use super::*;
use crate::StreamInfo;

/// A module whose body, trailers and log callbacks trap, declaring `bits`.
fn declaring(name: &str, bits: u32) -> Arc<Plugin> {
    load(spec(
        name,
        wat(
            "",
            &format!(
                r#"(func (export "wasp_http_callbacks") (result i32) i32.const {bits})
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) unreachable)
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32) unreachable)
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) unreachable)
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32) unreachable)
  (func (export "proxy_on_log") (param i32) unreachable)"#
            ),
        ),
    ))
}

#[tokio::test]
async fn undeclared_callbacks_are_never_called() {
    let plugin = declaring("headers-only", 0);
    let chain = chain(vec![Arc::clone(&plugin)]);
    assert!(!chain.handles_request_body());
    assert!(!chain.handles_response_body());
    let stream = chain.start(StreamInfo::default());
    stream.request_headers(request(), false).await.unwrap();
    let body = stream
        .request_body(Bytes::from_static(b"abc"), false)
        .await
        .unwrap();
    assert_eq!(&body[..], b"abc");
    let (_, trailers) = stream
        .request_trailers(vec![("t".into(), b"1".to_vec())])
        .await
        .unwrap();
    assert_eq!(trailers.len(), 1);
    let body = stream
        .response_body(Bytes::from_static(b"def"), true)
        .await
        .unwrap();
    assert_eq!(&body[..], b"def");
    drop(stream);
    // No trapping callback ran (the VM is alive: which slot served this
    // thread decides how many VMs the plugin has).
    let status = plugin.status();
    assert_eq!(status.traps, 0, "{status:?}");
    assert!(status.vms >= 1, "{status:?}");
}

#[tokio::test]
async fn a_filter_after_a_local_reply_still_sees_the_stream_end() {
    let deny = load(spec(
        "deny-first",
        wat(
            r#"(import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#,
            r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $reply (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))
    i32.const 1)"#,
        ),
    ));
    // Its headers callback must not run; its log callback must (a trap
    // tells that it did).
    let after = load(spec(
        "after-deny",
        wat(
            "",
            r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable)
  (func (export "proxy_on_log") (param i32) unreachable)"#,
        ),
    ));
    let stream = chain(vec![deny, Arc::clone(&after)]).start(StreamInfo::default());
    let reply = stream
        .request_headers(request(), true)
        .await
        .expect_err("the first filter replies");
    assert_eq!(reply.status, 403);
    assert_eq!(after.status().traps, 0, "not called during the request");
    drop(stream);
    assert_eq!(after.status().traps, 1, "proxy_on_log ran at the end");
}

#[tokio::test]
async fn declared_callbacks_are_called() {
    let bits = wasp_abi::HTTP_CALLBACK_REQUEST_BODY;
    let plugin = declaring("request-body", bits);
    let chain = chain(vec![Arc::clone(&plugin)]);
    assert!(chain.handles_request_body());
    assert!(!chain.handles_response_body());
    let stream = chain.start(StreamInfo::default());
    stream.request_headers(request(), false).await.unwrap();
    let failed = stream
        .request_body(Bytes::from_static(b"abc"), true)
        .await
        .expect_err("the trapping body callback ran");
    assert_eq!(failed.status, 503);
    assert_eq!(plugin.status().traps, 1);
}

#[tokio::test]
async fn headers_come_back_only_when_a_filter_wrote_to_them() {
    let reader = load(spec(
        "reader",
        wat(
            r#"(import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))"#,
            r#"(data (i32.const 100) ":path")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $get (i32.const 0) (i32.const 100) (i32.const 5) (i32.const 200) (i32.const 204)))
    i32.const 0)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) i32.const 0)"#,
        ),
    ));
    let untouched = chain(vec![Arc::clone(&reader)]).start(StreamInfo::default());
    let response = vec![(":status".to_owned(), b"200".to_vec())];
    assert_eq!(
        untouched
            .filter_request_headers(request(), true)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        untouched
            .filter_response_headers(response.clone(), true)
            .await
            .unwrap(),
        None
    );
    // The convenience form still answers the headers.
    let headers = untouched.request_headers(request(), true).await.unwrap();
    assert_eq!(headers, request());

    let writer = load(spec(
        "writer",
        wat(
            r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#,
            r#"(data (i32.const 100) "x-added")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 0) (i32.const 100) (i32.const 7) (i32.const 100) (i32.const 1)))
    i32.const 0)"#,
        ),
    ));
    let changed = chain(vec![reader, writer]).start(StreamInfo::default());
    let headers = changed
        .filter_request_headers(request(), true)
        .await
        .unwrap()
        .expect("a filter added a header");
    assert_eq!(headers.last(), Some(&("x-added".to_owned(), b"x".to_vec())));
    // Each phase starts afresh: no filter writes to the response headers.
    assert_eq!(
        changed
            .filter_response_headers(response, true)
            .await
            .unwrap(),
        None
    );
}
