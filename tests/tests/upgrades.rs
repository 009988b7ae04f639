//! Protocol upgrades on raw sockets: only protocols a route allows are
//! tunnelled, `h2c` upgrade headers never reach the upstream, and an
//! upstream switching protocols unasked gets a 502; in no case can later
//! bytes from the client bypass routing inside a tunnel.

use std::net::SocketAddr;

use wasp_e2e::{Cluster, Config, Listener, RawConn, RawUpstream, Route, Wasp, free_addr};

/// An upstream that answers every request `101 Switching Protocols`,
/// naming `protocol`, or the protocol the request asked for when `None`.
async fn switching_upstream(protocol: Option<&'static str>) -> RawUpstream {
    RawUpstream::start(move |head| {
        let asked = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("upgrade").then(|| value.trim())
            })
            .unwrap_or("none");
        let protocol = protocol.unwrap_or(asked);
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: {protocol}\r\n\r\n"
        )
        .into_bytes()
    })
    .await
}

/// `/routed` answered by the proxy itself; everything else to `up`, whose
/// route takes the extra `route_fields` (e.g. `upgrade`).
async fn start(up: &RawUpstream, route: Route) -> (Wasp, SocketAddr) {
    let listen = free_addr();
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/routed").direct(200, "routed"))
                .route(route.cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr));
    (Wasp::start(config).await, listen)
}

/// A request asking to switch to `protocol`, with `extra` header lines.
fn upgrade_request(protocol: &str, extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nhost: app.test\r\nconnection: Upgrade\r\nupgrade: {protocol}\r\n{extra}\r\n"
    )
}

/// Sends `GET /routed` on `conn` and checks the proxy routed it.
async fn assert_routed(conn: &mut RawConn) {
    conn.get("/routed", "app.test").await;
    let response = conn
        .response()
        .await
        .expect("a response to the next request");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "routed");
}

#[tokio::test]
async fn an_upgrade_the_route_does_not_allow_is_refused_and_the_connection_closed() {
    let up = switching_upstream(None).await;
    let (_wasp, listen) = start(&up, Route::any()).await;
    let mut conn = RawConn::connect(listen).await;
    // The request and a smuggled one behind it, in one write.
    let smuggled = "GET /smuggled HTTP/1.1\r\nhost: app.test\r\n\r\n";
    conn.send(format!("{}{smuggled}", upgrade_request("foo/1", "")).as_bytes())
        .await;
    let response = conn.response().await.expect("a response");
    assert_eq!(response.status, 403, "{}", response.text());
    assert_eq!(response.header("connection"), Some("close"));
    assert!(conn.closed().await, "the connection closes after a refusal");
    assert!(
        up.heads().is_empty(),
        "the upstream saw {:?}",
        up.received()
    );
}

#[tokio::test]
async fn h2c_upgrade_headers_are_stripped_and_an_unasked_101_is_a_502() {
    let up = switching_upstream(None).await;
    let (_wasp, listen) = start(&up, Route::any()).await;
    let mut conn = RawConn::connect(listen).await;
    conn.send(upgrade_request("h2c", "http2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n").as_bytes())
        .await;
    let response = conn.response().await.expect("a response");
    assert_eq!(response.status, 502, "{}", response.text());
    let head = up.heads().concat().to_ascii_lowercase();
    assert!(!head.contains("upgrade"), "{head}");
    assert!(!head.contains("http2-settings"), "{head}");
    // The next request on the connection is routed, not tunnelled.
    assert_routed(&mut conn).await;
    assert!(!up.received().contains("/routed"), "{}", up.received());
}

#[tokio::test]
async fn a_101_for_another_protocol_than_the_one_asked_is_a_502() {
    let up = switching_upstream(Some("foo")).await;
    let (_wasp, listen) = start(&up, Route::any()).await;
    let mut conn = RawConn::connect(listen).await;
    conn.send(upgrade_request("websocket", "").as_bytes()).await;
    let response = conn.response().await.expect("a response");
    assert_eq!(response.status, 502, "{}", response.text());
    assert_routed(&mut conn).await;
    assert!(!up.received().contains("/routed"), "{}", up.received());
}

#[tokio::test]
async fn a_101_to_a_plain_request_is_a_502() {
    let up = switching_upstream(Some("websocket")).await;
    let (_wasp, listen) = start(&up, Route::any()).await;
    let mut conn = RawConn::connect(listen).await;
    conn.get("/plain", "app.test").await;
    let response = conn.response().await.expect("a response");
    assert_eq!(response.status, 502, "{}", response.text());
    assert_routed(&mut conn).await;
    assert!(!up.received().contains("/routed"), "{}", up.received());
}

#[tokio::test]
async fn a_protocol_the_route_allows_is_tunnelled() {
    let up = switching_upstream(None).await;
    let (_wasp, listen) = start(&up, Route::any().forward("upgrade", ["foo/1"])).await;
    let mut conn = RawConn::connect(listen).await;
    conn.send(upgrade_request("foo/1", "").as_bytes()).await;
    let response = conn.response().await.expect("a response");
    assert_eq!(response.status, 101);
    assert_eq!(response.header("upgrade"), Some("foo/1"));
    conn.send(b"raw bytes of foo/1").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !up.received().contains("raw bytes of foo/1") {
        assert!(std::time::Instant::now() < deadline, "{}", up.received());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn websocket_is_refused_on_a_route_with_no_upgrades() {
    let up = switching_upstream(None).await;
    let empty: [&str; 0] = [];
    let (_wasp, listen) = start(&up, Route::any().forward("upgrade", empty)).await;
    let mut conn = RawConn::connect(listen).await;
    conn.send(upgrade_request("websocket", "").as_bytes()).await;
    let response = conn.response().await.expect("a response");
    assert_eq!(response.status, 403, "{}", response.text());
    assert!(up.heads().is_empty());
}
