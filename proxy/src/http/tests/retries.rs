//! Retries: which results a route's retry policy retries, how many
//! attempts it makes, and `x-wasp-attempt-count` both ways.

use super::fixture::{Proxy, forward_all};
use super::upstream::{Refusing, Upstream};

#[tokio::test]
async fn a_503_is_retried_until_an_attempt_succeeds() {
    let app = Upstream::statuses(&[503, 503, 200]).await;
    let endpoints = [app.endpoint()];
    let policy = "{ num_retries: 2, retry_on: [5xx], base_interval: 1ms }";
    let proxy = Proxy::start(&forward_all(
        &endpoints,
        &format!("retry_policy: {policy}"),
        "",
    ))
    .await;

    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-wasp-attempt-count"), "3");
    assert_eq!(
        reply.body, "3",
        "the upstream saw the third attempt's count"
    );
    let counts: Vec<_> = app
        .seen()
        .iter()
        .map(|seen| seen.header("x-wasp-attempt-count").unwrap().to_owned())
        .collect();
    assert_eq!(counts, ["1", "2", "3"]);
    let retries = proxy
        .state
        .metrics
        .upstream_rq_retry
        .with_label_values(&["app"]);
    assert_eq!(retries.get(), 2);
}

#[tokio::test]
async fn the_last_503_is_relayed_when_retries_run_out() {
    let app = Upstream::statuses(&[503]).await;
    let endpoints = [app.endpoint()];
    let policy = "{ num_retries: 1, retry_on: [5xx], base_interval: 1ms }";
    let proxy = Proxy::start(&forward_all(
        &endpoints,
        &format!("retry_policy: {policy}"),
        "",
    ))
    .await;

    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("x-wasp-attempt-count"), "2");
    assert_eq!(reply.body, "2", "the upstream's own response");
    assert_eq!(app.seen().len(), 2);
}

#[tokio::test]
async fn statuses_outside_retry_on_are_not_retried() {
    let app = Upstream::statuses(&[503, 200]).await;
    let endpoints = [app.endpoint()];
    let policy = "{ num_retries: 2, retry_on: [retriable-4xx], base_interval: 1ms }";
    let proxy = Proxy::start(&forward_all(
        &endpoints,
        &format!("retry_policy: {policy}"),
        "",
    ))
    .await;

    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("x-wasp-attempt-count"), "1");
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test]
async fn a_connect_failure_is_retried_on_another_endpoint() {
    let app = Upstream::ok("second endpoint").await;
    let refusing = Refusing::new();
    let endpoints = [refusing.endpoint(), app.endpoint()];
    let policy = "{ num_retries: 1, retry_on: [connect-failure], base_interval: 1ms }";
    let proxy = Proxy::start(&forward_all(
        &endpoints,
        &format!("retry_policy: {policy}"),
        "",
    ))
    .await;

    // Round robin may start on either endpoint; whichever it is, no request
    // fails and each refused connection costs one retry.
    for _ in 0..2 {
        let reply = proxy.get("/").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, "second endpoint");
    }
    let retries = proxy
        .state
        .metrics
        .upstream_rq_retry
        .with_label_values(&["app"]);
    assert!(retries.get() >= 1, "a refused connection was retried");
    assert_eq!(app.seen().len(), 2);
}

#[tokio::test]
async fn routes_without_retry_policy_send_no_attempt_count() {
    let app = Upstream::statuses(&[503, 200]).await;
    let proxy = Proxy::start(&forward_all(&[app.endpoint()], "", "")).await;

    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 503);
    assert!(!reply.headers.contains_key("x-wasp-attempt-count"));
    assert_eq!(app.seen()[0].header("x-wasp-attempt-count"), None);
}
