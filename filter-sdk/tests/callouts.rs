//! HTTP and gRPC callouts with callbacks, and stream timers, on the mock host.

use std::time::Duration;
use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::testing::{Harness, HostAction, ROOT_ID, StreamType};

thread_local! {
    /// The statuses detached callouts' callbacks received, in order.
    static DETACHED_OUTCOMES: std::cell::RefCell<Vec<Option<u16>>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Default)]
struct Root;

#[derive(Default)]
struct Auth {
    verdict: Option<String>,
}

impl RootFilter for Root {
    type Config = ();
    type Http = Auth;
    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Auth> {
        Some(Auth::default())
    }
}

impl HttpFilter for Auth {
    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
        let mode = ctx.request_headers().get("x-mode").unwrap_or_default();
        let result = match mode.as_str() {
            "http" => {
                let request = HttpRequest::new("authz", "GET", "/check")
                    .header("X-Token", "t1")
                    .timeout(Duration::from_millis(250));
                ctx.http_call(request, |this: &mut Auth, ctx, response| {
                    this.verdict = response.header("x-verdict").map(str::to_string);
                    match response.status() {
                        Some(200) => {
                            ctx.request_headers()
                                .set("x-verdict", this.verdict.as_deref().unwrap_or(""));
                            Action::Continue
                        }
                        Some(status) => Action::respond(status, "denied by authz"),
                        None => Action::respond(503, "authz unavailable"),
                    }
                })
            }
            "grpc" => {
                let request = GrpcRequest::new("authz", "wasp.Check", "Run", b"ping".to_vec());
                ctx.grpc_call(request, |_: &mut Auth, ctx, response| {
                    if response.is_ok() {
                        let body = String::from_utf8_lossy(&response.body).into_owned();
                        ctx.request_headers().set("x-grpc-reply", &body);
                        Action::Continue
                    } else {
                        Action::respond(
                            502,
                            format!("grpc {}: {}", response.status, response.message),
                        )
                    }
                })
            }
            "timer" => {
                ctx.set_timer(Duration::from_millis(50), |_: &mut Auth, ctx| {
                    ctx.request_headers().set("x-delayed", "yes");
                    Action::Continue
                });
                Ok(0)
            }
            "detached" => {
                let request = HttpRequest::new("shadow", "POST", "/copy").body(b"copy".to_vec());
                let sent = ctx.http_call_detached(request, |response| {
                    DETACHED_OUTCOMES.with(|o| o.borrow_mut().push(response.status()));
                });
                return match sent {
                    Ok(_) => Action::Continue,
                    Err(e) => Action::respond(500, e.to_string()),
                };
            }
            _ => return Action::Continue,
        };
        match result {
            Ok(_) => Action::Pause,
            Err(e) => Action::respond(500, e.to_string()),
        }
    }
}

fn host() -> Harness {
    let mut host = Harness::new(Root);
    assert!(host.configure(""));
    host
}

#[test]
fn http_callout_is_recorded_and_its_response_resumes_the_stream() {
    let mut host = host();
    let mut stream = host.stream();
    assert_eq!(
        stream.request_headers(&[("x-mode", "http")], true),
        HostAction::Pause
    );
    let calls = host.http_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].cluster, "authz");
    assert_eq!(calls[0].header(":path"), Some("/check"));
    assert_eq!(calls[0].header("x-token"), Some("t1"));
    assert_eq!(calls[0].timeout, Duration::from_millis(250));
    assert_eq!(calls[0].context_id, stream.id());
    assert!(stream.resumed().is_empty());

    host.respond_http_call(calls[0].token, 200, &[("x-verdict", "allow")], b"");
    // Delivered with the root context's id, as Envoy and wasp do; the SDK
    // finds the stream from the token and switches to it.
    assert_eq!(host.callout_deliveries(calls[0].token), [ROOT_ID]);
    assert_eq!(stream.request_header("x-verdict").as_deref(), Some("allow"));
    assert_eq!(stream.resumed(), [StreamType::HttpRequest]);
}

#[test]
fn detached_callout_neither_holds_the_stream_nor_needs_it_alive() {
    let mut host = host();
    let mut stream = host.stream();
    assert_eq!(
        stream.request_headers(&[("x-mode", "detached")], true),
        HostAction::Continue
    );
    let mut failing = host.stream();
    failing.request_headers(&[("x-mode", "detached")], true);
    let calls = host.http_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].body, b"copy");
    // Both streams end before their callouts answer.
    let id = stream.id();
    stream.finish();
    failing.finish();
    host.respond_http_call(calls[0].token, 500, &[], b"");
    host.fail_http_call(calls[1].token);
    assert_eq!(host.callout_deliveries(calls[0].token), [ROOT_ID]);
    assert_eq!(
        DETACHED_OUTCOMES.with(|o| o.borrow().clone()),
        [Some(500), None]
    );
    assert!(
        !host.logged(wasp_filter_sdk::LogLevel::Error, "re-entered"),
        "{:?} (stream {id})",
        host.logs()
    );
}

#[test]
fn failed_or_denied_http_callout_becomes_a_local_reply() {
    let mut host = host();
    let mut denied = host.stream();
    denied.request_headers(&[("x-mode", "http")], true);
    let mut failed = host.stream();
    failed.request_headers(&[("x-mode", "http")], true);
    let calls = host.http_calls();
    host.respond_http_call(calls[0].token, 401, &[], b"");
    host.fail_http_call(calls[1].token);
    assert_eq!(denied.local_reply().unwrap().status, 401);
    let reply = failed.local_reply().unwrap();
    assert_eq!(
        (reply.status, reply.body_text().as_str()),
        (503, "authz unavailable")
    );
    assert!(denied.resumed().is_empty() && failed.resumed().is_empty());
}

#[test]
fn grpc_callout_delivers_message_and_status() {
    let mut host = host();
    let mut ok = host.stream();
    ok.request_headers(&[("x-mode", "grpc")], true);
    let mut bad = host.stream();
    bad.request_headers(&[("x-mode", "grpc")], true);
    let calls = host.grpc_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].service.as_str(), calls[0].method.as_str()),
        ("wasp.Check", "Run")
    );
    assert_eq!(calls[0].message, b"ping");
    host.respond_grpc_call(calls[0].token, b"pong");
    host.fail_grpc_call(calls[1].token, 14, "no healthy upstream");
    assert_eq!(host.callout_deliveries(calls[0].token), [ROOT_ID]);
    assert_eq!(host.callout_deliveries(calls[1].token), [ROOT_ID]);
    assert_eq!(ok.request_header("x-grpc-reply").as_deref(), Some("pong"));
    assert_eq!(ok.resumed(), [StreamType::HttpRequest]);
    let reply = bad.local_reply().unwrap();
    assert_eq!(reply.status, 502);
    assert_eq!(reply.body_text(), "grpc 14: no healthy upstream");
}

#[test]
fn stream_timer_fires_after_its_delay_and_resumes() {
    let mut host = host();
    let mut stream = host.stream();
    assert_eq!(
        stream.request_headers(&[("x-mode", "timer")], true),
        HostAction::Pause
    );
    assert_eq!(host.tick_period(), Some(wasp_filter_sdk::TIMER_GRANULARITY));
    host.advance(Duration::from_millis(30));
    assert_eq!(stream.request_header("x-delayed"), None);
    host.advance(Duration::from_millis(30));
    assert_eq!(stream.request_header("x-delayed").as_deref(), Some("yes"));
    assert_eq!(stream.resumed(), [StreamType::HttpRequest]);
    assert_eq!(
        host.tick_period(),
        None,
        "ticks stop once no timer is pending"
    );
}

#[test]
fn callbacks_of_a_finished_stream_are_dropped() {
    let mut host = host();
    let mut stream = host.stream();
    stream.request_headers(&[("x-mode", "http")], true);
    let token = host.http_calls()[0].token;
    stream.finish();
    host.respond_http_call(token, 200, &[], b"");
    assert!(host.logs().is_empty(), "{:?}", host.logs());
}
