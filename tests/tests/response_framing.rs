//! How upstream response bodies are framed to the client, checked on raw
//! sockets: `transfer-encoding` overrides `content-length` (RFC 9112 §6.3),
//! so a response carrying both reaches the client chunked and whole, and a
//! body the upstream cut short never looks complete.

use wasp_e2e::{
    Cluster, Config, Listener, RawConn, RawResponse, RawUpstream, Route, Wasp, free_addr,
};

/// Head of a response that has both framings; `content-length` says 5.
const BOTH_FRAMINGS: &str =
    "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n";

/// `GET /` through a proxy in front of `up`, the response as it came.
async fn fetch(up: &RawUpstream) -> RawResponse {
    let listen = free_addr();
    let config = Config::new()
        .listener(Listener::new("main", listen).route(Route::any().cluster("up")))
        .cluster(Cluster::new("up").endpoint(up.addr));
    let _wasp = Wasp::start(config).await;
    let mut conn = RawConn::connect(listen).await;
    conn.get("/", "app.test").await;
    conn.response().await.expect("a response")
}

#[tokio::test]
async fn content_length_with_chunked_is_relayed_chunked_and_whole() {
    let up = RawUpstream::start(|_| {
        format!("{BOTH_FRAMINGS}6\r\nhello \r\n11\r\nfrom the upstream\r\n0\r\n\r\n").into_bytes()
    })
    .await;
    let response = fetch(&up).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), None, "{response:?}");
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert!(response.complete);
    assert_eq!(response.text(), "hello from the upstream");
}

#[tokio::test]
async fn a_cut_body_with_both_framings_never_looks_complete() {
    // One chunk longer than the content-length, then the connection closes
    // without the last chunk.
    let up =
        RawUpstream::start_closing(|_| format!("{BOTH_FRAMINGS}b\r\nhello world\r\n").into_bytes())
            .await;
    let response = fetch(&up).await;
    assert_eq!(response.status, 200);
    assert!(!response.complete, "{response:?}");
}

#[tokio::test]
async fn a_cut_chunked_body_never_looks_complete() {
    let up = RawUpstream::start_closing(|_| {
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nb\r\nhello world\r\n"
            .as_bytes()
            .to_vec()
    })
    .await;
    let response = fetch(&up).await;
    assert_eq!(response.status, 200);
    assert!(!response.complete, "{response:?}");
}

#[tokio::test]
async fn a_cut_body_with_content_length_never_looks_complete() {
    let up = RawUpstream::start_closing(|_| {
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly eleven".to_vec()
    })
    .await;
    let response = fetch(&up).await;
    assert_eq!(response.status, 200);
    assert!(!response.complete, "{response:?}");
}
