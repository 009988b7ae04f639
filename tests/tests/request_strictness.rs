//! What the proxy refuses of a client's request, through the real binary on
//! raw sockets where the bytes matter: a malformed chunked body (400, the
//! connection closes, the upstream's health untouched), a bad or missing
//! `Host` (400), a header block over the listener's limits (431 on
//! HTTP/1.1 and HTTP/2 alike), a transfer coding other than chunked (501).

use std::net::SocketAddr;

use http::Request;
use wasp_e2e::client::{self, Client};
use wasp_e2e::{Cluster, Config, Listener, RawConn, RawResponse, Route, Upstream, Wasp, free_addr};

/// One listener routing everything to `up`, whose single endpoint is ejected
/// after 3 failures in a row.
fn config(listen: SocketAddr, up: &Upstream) -> Config {
    Config::new()
        .listener(Listener::new("main", listen).route(Route::any().cluster("up")))
        .cluster(
            Cluster::new("up")
                .endpoint(up.addr)
                .outlier_detection(3, "30s", 100),
        )
}

/// Sends `bytes` on a fresh connection; the response and whether the proxy
/// closed the connection after it.
async fn exchange(listen: SocketAddr, bytes: &[u8]) -> (RawResponse, bool) {
    let mut conn = RawConn::connect(listen).await;
    conn.send(bytes).await;
    let response = conn.response().await.expect("a response");
    let closed = conn.closed().await;
    (response, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_body_is_400_and_never_counts_against_the_endpoint() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let wasp = Wasp::start(config(listen, &up)).await;
    let head = "POST /upload HTTP/1.1\r\nhost: app.test\r\ntransfer-encoding: chunked\r\n\r\n";
    let bodies = [
        "zz\r\nhello\r\n0\r\n\r\n",                  // bad hex size
        "fffffffffffffffffff\r\nhello\r\n0\r\n\r\n", // size overflow
        "5\nhello\n0\n\n",                           // bare LF
    ];
    // Twice each: six framing errors, more than outlier detection's three.
    for body in bodies.iter().chain(&bodies) {
        let (response, closed) = exchange(listen, format!("{head}{body}").as_bytes()).await;
        assert_eq!(response.status, 400, "{body:?}: {response:?}");
        assert_eq!(response.header("connection"), Some("close"), "{body:?}");
        assert!(
            closed,
            "{body:?}: the connection closes after a framing error"
        );
    }
    let healthy = client::get(&format!("http://{listen}/after"))
        .await
        .unwrap();
    assert_eq!(healthy.status, 200, "the endpoint was not ejected");
    let metrics = wasp.metrics().await;
    assert_eq!(
        metrics.sum("wasp_upstream_ejections_total", &[("cluster", "up")]),
        0.0
    );
    assert_eq!(
        metrics.sum("wasp_upstream_rq_retry_total", &[("cluster", "up")]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_duplicate_or_malformed_host_is_400() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let _wasp = Wasp::start(config(listen, &up)).await;
    let cases = [
        ("missing", "GET / HTTP/1.1\r\n\r\n"),
        (
            "two",
            "GET / HTTP/1.1\r\nhost: a.test\r\nhost: b.test\r\n\r\n",
        ),
        ("invalid", "GET / HTTP/1.1\r\nhost: a b/c?d@e\r\n\r\n"),
        ("user info", "GET / HTTP/1.1\r\nhost: user@a.test\r\n\r\n"),
    ];
    for (what, request) in cases {
        let (response, closed) = exchange(listen, request.as_bytes()).await;
        assert_eq!(response.status, 400, "{what}: {response:?}");
        assert!(closed, "{what}");
    }
    assert_eq!(up.hits(), 0, "no refused request reaches the upstream");
    // HTTP/1.0 may omit Host; a port and an IP literal are fine.
    for request in [
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a.test:8080\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: [::1]:80\r\n\r\n",
    ] {
        let mut conn = RawConn::connect(listen).await;
        conn.send(request.as_bytes()).await;
        let response = conn.response().await.expect("a response");
        assert_eq!(response.status, 200, "{request:?}: {response:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_coding_other_than_chunked_is_501() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let _wasp = Wasp::start(config(listen, &up)).await;
    let request = "POST / HTTP/1.1\r\nhost: app.test\r\ntransfer-encoding: gzip, chunked\r\n\r\n\
                   5\r\nhello\r\n0\r\n\r\n";
    let (response, closed) = exchange(listen, request.as_bytes()).await;
    assert_eq!(response.status, 501, "{response:?}");
    assert!(closed);
    assert_eq!(up.hits(), 0, "the coding is not dropped silently");
}

/// A request to `listen` whose header block (method, path, authority, other
/// names and values) is `size` bytes, most of it in one `x-big` header.
fn sized_request(listen: SocketAddr, size: usize) -> Request<client::Body> {
    let authority = listen.to_string();
    let fixed = "GET".len() + "/big".len() + authority.len() + "x-big".len();
    Request::get(format!("http://{authority}/big"))
        .header("x-big", "v".repeat(size - fixed))
        .body(client::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_blocks_get_the_same_limit_on_http1_and_http2() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .set("max_request_headers_kb", 24)
                .set("max_request_headers_count", 20)
                .route(Route::any().cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr));
    let _wasp = Wasp::start(config).await;
    let url = format!("http://{listen}/big");
    for (protocol, client) in [("http/1.1", Client::http1()), ("h2c", Client::h2c())] {
        // At the limit: forwarded (HTTP/2 used to refuse from 16 KiB).
        let at = client
            .request(sized_request(listen, 24 * 1024))
            .await
            .unwrap();
        assert_eq!(at.status, 200, "{protocol}: {}", at.text());
        let over = client
            .request(sized_request(listen, 24 * 1024 + 1))
            .await
            .unwrap();
        assert_eq!(over.status, 431, "{protocol}: {}", over.text());
        // Far over: hyper's own guard answers, with the same status.
        let far = client.request(sized_request(listen, 64 * 1024)).await;
        assert_eq!(far.map(|r| r.status).ok(), Some(431), "{protocol}");
        // 21 fields (host included) against a limit of 20.
        let mut many = Request::get(&url);
        for i in 0..20 {
            many = many.header(format!("x-h{i}"), "1");
        }
        let many = client.request(many.body(client::empty()).unwrap()).await;
        assert_eq!(many.map(|r| r.status).ok(), Some(431), "{protocol}");
    }
    // A fresh client: the refusals above closed HTTP/1.1 connections.
    let fine = client::get(&url).await.unwrap();
    assert_eq!(fine.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_header_limit_is_60_kib() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let _wasp = Wasp::start(config(listen, &up)).await;
    // A 64 KiB header block over HTTP/1.1 used to be forwarded.
    let raw = format!(
        "GET /big HTTP/1.1\r\nhost: app.test\r\nx-big: {}\r\n\r\n",
        "v".repeat(64 * 1024)
    );
    let (response, closed) = exchange(listen, raw.as_bytes()).await;
    assert_eq!(response.status, 431, "{response:?}");
    assert!(closed);
    let within = Client::h2c()
        .request(sized_request(listen, 60 * 1024))
        .await
        .unwrap();
    assert_eq!(within.status, 200, "60 KiB passes over HTTP/2 too");
    assert_eq!(up.hits(), 1);
}
