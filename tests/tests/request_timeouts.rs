//! A listener's request timeouts and the headers it trusts, through the real
//! binary on raw sockets: `request_timeout` and `stream_idle_timeout` end a
//! dribbled request (408) or a stalled response (reset), counted in
//! metrics; `idle_timeout: 0s` means no idle timeout; `trusted_hops`
//! decides whether `x-forwarded-*` from the client survive.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use wasp_e2e::client::Client;
use wasp_e2e::{Cluster, Config, Listener, RawConn, RawUpstream, Route, Upstream, Wasp, free_addr};

/// One listener (with `setting: value`) routing everything to `up`.
fn config(listen: SocketAddr, up: SocketAddr, setting: &str, value: &str) -> Config {
    Config::new()
        .listener(
            Listener::new("main", listen)
                .set(setting, value)
                .route(Route::any().cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up))
}

/// Requests of listener `main` cut by an idle timeout.
async fn idle_timeouts(wasp: &Wasp) -> f64 {
    let metrics = wasp.metrics().await;
    metrics.sum(
        "wasp_downstream_rq_idle_timeout_total",
        &[("listener", "main")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_received_within_request_timeout_gets_408() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let wasp = Wasp::start(config(listen, up.addr, "request_timeout", "1s")).await;
    let mut conn = RawConn::connect(listen).await;
    let started = Instant::now();
    conn.send(b"POST /slow HTTP/1.1\r\nhost: app.test\r\ncontent-length: 100\r\n\r\n")
        .await;
    // A byte every 200 ms keeps the stream active, but the request is not
    // complete within a second.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        conn.send(b"x").await;
    }
    let response = conn.response().await.expect("a response");
    assert_eq!(response.status, 408, "{response:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(conn.closed().await);
    let metrics = wasp.metrics().await;
    assert_eq!(
        metrics.sum("wasp_downstream_rq_timeout_total", &[("listener", "main")]),
        1.0
    );
    // A request received in time is not affected.
    let fine = Client::http1()
        .get(&format!("http://{listen}/fast"))
        .await
        .unwrap();
    assert_eq!(fine.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_idle_for_stream_idle_timeout_gets_408() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let wasp = Wasp::start(config(listen, up.addr, "stream_idle_timeout", "1s")).await;
    let mut conn = RawConn::connect(listen).await;
    let started = Instant::now();
    conn.send(b"POST /stall HTTP/1.1\r\nhost: app.test\r\ncontent-length: 10\r\n\r\nab")
        .await;
    let response = conn.response().await.expect("a response");
    assert_eq!(response.status, 408, "{response:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(conn.closed().await);
    assert_eq!(idle_timeouts(&wasp).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_stalled_for_stream_idle_timeout_is_cut() {
    let listen = free_addr();
    // Headers and 3 of 100 body bytes, then silence.
    let up =
        RawUpstream::start(|_| b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc".to_vec()).await;
    let wasp = Wasp::start(config(listen, up.addr, "stream_idle_timeout", "1s")).await;
    let mut conn = RawConn::connect(listen).await;
    conn.get("/stalled", "app.test").await;
    let response = conn.response().await.expect("a response");
    assert_eq!(response.status, 200);
    assert!(!response.complete, "the stalled body is cut: {response:?}");
    assert_eq!(idle_timeouts(&wasp).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_zero_means_no_idle_timeout() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let wasp = Wasp::start(config(listen, up.addr, "idle_timeout", "0s")).await;
    // Keep-alive requests with pauses between them are all answered.
    let mut conn = RawConn::connect(listen).await;
    for i in 0..3 {
        conn.get(&format!("/keep/{i}"), "app.test").await;
        let response = conn.response().await.expect("a kept-alive response");
        assert_eq!(response.status, 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // A fresh connection is answered too.
    let mut fresh = RawConn::connect(listen).await;
    fresh.get("/fresh", "app.test").await;
    assert_eq!(fresh.response().await.expect("a response").status, 200);
    let metrics = wasp.metrics().await;
    assert_eq!(
        metrics.sum(
            "wasp_downstream_cx_idle_timeout_total",
            &[("listener", "main")]
        ),
        0.0
    );
}

/// What the upstream saw of `x-forwarded-for` / `x-forwarded-proto` for a
/// request claiming both, through a listener with `trusted_hops`.
async fn forwarded_through(trusted_hops: u32) -> (String, String) {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .set("trusted_hops", trusted_hops)
                .route(Route::any().cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr));
    let _wasp = Wasp::start(config).await;
    let echo = Client::http1()
        .get_with(
            &format!("http://{listen}/who"),
            &[
                ("x-forwarded-for", "6.6.6.6, 10.0.0.1"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await
        .unwrap()
        .json();
    let headers = &echo["headers"];
    (
        headers["x-forwarded-for"].as_str().unwrap().to_owned(),
        headers["x-forwarded-proto"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_listener_overwrites_forwarded_headers() {
    let (xff, proto) = forwarded_through(0).await;
    assert_eq!(xff, "127.0.0.1");
    assert_eq!(proto, "http");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_hop_forwarded_headers_are_kept() {
    let (xff, proto) = forwarded_through(1).await;
    assert_eq!(xff, "10.0.0.1, 127.0.0.1", "only the trusted hop's entry");
    assert_eq!(proto, "https");
}
