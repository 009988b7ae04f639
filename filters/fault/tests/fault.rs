//! The fault filter on the SDK's mock host: delays (timer, resume, no early
//! release), aborts (HTTP and gRPC), percentages, header matches,
//! header-controlled faults, `max_active_faults`, metrics and configuration
//! errors.

use std::time::Duration;
use wasp_filter_fault::FaultRoot;
use wasp_filter_sdk::LogLevel;
use wasp_filter_sdk::testing::{Harness, HostAction, HttpStream, StreamType};

const SEED: u64 = 0x5eed;

fn host(config: &str) -> Harness {
    let mut host = Harness::new(FaultRoot::with_seed(SEED));
    host.set_property(&["plugin_name"], b"chaos");
    assert!(host.configure(config), "{:?}", host.logs());
    host
}

fn metric(host: &Harness, stat: &str) -> i64 {
    host.metric(&format!("fault.chaos.{stat}"))
        .map_or(0, |m| m.value)
}

fn get(host: &mut Harness, headers: &[(&str, &str)]) -> (HttpStream, HostAction) {
    let mut stream = host.stream();
    let mut all = vec![(":method", "GET"), (":path", "/"), (":authority", "app")];
    all.extend_from_slice(headers);
    let action = stream.request_headers(&all, true);
    (stream, action)
}

#[test]
fn delay_pauses_the_request_until_its_timer_resumes_it() {
    let mut host = host(r#"{"delay": {"fixed_delay": "200ms", "percentage": {"value": 100}}}"#);
    let (stream, action) = get(&mut host, &[]);
    assert_eq!(action, HostAction::Pause);
    assert_eq!(metric(&host, "delays_injected"), 1);
    assert_eq!(metric(&host, "active_faults"), 1);
    host.advance(Duration::from_millis(180));
    assert!(stream.resumed().is_empty(), "resumed before the delay");
    host.advance(Duration::from_millis(30));
    assert_eq!(stream.resumed(), [StreamType::HttpRequest]);
    assert_eq!(metric(&host, "active_faults"), 0);
    assert!(stream.local_reply().is_none());
}

#[test]
fn abort_answers_its_http_status_locally() {
    let mut host = host(r#"{"abort": {"http_status": 503}}"#);
    let (stream, action) = get(&mut host, &[]);
    assert_eq!(action, HostAction::Pause);
    let reply = stream.local_reply().expect("an abort");
    assert_eq!(
        (reply.status, reply.body_text().as_str()),
        (503, "fault filter abort")
    );
    assert_eq!(metric(&host, "aborts_injected"), 1);
    assert_eq!(metric(&host, "active_faults"), 1);
    stream.finish();
    assert_eq!(metric(&host, "active_faults"), 0);
}

#[test]
fn grpc_abort_answers_http_200_with_the_grpc_status() {
    for status in [r#""UNAVAILABLE""#, "14"] {
        let mut host = host(&format!(r#"{{"abort": {{"grpc_status": {status}}}}}"#));
        let (stream, _) = get(&mut host, &[("content-type", "application/grpc")]);
        let reply = stream.local_reply().expect("an abort");
        assert_eq!((reply.status, reply.grpc_status), (200, Some(14)));
    }
}

#[test]
fn delay_then_abort_answers_when_the_delay_ends() {
    let mut host = host(r#"{"delay": {"fixed_delay": "1s"}, "abort": {"http_status": 429}}"#);
    let (stream, action) = get(&mut host, &[]);
    assert_eq!(action, HostAction::Pause);
    host.advance(Duration::from_millis(900));
    assert!(stream.local_reply().is_none());
    host.advance(Duration::from_millis(200));
    assert_eq!(stream.local_reply().map(|r| r.status), Some(429));
    assert!(stream.resumed().is_empty());
    assert_eq!(
        (
            metric(&host, "delays_injected"),
            metric(&host, "aborts_injected")
        ),
        (1, 1)
    );
}

/// Share of `n` requests that `host` delays or aborts.
fn faulted_share(host: &mut Harness, n: usize, headers: &[(&str, &str)]) -> f64 {
    let mut faulted = 0;
    for _ in 0..n {
        let (stream, action) = get(host, headers);
        if action == HostAction::Pause {
            faulted += 1;
        }
        stream.finish();
    }
    faulted as f64 * 100.0 / n as f64
}

#[test]
fn percentages_select_that_share_of_requests_with_sub_percent_precision() {
    let mut half = host(r#"{"delay": {"fixed_delay": "10ms", "percentage": {"value": 50}}}"#);
    let share = faulted_share(&mut half, 4000, &[]);
    assert!((share - 50.0).abs() < 3.0, "{share}% delayed");

    let mut rare = host(r#"{"abort": {"http_status": 500, "percentage": {"value": 0.5}}}"#);
    let share = faulted_share(&mut rare, 20_000, &[]);
    assert!((share - 0.5).abs() < 0.2, "{share}% aborted");

    let mut never = host(r#"{"abort": {"http_status": 500, "percentage": {"value": 0}}}"#);
    assert_eq!(faulted_share(&mut never, 1000, &[]), 0.0);
}

#[test]
fn match_limits_faults_to_requests_whose_headers_match() {
    let config = r#"{"abort": {"http_status": 503},
        "match": {"headers": [{"name": "x-chaos", "exact": "on"}, {"name": "x-user", "prefix": "test-"}]}}"#;
    let mut host = host(config);
    let (_, plain) = get(&mut host, &[]);
    let (_, half) = get(&mut host, &[("x-chaos", "on"), ("x-user", "alice")]);
    let (opted, action) = get(&mut host, &[("x-chaos", "on"), ("x-user", "test-1")]);
    assert_eq!((plain, half), (HostAction::Continue, HostAction::Continue));
    assert_eq!(action, HostAction::Pause);
    assert_eq!(opted.local_reply().map(|r| r.status), Some(503));
}

#[test]
fn header_control_lets_a_request_ask_for_its_own_faults() {
    let mut host = host(r#"{"header_control": true}"#);
    let (plain, action) = get(&mut host, &[]);
    assert_eq!(action, HostAction::Continue);
    plain.finish();

    let (delayed, action) = get(&mut host, &[("x-wasp-fault-delay-request", "300")]);
    assert_eq!(action, HostAction::Pause);
    host.advance(Duration::from_millis(290));
    assert!(delayed.resumed().is_empty());
    host.advance(Duration::from_millis(20));
    assert_eq!(delayed.resumed(), [StreamType::HttpRequest]);

    let (aborted, _) = get(&mut host, &[("x-wasp-fault-abort-request", "418")]);
    assert_eq!(aborted.local_reply().map(|r| r.status), Some(418));
    let (grpc, _) = get(&mut host, &[("x-wasp-fault-abort-grpc-request", "8")]);
    assert_eq!(grpc.local_reply().map(|r| r.grpc_status), Some(Some(8)));

    let zero = [
        ("x-wasp-fault-abort-request", "503"),
        ("x-wasp-fault-abort-request-percentage", "0"),
    ];
    assert_eq!(faulted_share(&mut host, 200, &zero), 0.0);
    let quarter = [
        ("x-wasp-fault-abort-request", "503"),
        ("x-wasp-fault-abort-request-percentage", "25"),
    ];
    let share = faulted_share(&mut host, 4000, &quarter);
    assert!((share - 25.0).abs() < 3.0, "{share}%");
    // Malformed values are ignored.
    let (_, action) = get(&mut host, &[("x-wasp-fault-abort-request", "99")]);
    assert_eq!(action, HostAction::Continue);
}

#[test]
fn fault_headers_are_ignored_without_header_control() {
    let mut host = host(r#"{"abort": {"http_status": 500, "percentage": {"value": 0}}}"#);
    let (_, action) = get(&mut host, &[("x-wasp-fault-abort-request", "503")]);
    assert_eq!(action, HostAction::Continue);
}

#[test]
fn max_active_faults_skips_faults_beyond_the_limit() {
    let mut host = host(r#"{"delay": {"fixed_delay": "100ms"}, "max_active_faults": 2}"#);
    let (first, a) = get(&mut host, &[]);
    let (_second, b) = get(&mut host, &[]);
    let (_third, c) = get(&mut host, &[]);
    assert_eq!(
        (a, b, c),
        (HostAction::Pause, HostAction::Pause, HostAction::Continue)
    );
    assert_eq!(metric(&host, "faults_overflow"), 1);
    // A request that ends during its delay frees its place at once.
    first.finish();
    assert_eq!(metric(&host, "active_faults"), 1);
    let (_, d) = get(&mut host, &[]);
    assert_eq!(d, HostAction::Pause);
    host.advance(Duration::from_millis(150));
    assert_eq!(metric(&host, "active_faults"), 0);
}

#[test]
fn bad_configurations_are_rejected_naming_the_field() {
    let cases = [
        (
            r#"{"delay": {"fixed_delay": "1s", "percentage": {"value": 150}}}"#,
            "delay.percentage.value: 150",
        ),
        (
            r#"{"abort": {"http_status": 503, "grpc_status": 14}}"#,
            "abort: set one of",
        ),
        (r#"{"abort": {"http_status": 99}}"#, "abort.http_status: 99"),
        (r#"{"abort": {"grpc_status": "NOPE"}}"#, "abort.grpc_status"),
        (
            r#"{"abort": {}}"#,
            "abort: needs http_status or grpc_status",
        ),
        (r#"{"delay": {"fixed_delay": "0s"}}"#, "delay.fixed_delay"),
        (r#"{}"#, "injects nothing"),
        (
            r#"{"abort": {"http_status": 503}, "match": {"headers": [{"name": "a", "exact": "1", "present": true}]}}"#,
            "match.headers[0]: set exactly one",
        ),
        (
            r#"{"abort": {"http_status": 503, "percent": 5}}"#,
            "unknown field `percent`",
        ),
        (r#"{"delay": {"fixed_delay": "soon"}}"#, "fixed_delay"),
    ];
    for (config, error) in cases {
        let mut host = Harness::new(FaultRoot::with_seed(SEED));
        assert!(!host.configure(config), "accepted {config}");
        assert!(
            host.logged(LogLevel::Error, error),
            "{config}: {:?}",
            host.logs()
        );
    }
}
