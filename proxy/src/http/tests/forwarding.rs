//! Forwarding to an upstream: what the upstream receives (forwarding
//! headers, request id, hop-by-hop headers removed, rewrites, the body) and
//! what the client gets back.

use bytes::Bytes;
use http::header::HOST;
use http::{Request, Response};
use http_body_util::Full;

use super::fixture::{CLIENT, Proxy};
use super::upstream::Upstream;

/// A listener sending everything to cluster `app` at `endpoint`.
fn forward_all(endpoint: &str) -> String {
    format!(
        r#"
listeners:
  - name: ingress
    address: 127.0.0.1:8080
    routes:
      - match: {{ prefix: /api }}
        route: {{ cluster: app, prefix_rewrite: /v2, host_rewrite: backend.internal }}
      - match: {{ prefix: / }}
        route: {{ cluster: app }}
clusters:
  - name: app
    endpoints: ["{endpoint}"]
"#
    )
}

#[tokio::test]
async fn forwarded_request_gets_forwarding_headers_and_a_request_id() {
    let app = Upstream::ok("hello").await;
    let proxy = Proxy::start(&forward_all(&app.endpoint())).await;
    let reply = proxy.get("/hello?x=1").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "hello");

    let [seen] = app.seen().try_into().unwrap();
    assert_eq!(seen.uri, "/hello?x=1");
    assert_eq!(seen.header("host"), Some("app.test"));
    let client_ip = CLIENT.split(':').next().unwrap();
    assert_eq!(seen.header("x-forwarded-for"), Some(client_ip));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    let id = seen.header("x-request-id").expect("a generated request id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id} is a UUID");
}

#[tokio::test]
async fn behind_a_trusted_hop_forwarding_headers_are_extended_or_kept() {
    let app = Upstream::ok("").await;
    let config =
        forward_all(&app.endpoint()).replace("    routes:", "    trusted_hops: 1\n    routes:");
    let proxy = Proxy::start(&config).await;
    let req = Request::get("/")
        .header(HOST, "app.test")
        .header("x-forwarded-for", "198.51.100.1")
        .header("x-forwarded-proto", "https")
        .header("x-request-id", "abc-123")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(proxy.send(req).await.status, 200);

    let [seen] = app.seen().try_into().unwrap();
    let client_ip = CLIENT.split(':').next().unwrap();
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some(format!("198.51.100.1, {client_ip}").as_str())
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-request-id"), Some("abc-123"));
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_not_forwarded() {
    let app = Upstream::ok("").await;
    let proxy = Proxy::start(&forward_all(&app.endpoint())).await;
    let req = Request::get("/")
        .header(HOST, "app.test")
        .header("connection", "x-private")
        .header("x-private", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "gzip")
        .header("x-end-to-end", "kept")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(proxy.send(req).await.status, 200);

    let [seen] = app.seen().try_into().unwrap();
    for name in [
        "x-private",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
    ] {
        assert_eq!(seen.header(name), None, "`{name}` reached the upstream");
    }
    assert_ne!(seen.header("connection"), Some("x-private"));
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_not_relayed() {
    let app = Upstream::start(|_, _| {
        let response = Response::builder()
            .header("proxy-authenticate", "Basic")
            .header("keep-alive", "timeout=5")
            .header("x-from-app", "yes")
            .body(Full::new(Bytes::from_static(b"body")))
            .unwrap();
        Some(response)
    })
    .await;
    let proxy = Proxy::start(&forward_all(&app.endpoint())).await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "body");
    assert!(!reply.headers.contains_key("proxy-authenticate"));
    assert!(!reply.headers.contains_key("keep-alive"));
    assert_eq!(reply.header("x-from-app"), "yes");
}

#[tokio::test]
async fn prefix_and_host_rewrites_change_path_and_host_keeping_the_query() {
    let app = Upstream::ok("").await;
    let proxy = Proxy::start(&forward_all(&app.endpoint())).await;
    assert_eq!(proxy.get("/api/users?page=2").await.status, 200);
    assert_eq!(proxy.get("/api").await.status, 200);

    let [users, root] = app.seen().try_into().unwrap();
    assert_eq!(users.uri, "/v2/users?page=2");
    assert_eq!(users.header("host"), Some("backend.internal"));
    assert_eq!(root.uri, "/v2");
}

#[tokio::test]
async fn request_body_reaches_the_upstream() {
    let app = Upstream::start(|_, seen| Some(Response::new(Full::new(seen.body.clone())))).await;
    let proxy = Proxy::start(&forward_all(&app.endpoint())).await;
    let req = Request::post("/echo")
        .header(HOST, "app.test")
        .body(Full::new(Bytes::from_static(b"ping")))
        .unwrap();
    let reply = proxy.send(req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "ping");
    let [seen] = app.seen().try_into().unwrap();
    assert_eq!(seen.method, "POST");
}
