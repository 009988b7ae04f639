//! Responses the proxy makes without an upstream: no route, direct
//! responses and redirects.

use http::Request;
use http::header::{CONTENT_TYPE, HOST, LOCATION};
use http_body_util::Empty;

use super::fixture::Proxy;

const CONFIG: &str = r#"
listeners:
  - name: ingress
    address: 127.0.0.1:8080
    routes:
      - match: { path: /healthz }
        direct_response: { status: 200, body: "ok\n" }
      - match: { path: /gone }
        direct_response: { status: 410 }
      - match: { prefix: /old }
        redirect: { scheme: https, host: new.example.com, path: /new, status: 301 }
      - match: { prefix: /moved }
        redirect: { path: /here, strip_query: true, status: 302 }
"#;

#[tokio::test]
async fn no_matching_route_answers_404_naming_host_and_path() {
    let proxy = Proxy::start(CONFIG).await;
    let reply = proxy.get("/nowhere?x=1").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body, "no route matched app.test/nowhere\n");
    assert_eq!(reply.header("content-type"), "text/plain; charset=utf-8");
}

#[tokio::test]
async fn direct_response_answers_with_its_status_and_body() {
    let proxy = Proxy::start(CONFIG).await;
    let reply = proxy.get("/healthz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "ok\n");
    assert_eq!(reply.header("content-type"), "text/plain; charset=utf-8");
}

#[tokio::test]
async fn direct_response_without_body_has_no_content_type() {
    let proxy = Proxy::start(CONFIG).await;
    let reply = proxy.get("/gone").await;
    assert_eq!(reply.status, 410);
    assert_eq!(reply.body, "");
    assert!(!reply.headers.contains_key(CONTENT_TYPE));
}

#[tokio::test]
async fn redirect_replaces_the_configured_parts_and_keeps_the_query() {
    let proxy = Proxy::start(CONFIG).await;
    let reply = proxy.get("/old/page?q=1").await;
    assert_eq!(reply.status, 301);
    assert_eq!(reply.header("location"), "https://new.example.com/new?q=1");
    assert_eq!(reply.body, "");
}

#[tokio::test]
async fn redirect_keeps_the_request_scheme_and_authority_with_its_port() {
    let proxy = Proxy::start(CONFIG).await;
    let req = Request::get("/moved?q=1")
        .header(HOST, "app.test:8080")
        .body(Empty::new())
        .unwrap();
    let reply = proxy.send(req).await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.headers[LOCATION], "http://app.test:8080/here");
}
