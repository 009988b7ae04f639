//! The mirror filter on the SDK's mock host: what the copy carries, that
//! the original request is never held, the body limit, sampling, the
//! counters, and configuration errors.

use wasp_filter_mirror::{MirrorRoot, shadow_authority};
use wasp_filter_sdk::LogLevel;
use wasp_filter_sdk::testing::{Harness, HostAction, HttpStream};

const SEED: u64 = 0x5eed;

fn host(config: &str) -> Harness {
    let mut host = Harness::new(MirrorRoot::with_seed(SEED));
    host.set_property(&["plugin_name"], b"shadowing");
    assert!(host.configure(config), "{:?}", host.logs());
    host
}

fn metric(host: &Harness, stat: &str) -> i64 {
    host.metric(&format!("mirror.shadowing.{stat}"))
        .map_or(0, |m| m.value)
}

const HEADERS: [(&str, &str); 6] = [
    (":method", "POST"),
    (":path", "/orders?id=7"),
    (":authority", "shop.local:8080"),
    (":scheme", "http"),
    ("x-user", "alice"),
    ("content-length", "11"),
];

fn post(host: &mut Harness, chunks: &[&[u8]]) -> (HttpStream, Vec<HostAction>) {
    let mut stream = host.stream();
    let mut actions = vec![stream.request_headers(&HEADERS, chunks.is_empty())];
    for (i, chunk) in chunks.iter().enumerate() {
        actions.push(stream.request_body(chunk, i + 1 == chunks.len()));
    }
    (stream, actions)
}

#[test]
fn copy_carries_method_path_headers_shadow_authority_and_body() {
    let mut host = host(r#"{"cluster": "shadow"}"#);
    let (_stream, actions) = post(&mut host, &[b"hello ", b"world"]);
    assert!(
        actions.iter().all(|a| *a == HostAction::Continue),
        "{actions:?}"
    );
    let calls = host.http_calls();
    assert_eq!(calls.len(), 1);
    let copy = &calls[0];
    assert_eq!(copy.cluster, "shadow");
    assert_eq!(copy.header(":method"), Some("POST"));
    assert_eq!(copy.header(":path"), Some("/orders?id=7"));
    assert_eq!(copy.header(":authority"), Some("shop.local-shadow:8080"));
    assert_eq!(copy.header("x-user"), Some("alice"));
    assert_eq!(
        copy.header("content-length"),
        None,
        "the host frames the copy"
    );
    assert_eq!(copy.body, b"hello world");
    assert_eq!(metric(&host, "mirrored"), 1);
}

#[test]
fn copy_is_sent_only_once_the_body_has_ended() {
    let mut host = host(r#"{"cluster": "shadow"}"#);
    let mut stream = host.stream();
    stream.request_headers(&HEADERS, false);
    stream.request_body(b"part", false);
    assert!(host.http_calls().is_empty());
    stream.request_trailers(&[("x-checksum", "1")]);
    assert_eq!(host.http_calls()[0].body, b"part");
}

#[test]
fn request_without_body_is_mirrored_with_its_headers() {
    let mut host = host(r#"{"cluster": "shadow"}"#);
    let (_stream, _) = post(&mut host, &[]);
    assert_eq!(host.http_calls().len(), 1);
    assert!(host.http_calls()[0].body.is_empty());
}

#[test]
fn body_over_the_limit_is_mirrored_headers_only_at_once() {
    let mut host = host(r#"{"cluster": "shadow", "max_body_bytes": 8}"#);
    let mut stream = host.stream();
    stream.request_headers(&HEADERS, false);
    stream.request_body(b"12345", false);
    assert!(host.http_calls().is_empty());
    assert_eq!(stream.request_body(b"67890", false), HostAction::Continue);
    let calls = host.http_calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].body.is_empty());
    assert_eq!(calls[0].header("content-length"), None);
    stream.request_body(b"rest", true);
    assert_eq!(host.http_calls().len(), 1, "one copy per request");
    assert_eq!(
        (metric(&host, "mirrored"), metric(&host, "headers_only")),
        (1, 1)
    );
}

#[test]
fn shadow_outcome_never_touches_the_request_and_failures_are_counted() {
    let mut host = host(r#"{"cluster": "shadow"}"#);
    let (ok, _) = post(&mut host, &[b"a"]);
    let (bad, _) = post(&mut host, &[b"b"]);
    let (lost, _) = post(&mut host, &[b"c"]);
    let calls = host.http_calls();
    // The requests finish first; their copies answer later.
    for stream in [ok, bad, lost] {
        assert!(stream.local_reply().is_none() && stream.resumed().is_empty());
        stream.finish();
    }
    host.respond_http_call(calls[0].token, 200, &[], b"");
    host.respond_http_call(calls[1].token, 500, &[], b"");
    host.fail_http_call(calls[2].token);
    assert_eq!((metric(&host, "mirrored"), metric(&host, "failed")), (3, 2));
}

#[test]
fn request_that_ends_before_its_body_is_skipped() {
    let mut host = host(r#"{"cluster": "shadow"}"#);
    let mut stream = host.stream();
    stream.request_headers(&HEADERS, false);
    stream.request_body(b"half", false);
    stream.finish();
    assert!(host.http_calls().is_empty());
    assert_eq!(metric(&host, "skipped"), 1);
}

#[test]
fn percentage_mirrors_that_share_and_counts_the_rest_as_skipped() {
    let mut host = host(r#"{"cluster": "shadow", "percentage": {"value": 25}}"#);
    let n = 4000;
    for _ in 0..n {
        let (stream, _) = post(&mut host, &[]);
        stream.finish();
    }
    let mirrored = host.http_calls().len() as f64 * 100.0 / n as f64;
    assert!((mirrored - 25.0).abs() < 3.0, "{mirrored}% mirrored");
    assert_eq!(
        metric(&host, "mirrored") + metric(&host, "skipped"),
        n as i64
    );
}

#[test]
fn shadow_authority_goes_before_the_port() {
    assert_eq!(shadow_authority("api"), "api-shadow");
    assert_eq!(shadow_authority("api:80"), "api-shadow:80");
    assert_eq!(shadow_authority("[::1]:80"), "[::1]-shadow:80");
    assert_eq!(shadow_authority("[::1]"), "[::1]-shadow");
}

#[test]
fn bad_configurations_are_rejected_naming_the_field() {
    let cases = [
        (r#"{}"#, "missing field `cluster`"),
        (r#"{"cluster": ""}"#, "cluster: is empty"),
        (
            r#"{"cluster": "s", "percentage": {"value": -1}}"#,
            "percentage.value: -1",
        ),
        (
            r#"{"cluster": "s", "max_body_bytes": "big"}"#,
            "max_body_bytes",
        ),
        (
            r#"{"cluster": "s", "mirror_percent": 5}"#,
            "unknown field `mirror_percent`",
        ),
        (r#"{"cluster": "s", "timeout": "0s"}"#, "timeout"),
    ];
    for (config, error) in cases {
        let mut host = Harness::new(MirrorRoot::with_seed(SEED));
        assert!(!host.configure(config), "accepted {config}");
        assert!(
            host.logged(LogLevel::Error, error),
            "{config}: {:?}",
            host.logs()
        );
    }
}
