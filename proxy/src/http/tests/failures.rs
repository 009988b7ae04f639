//! Requests the upstream cannot serve: circuit-breaker overflow, connect
//! failures, and a downstream body that fails while it is read.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http::header::HOST;
use http_body::{Body, Frame, SizeHint};

use super::fixture::forward_all;
use super::fixture::{Proxy, Reply, get};
use super::upstream::{Refusing, Upstream};

#[tokio::test]
async fn requests_over_max_requests_get_503_marked_overloaded() {
    let app = Upstream::ok("fine").await;
    let config = forward_all(
        &[app.endpoint()],
        "",
        "circuit_breakers: { max_requests: 1 }",
    );
    let proxy = Proxy::start(&config).await;

    // A response whose body is not sent yet holds its request's slot.
    let first = proxy.respond(get("/")).await;
    assert_eq!(first.status(), 200);
    let overflow = proxy.get("/").await;
    assert_eq!(overflow.status, 503);
    assert_eq!(overflow.header("x-wasp-overloaded"), "true");
    assert_eq!(
        overflow.body,
        "upstream overflow: cluster at its max_requests limit\n"
    );
    let overflows = proxy
        .state
        .metrics
        .upstream_rq_overflow
        .with_label_values(&["app", "max_requests"]);
    assert_eq!(overflows.get(), 1);
    assert_eq!(app.seen().len(), 1, "the overflowing request was not sent");

    assert_eq!(Reply::read(first).await.body, "fine");
    let after = proxy.get("/").await;
    assert_eq!(after.status, 200, "the slot came back with the first body");
    assert!(!after.headers.contains_key("x-wasp-overloaded"));
}

#[tokio::test]
async fn a_refused_connection_answers_503_naming_the_endpoint() {
    let refusing = Refusing::new();
    let endpoint = refusing.endpoint();
    let proxy = Proxy::start(&forward_all(std::slice::from_ref(&endpoint), "", "")).await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 503);
    assert!(
        reply
            .body
            .starts_with(&format!("upstream connect error to {endpoint}: ")),
        "{}",
        reply.body
    );
    assert!(!reply.headers.contains_key("x-wasp-overloaded"));
    let failures = proxy
        .state
        .metrics
        .upstream_cx_connect_fail
        .with_label_values(&["app"]);
    assert_eq!(failures.get(), 1);
}

/// A request body that announces `len` bytes and fails instead.
struct FailingBody {
    len: u64,
}

impl Body for FailingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other("client went away"))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

#[tokio::test]
async fn a_request_body_failing_while_buffered_for_retries_answers_400() {
    let app = Upstream::ok("").await;
    let config = forward_all(&[app.endpoint()], "retry_policy: { num_retries: 1 }", "");
    let proxy = Proxy::start(&config).await;
    let req = Request::post("/")
        .header(HOST, "app.test")
        .body(FailingBody { len: 16 })
        .unwrap();
    let reply = proxy.send(req).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body, "request body read failed: client went away\n");
    assert!(app.seen().is_empty(), "nothing was sent upstream");
}
