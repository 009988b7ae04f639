//! Route and per-try timeouts, on tokio's paused clock: the upstream
//! accepts and never answers, the clock jumps to the next timer whenever
//! the runtime is idle, and each test asserts the exact deadline its
//! response came at (and fails, instead of hanging, if no timeout fires).

use std::time::Duration;

use tokio::time::Instant;

use super::fixture::forward_all;
use super::fixture::{Proxy, Reply};
use super::upstream::Upstream;

/// Far beyond every timeout configured here: a request still unanswered
/// then was not timed out by the proxy.
const GIVE_UP: Duration = Duration::from_secs(600);

/// `GET /` through `proxy`, and the (virtual) time its response took.
async fn timed_get(proxy: &Proxy) -> (Reply, Duration) {
    let start = Instant::now();
    let reply = tokio::time::timeout(GIVE_UP, proxy.get("/"))
        .await
        .expect("the proxy answers before the test gives up");
    (reply, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn route_timeout_answers_504_at_the_deadline() {
    let app = Upstream::silent().await;
    let proxy = Proxy::start(&forward_all(&[app.endpoint()], "timeout: 3s", "")).await;

    let (reply, took) = timed_get(&proxy).await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.body, "upstream request timeout\n");
    assert_eq!(took, Duration::from_secs(3));
    assert_eq!(app.seen().len(), 1, "the request reached the upstream");
    let timeouts = proxy
        .state
        .metrics
        .upstream_rq_timeout
        .with_label_values(&["app"]);
    assert_eq!(timeouts.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn route_timeout_of_zero_waits_for_the_upstream() {
    let app = Upstream::silent().await;
    let config = forward_all(&[app.endpoint()], "timeout: 0s", "")
        .replace("    routes:", "    stream_idle_timeout: 0s\n    routes:");
    let proxy = Proxy::start(&config).await;
    let waited = tokio::time::timeout(GIVE_UP, proxy.get("/")).await;
    assert!(
        waited.is_err(),
        "no timeout: still waiting after {GIVE_UP:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_answers_504_before_the_route_timeout() {
    let app = Upstream::silent().await;
    let route = "timeout: 30s, retry_policy: { num_retries: 0, per_try_timeout: 2s }";
    let proxy = Proxy::start(&forward_all(&[app.endpoint()], route, "")).await;

    let (reply, took) = timed_get(&proxy).await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.body, "upstream per-try timeout after 2s\n");
    assert_eq!(reply.header("x-wasp-attempt-count"), "1");
    assert_eq!(took, Duration::from_secs(2));
    let per_try = proxy
        .state
        .metrics
        .upstream_rq_per_try_timeout
        .with_label_values(&["app"]);
    assert_eq!(per_try.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn per_try_timeouts_are_retried_until_retries_run_out() {
    let app = Upstream::silent().await;
    let route = "timeout: 30s, retry_policy: \
        { num_retries: 2, retry_on: [reset], per_try_timeout: 1s, base_interval: 100ms }";
    let proxy = Proxy::start(&forward_all(&[app.endpoint()], route, "")).await;

    let (reply, took) = timed_get(&proxy).await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.body, "upstream per-try timeout after 1s\n");
    assert_eq!(reply.header("x-wasp-attempt-count"), "3");
    assert_eq!(app.seen().len(), 3);
    // Three tries of 1s, and two back-offs of at most 100ms and 200ms.
    assert!(
        took >= Duration::from_secs(3) && took <= Duration::from_millis(3300),
        "took {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn route_timeout_spans_retries_and_cuts_the_last_try_short() {
    let app = Upstream::silent().await;
    let route = "timeout: 2500ms, retry_policy: \
        { num_retries: 5, retry_on: [reset], per_try_timeout: 1s, base_interval: 1ms }";
    let proxy = Proxy::start(&forward_all(&[app.endpoint()], route, "")).await;

    let (reply, took) = timed_get(&proxy).await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.body, "upstream request timeout\n");
    assert_eq!(took, Duration::from_millis(2500));
    assert_eq!(app.seen().len(), 3, "tries at 0s, ~1s and ~2s");
}

#[tokio::test(start_paused = true)]
async fn the_default_stream_idle_timeout_answers_408_after_five_minutes() {
    let app = Upstream::silent().await;
    let proxy = Proxy::start(&forward_all(&[app.endpoint()], "timeout: 0s", "")).await;
    let (reply, took) = timed_get(&proxy).await;
    assert_eq!(reply.status, 408);
    assert_eq!(reply.headers["connection"], "close");
    assert_eq!(took, Duration::from_secs(300));
    let expired = proxy
        .state
        .metrics
        .downstream_rq_idle_timeout
        .with_label_values(&["ingress"]);
    assert_eq!(expired.get(), 1);
}
