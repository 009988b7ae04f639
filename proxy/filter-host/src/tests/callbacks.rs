//! What the host spares filters that need little: callbacks a module
//! declares it does not need (`wasp_http_callbacks`) are never called (a
//! chain of such filters lets bodies pass untouched), and headers no filter
//! wrote to are not handed back.

use super::*;
use crate::StreamInfo;

/// A module's imports and body that add `x-added: x` to the request headers.
const ADD_HEADER: (&str, &str) = (
    r#"(import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#,
    r#"(data (i32.const 100) "x-added")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 0) (i32.const 100) (i32.const 7) (i32.const 100) (i32.const 1)))
    i32.const 0)"#,
);

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

    let writer = load(spec("writer", wat(ADD_HEADER.0, ADD_HEADER.1)));
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

/// Callbacks [`counting`] counts, in the order of its counters.
const COUNTED: [&str; 9] = [
    "request_headers",
    "response_headers",
    "done",
    "log",
    "delete",
    "request_body",
    "response_body",
    "request_trailers",
    "response_trailers",
];

/// A module whose stream callbacks count their calls (one i32 each at
/// address 4 × its index in [`COUNTED`]), declaring `bits` if given.
fn counting(name: &str, bits: Option<u32>) -> Arc<Plugin> {
    let declaration = bits.map_or(String::new(), |bits| {
        format!(r#"(func (export "wasp_http_callbacks") (result i32) i32.const {bits})"#)
    });
    load(spec(
        name,
        wat(
            "",
            &format!(
                r#"{declaration}
  (func $count (param $at i32)
    (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $count (i32.const 0)) i32.const 0)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (call $count (i32.const 4)) i32.const 0)
  (func (export "proxy_on_done") (param i32) (result i32) (call $count (i32.const 8)) i32.const 1)
  (func (export "proxy_on_log") (param i32) (call $count (i32.const 12)))
  (func (export "proxy_on_delete") (param i32) (call $count (i32.const 16)))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (call $count (i32.const 20)) i32.const 0)
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
    (call $count (i32.const 24)) i32.const 0)
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32)
    (call $count (i32.const 28)) i32.const 0)
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32)
    (call $count (i32.const 32)) i32.const 0)"#
            ),
        ),
    ))
}

/// The callbacks of [`counting`] that ran so far, by name, with how often.
fn counted(plugin: &Plugin) -> Vec<(&'static str, u32)> {
    let (counts, _) = plugin
        .slot()
        .with_vm(None, |vm| {
            let memory = vm.store.data().memory.expect("the module has a memory");
            let data = memory.data(&vm.store);
            Ok(COUNTED
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let at = i * 4;
                    let count = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                    (*name, count)
                })
                .filter(|(_, count)| *count > 0)
                .collect::<Vec<_>>())
        })
        .expect("the VM is alive");
    counts
}

/// One stream through `plugins`: request headers, body and trailers, then
/// response headers, body and trailers, then its end.
async fn full_stream(plugins: Vec<Arc<Plugin>>) {
    let stream = chain(plugins).start(StreamInfo::default());
    stream.request_headers(request(), false).await.unwrap();
    let body = stream
        .request_body(Bytes::from_static(b"abc"), false)
        .await
        .unwrap();
    assert_eq!(&body[..], b"abc");
    let trailers = vec![("t".into(), b"1".to_vec())];
    stream.request_trailers(trailers.clone()).await.unwrap();
    let response = vec![(":status".to_owned(), b"200".to_vec())];
    stream.response_headers(response, false).await.unwrap();
    let body = stream
        .response_body(Bytes::from_static(b"def"), false)
        .await
        .unwrap();
    assert_eq!(&body[..], b"def");
    stream.response_trailers(trailers).await.unwrap();
}

const EVERY_CALLBACK: [(&str, u32); 9] = [
    ("request_headers", 1),
    ("response_headers", 1),
    ("done", 1),
    ("log", 1),
    ("delete", 1),
    ("request_body", 1),
    ("response_body", 1),
    ("request_trailers", 1),
    ("response_trailers", 1),
];

#[tokio::test]
async fn a_module_without_the_declaration_gets_every_callback() {
    let plugin = counting("undeclared-counts", None);
    full_stream(vec![Arc::clone(&plugin)]).await;
    assert_eq!(counted(&plugin), EVERY_CALLBACK);
}

#[tokio::test]
async fn a_declaration_from_before_the_opt_outs_keeps_headers_and_done() {
    let plugin = counting("old-headers-only", Some(0));
    full_stream(vec![Arc::clone(&plugin)]).await;
    assert_eq!(
        counted(&plugin),
        [
            ("request_headers", 1),
            ("response_headers", 1),
            ("done", 1),
            ("delete", 1)
        ]
    );
    let plugin = counting("old-all", Some(wasp_abi::HTTP_CALLBACK_ALL));
    full_stream(vec![Arc::clone(&plugin)]).await;
    assert_eq!(counted(&plugin), EVERY_CALLBACK);
}

#[tokio::test]
async fn each_opt_out_skips_exactly_its_callback() {
    for (bit, skipped) in [
        (
            wasp_abi::HTTP_CALLBACK_NO_REQUEST_HEADERS,
            "request_headers",
        ),
        (
            wasp_abi::HTTP_CALLBACK_NO_RESPONSE_HEADERS,
            "response_headers",
        ),
        (wasp_abi::HTTP_CALLBACK_NO_DONE, "done"),
    ] {
        let plugin = counting(
            &format!("without-{skipped}"),
            Some(wasp_abi::HTTP_CALLBACK_ALL | bit),
        );
        full_stream(vec![Arc::clone(&plugin)]).await;
        let expected: Vec<_> = EVERY_CALLBACK
            .into_iter()
            .filter(|(name, _)| *name != skipped)
            .collect();
        assert_eq!(counted(&plugin), expected, "declaring {bit}");
    }
}

#[tokio::test]
async fn a_request_headers_filter_is_not_entered_after_them() {
    let bits = wasp_abi::HTTP_CALLBACK_NO_RESPONSE_HEADERS | wasp_abi::HTTP_CALLBACK_NO_DONE;
    let request_only = counting("request-headers-only", Some(bits));
    // Bodies reach the filter that asks for them, not the one beside it.
    let bodies = counting(
        "bodies-only",
        Some(
            wasp_abi::HTTP_CALLBACK_REQUEST_BODY
                | wasp_abi::HTTP_CALLBACK_RESPONSE_BODY
                | wasp_abi::HTTP_CALLBACK_NO_REQUEST_HEADERS
                | wasp_abi::HTTP_CALLBACK_NO_RESPONSE_HEADERS
                | wasp_abi::HTTP_CALLBACK_NO_DONE,
        ),
    );
    full_stream(vec![Arc::clone(&request_only), Arc::clone(&bodies)]).await;
    assert_eq!(
        counted(&request_only),
        [("request_headers", 1), ("delete", 1)]
    );
    assert_eq!(
        counted(&bodies),
        [
            ("delete", 1),
            ("request_body", 1),
            ("response_body", 1),
            ("request_trailers", 1),
            ("response_trailers", 1)
        ]
    );
}

#[tokio::test]
async fn a_filter_with_no_stream_callback_still_gets_its_context_ended() {
    let bits = wasp_abi::HTTP_CALLBACK_LOG
        | wasp_abi::HTTP_CALLBACK_NO_REQUEST_HEADERS
        | wasp_abi::HTTP_CALLBACK_NO_RESPONSE_HEADERS
        | wasp_abi::HTTP_CALLBACK_NO_DONE;
    let plugin = counting("log-only", Some(bits));
    full_stream(vec![Arc::clone(&plugin)]).await;
    assert_eq!(counted(&plugin), [("log", 1), ("delete", 1)]);
}

#[tokio::test]
async fn each_filter_is_told_the_header_count_the_filters_before_it_left() {
    // Traps unless its request headers callback is told `expected` headers.
    let expecting = |name: &str, expected: u32| {
        load(spec(
            name,
            wat(
                "",
                &format!(
                    r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.ne (local.get 1) (i32.const {expected})) (then unreachable))
    i32.const 0)"#
                ),
            ),
        ))
    };
    let adder = load(spec("adds-one", wat(ADD_HEADER.0, ADD_HEADER.1)));
    let plugins = vec![
        expecting("told-3", 3),
        adder,
        expecting("told-4", 4),
        expecting("still-told-4", 4),
    ];
    let stream = chain(plugins).start(StreamInfo::default());
    let headers = stream
        .request_headers(request(), true)
        .await
        .expect("every filter was told the count it expected");
    assert_eq!(headers.len(), 4);
}
