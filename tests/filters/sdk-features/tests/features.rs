//! Every `x-test` behaviour of the sdk-features filter on the native mock host.

use sdk_features::{HITS_KEY, LAST_MESSAGE_KEY, Root, TICK_CALLOUT_KEY, TICKS_KEY};
use std::time::Duration;
use wasp_filter_sdk::testing::ROOT_ID;
use wasp_filter_sdk::testing::{Harness, HostAction, HttpStream, LogLevel, StreamType};

fn host(config: &str) -> Harness {
    let mut host = Harness::new(Root::default());
    assert!(host.configure(config), "{:?}", host.logs());
    host
}

fn request(host: &mut Harness, tests: &str, extra: &[(&str, &str)]) -> (HttpStream, HostAction) {
    let mut stream = host.stream();
    let mut headers = vec![(":path", "/features"), ("x-test", tests)];
    headers.extend_from_slice(extra);
    let action = stream.request_headers(&headers, true);
    (stream, action)
}

#[test]
fn rejects_unknown_configuration_fields() {
    let mut host = Harness::new(Root::default());
    assert!(!host.configure(r#"{"tick": 5}"#));
    assert!(host.logged(LogLevel::Error, "unknown field `tick`"));
}

#[test]
fn callout_pauses_and_reports_the_status() {
    let mut host = host(r#"{"callout_cluster": "backend"}"#);
    let (mut stream, action) = request(&mut host, "callout", &[("x-callout-path", "/status")]);
    assert_eq!(action, HostAction::Pause);
    let call = host.http_calls().remove(0);
    assert_eq!(
        (call.cluster.as_str(), call.header(":path")),
        ("backend", Some("/status"))
    );
    host.respond_http_call(call.token, 204, &[], b"");
    assert_eq!(stream.resumed(), [StreamType::HttpRequest]);
    stream.response_headers(&[(":status", "200")], true);
    assert_eq!(
        stream.response_header("x-callout-status").as_deref(),
        Some("204")
    );
}

#[test]
fn failed_callout_answers_503() {
    let mut host = host("");
    let (stream, _) = request(&mut host, "callout", &[]);
    host.fail_http_call(host.http_calls()[0].token);
    assert_eq!(stream.local_reply().unwrap().status, 503);
}

#[test]
fn grpc_sends_the_request_body() {
    let mut host = host("");
    let mut stream = host.stream();
    stream.request_headers(
        &[
            ("x-test", "grpc"),
            ("x-grpc-service", "wasp.Echo"),
            ("x-grpc-method", "Say"),
        ],
        false,
    );
    assert_eq!(stream.request_body(b"hi", true), HostAction::Pause);
    let call = host.grpc_calls().remove(0);
    assert_eq!(
        (
            call.cluster.as_str(),
            call.service.as_str(),
            call.method.as_str()
        ),
        ("grpc", "wasp.Echo", "Say")
    );
    assert_eq!(call.message, b"hi");
    host.respond_grpc_call(call.token, b"hello");
    stream.response_headers(&[(":status", "200")], true);
    assert_eq!(
        stream.response_header("x-grpc-status").as_deref(),
        Some("0")
    );
    assert_eq!(
        stream.response_header("x-grpc-message-bytes").as_deref(),
        Some("5")
    );
}

#[test]
fn timer_resumes_after_the_delay() {
    let mut host = host("");
    let (mut stream, action) = request(&mut host, "timer", &[("x-delay-ms", "100")]);
    assert_eq!(action, HostAction::Pause);
    host.advance(Duration::from_millis(90));
    assert!(stream.resumed().is_empty());
    host.advance(Duration::from_millis(20));
    assert_eq!(stream.resumed(), [StreamType::HttpRequest]);
    stream.response_headers(&[(":status", "200")], true);
    assert_eq!(
        stream.response_header("x-timer-fired").as_deref(),
        Some("yes")
    );
}

#[test]
fn shared_data_counts_hits() {
    let mut host = host("");
    for expected in ["1", "2"] {
        let (mut stream, _) = request(&mut host, "shared-data", &[]);
        stream.response_headers(&[(":status", "200")], true);
        assert_eq!(
            stream.response_header("x-shared-hits").as_deref(),
            Some(expected)
        );
    }
    assert_eq!(host.shared_data(HITS_KEY).unwrap().0, 2u64.to_le_bytes());
}

#[test]
fn queue_messages_reach_the_root() {
    let mut host = host("");
    let (mut stream, _) = request(&mut host, "queue", &[("x-message", "hello-queue")]);
    assert_eq!(
        host.shared_data(LAST_MESSAGE_KEY).unwrap().0,
        b"hello-queue"
    );
    stream.response_headers(&[(":status", "200")], true);
    assert_eq!(
        stream.response_header("x-queue-last").as_deref(),
        Some("hello-queue")
    );
}

#[test]
fn metrics_are_defined_and_updated() {
    let mut host = host("");
    let (mut stream, _) = request(&mut host, "metrics", &[]);
    stream.response_headers(&[(":status", "200")], true);
    assert_eq!(
        stream.response_header("x-metric-requests").as_deref(),
        Some("1")
    );
    assert_eq!(host.metric("sdk_features_requests_total").unwrap().value, 1);
    assert_eq!(host.metric("sdk_features_active").unwrap().value, 1);
    stream.finish();
    assert_eq!(host.metric("sdk_features_active").unwrap().value, 0);
}

#[test]
fn properties_are_echoed() {
    let mut host = host("");
    host.set_property(&["request", "path"], b"/features");
    host.set_property(&["source", "principal"], b"spiffe://wasp/ns/t/sa/client");
    host.set_property(&["plugin_name"], b"features");
    let (mut stream, _) = request(&mut host, "properties", &[]);
    stream.response_headers(&[(":status", "200")], true);
    assert_eq!(
        stream.response_header("x-prop-path").as_deref(),
        Some("/features")
    );
    assert_eq!(
        stream.response_header("x-prop-principal").as_deref(),
        Some("spiffe://wasp/ns/t/sa/client")
    );
    assert_eq!(
        stream.response_header("x-prop-plugin").as_deref(),
        Some("features")
    );
}

#[test]
fn local_reply_is_a_teapot() {
    let mut host = host("");
    let (stream, action) = request(&mut host, "local-reply", &[]);
    assert_eq!(action, HostAction::Pause);
    let reply = stream.local_reply().unwrap();
    assert_eq!(
        (reply.status, reply.body_text().as_str()),
        (418, "short and stout")
    );
    assert_eq!(reply.header("x-local-reply"), Some("yes"));
}

#[test]
fn body_rewrite_changes_both_bodies() {
    let mut host = host("");
    let mut stream = host.stream();
    stream.request_headers(&[("x-test", "body-rewrite")], false);
    assert_eq!(stream.request_body(b"abc", false), HostAction::Pause);
    assert_eq!(stream.request_body(b"def", true), HostAction::Continue);
    assert_eq!(stream.request_body_bytes(), b"ABCDEF");
    stream.response_headers(&[(":status", "200"), ("content-length", "8")], false);
    assert_eq!(stream.response_header("content-length"), None);
    assert_eq!(
        stream.response_body(b"upstream", true),
        HostAction::Continue
    );
    assert_eq!(stream.response_body_bytes(), b"upstream [rewritten]");
}

#[test]
fn ticks_count_in_shared_data() {
    let mut host = host(r#"{"tick_ms": 20}"#);
    host.advance(Duration::from_millis(100));
    assert_eq!(host.shared_data(TICKS_KEY).unwrap().0, 5u64.to_le_bytes());
    let (mut stream, _) = request(&mut host, "ticks", &[]);
    stream.response_headers(&[(":status", "200")], true);
    assert_eq!(stream.response_header("x-ticks").as_deref(), Some("5"));
}

#[test]
fn the_root_context_calls_out_on_ticks_and_stores_the_status() {
    let mut host = host(r#"{"tick_ms": 20, "tick_callout_path": "/tick"}"#);
    host.advance(Duration::from_millis(60));
    // One callout at a time: the first is still outstanding.
    let calls = host.http_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].context_id, ROOT_ID);
    assert_eq!(
        (calls[0].cluster.as_str(), calls[0].header(":path")),
        ("callout", Some("/tick"))
    );
    host.respond_http_call(calls[0].token, 202, &[], b"");
    assert_eq!(host.callout_deliveries(calls[0].token), [ROOT_ID]);
    assert_eq!(host.shared_data(TICK_CALLOUT_KEY).unwrap().0, b"202");
    let (mut stream, _) = request(&mut host, "tick-callout", &[]);
    stream.response_headers(&[(":status", "200")], true);
    assert_eq!(
        stream.response_header("x-tick-callout").as_deref(),
        Some("202")
    );
    host.advance(Duration::from_millis(20));
    assert_eq!(host.http_calls().len(), 2, "the next tick calls again");
}

#[test]
fn log_and_panic_reach_the_host_log() {
    let mut host = host("");
    request(&mut host, "log", &[]);
    assert!(host.logged(LogLevel::Info, "sdk-features: /features"));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        request(&mut host, "panic", &[]);
    }));
    assert!(outcome.is_err());
    assert!(host.logged(LogLevel::Critical, "sdk-features asked to panic"));
}
