//! Stream phases on the mock host: headers (case-insensitive get/set/add/remove),
//! bodies, trailers, pausing, local replies.

use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::testing::{Harness, HostAction, StreamType};

#[derive(Default)]
struct Root;

struct Edit;

impl RootFilter for Root {
    type Config = ();
    type Http = Edit;
    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Edit> {
        Some(Edit)
    }
}

impl HttpFilter for Edit {
    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
        let headers = ctx.request_headers();
        if headers.get("X-Deny").is_some() {
            return Action::Respond(
                403,
                vec![("x-reason".into(), "denied".into())],
                b"forbidden".to_vec(),
            );
        }
        if let Some(code) = headers.get("x-grpc-deny") {
            ctx.respond_grpc(code.parse().unwrap_or(2), "denied by policy");
            return Action::Pause;
        }
        let user = headers.get("X-USER").unwrap_or_default();
        headers.set("x-seen-user", &user);
        headers.add("X-Multi", "two");
        headers.remove("x-secret");
        Action::Continue
    }

    fn on_request_body(&mut self, ctx: &mut HttpCtx<Self>, _: usize, end: bool) -> Action {
        if !end {
            return Action::Pause;
        }
        let mut body = ctx.request_body();
        let upper = body.text().to_uppercase();
        body.replace(upper.as_bytes());
        body.append(b"!");
        Action::Continue
    }

    fn on_request_trailers(&mut self, ctx: &mut HttpCtx<Self>) -> Action {
        let grpc = ctx
            .request_trailers()
            .get("grpc-status")
            .unwrap_or_default();
        ctx.request_trailers().set("x-trailer-seen", &grpc);
        Action::Continue
    }

    fn on_response_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
        ctx.response_headers().set("server", "wasp-filter");
        Action::Continue
    }

    fn on_response_body(&mut self, ctx: &mut HttpCtx<Self>, _: usize, end: bool) -> Action {
        if end {
            ctx.response_body().prepend(b"<<");
        }
        Action::Continue
    }

    fn on_response_trailers(&mut self, ctx: &mut HttpCtx<Self>) -> Action {
        ctx.response_trailers().add("x-done", "yes");
        Action::Continue
    }
}

fn host() -> Harness {
    let mut host = Harness::new(Root);
    assert!(host.configure(""));
    host
}

#[test]
fn headers_are_read_and_edited_case_insensitively() {
    let mut host = host();
    let mut stream = host.stream();
    let action = stream.request_headers(
        &[
            (":path", "/"),
            ("x-user", "ada"),
            ("x-multi", "one"),
            ("X-Secret", "s"),
        ],
        true,
    );
    assert_eq!(action, HostAction::Continue);
    assert_eq!(stream.request_header("x-seen-user").as_deref(), Some("ada"));
    assert_eq!(stream.request_header("x-secret"), None);
    let multi: Vec<_> = stream
        .request_header_list()
        .into_iter()
        .filter(|(k, _)| k == "x-multi")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(multi, ["one", "two"]);
}

#[test]
fn body_is_buffered_until_end_of_stream_then_rewritten() {
    let mut host = host();
    let mut stream = host.stream();
    stream.request_headers(&[(":path", "/")], false);
    assert_eq!(stream.request_body(b"hello ", false), HostAction::Pause);
    assert_eq!(stream.request_body(b"world", true), HostAction::Continue);
    assert_eq!(stream.request_body_bytes(), b"HELLO WORLD!");
    stream.response_headers(&[(":status", "200")], false);
    stream.response_body(b"resp", true);
    assert_eq!(stream.response_body_bytes(), b"<<resp");
    assert_eq!(
        stream.response_header("server").as_deref(),
        Some("wasp-filter")
    );
}

#[test]
fn trailers_are_read_and_written() {
    let mut host = host();
    let mut stream = host.stream();
    stream.request_headers(&[(":path", "/")], false);
    stream.request_trailers(&[("grpc-status", "0")]);
    assert_eq!(
        stream.request_trailer("x-trailer-seen").as_deref(),
        Some("0")
    );
    stream.response_trailers(&[]);
    assert_eq!(stream.response_trailer("x-done").as_deref(), Some("yes"));
}

#[test]
fn respond_sends_a_local_reply_and_stops_the_stream() {
    let mut host = host();
    let mut stream = host.stream();
    let action = stream.request_headers(&[(":path", "/"), ("x-deny", "1")], true);
    assert_eq!(action, HostAction::Pause);
    let reply = stream.local_reply().expect("a local reply");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body_text(), "forbidden");
    assert_eq!(reply.header("x-reason"), Some("denied"));
    assert!(stream.resumed().is_empty());
    assert!(!stream.resumed().contains(&StreamType::HttpRequest));
}

#[test]
fn grpc_reply_carries_its_grpc_status_and_message() {
    let mut host = host();
    let mut stream = host.stream();
    assert_eq!(
        stream.request_headers(&[("x-grpc-deny", "7")], true),
        HostAction::Pause
    );
    let reply = stream.local_reply().expect("a local reply");
    assert_eq!(
        (reply.status, reply.grpc_status, reply.body_text().as_str()),
        (200, Some(7), "denied by policy")
    );
}
