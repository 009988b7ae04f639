//! Request and response headers the proxy manages (x-forwarded-for,
//! x-forwarded-proto, x-request-id, hop-by-hop), and the admin server's
//! `/ready`, `/metrics` and `/config_dump`.

use http::Request;
use wasp_e2e::client::{self, Client};
use wasp_e2e::{Cluster, Config, Listener, Route, Upstream, Wasp, free_addr};

/// Listener `edge`: route `api` to cluster `backend`, route `hello` answered by wasp.
fn config(listen: std::net::SocketAddr, up: &Upstream) -> Config {
    Config::new()
        .listener(
            Listener::new("edge", listen)
                .set("trusted_hops", 1)
                .route(Route::prefix("/api").name("api").cluster("backend"))
                .route(Route::path("/hello").name("hello").direct(200, "hi")),
        )
        .cluster(Cluster::new("backend").endpoint(up.addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_request_id_and_hop_by_hop_headers() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let _wasp = Wasp::start(config(listen, &up)).await;
    let client = Client::http1();
    let url = format!("http://{listen}/api/h");

    // Without incoming values: x-forwarded-for is the client, proto is
    // http, a UUID request id is generated and sent upstream.
    let resp = client.get(&url).await.unwrap();
    let echo = resp.json();
    let headers = &echo["headers"];
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    let id = headers["x-request-id"]
        .as_str()
        .expect("x-request-id sent upstream");
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        vec![8, 4, 4, 4, 12],
        "UUID: {id}"
    );
    assert!(parts[2].starts_with('4'), "version 4 UUID: {id}");
    let second = client.get(&url).await.unwrap().json();
    assert_ne!(
        second["headers"]["x-request-id"], id,
        "a new id per request"
    );

    // With incoming values: appended, kept, kept.
    let request = Request::get(&url)
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-proto", "https")
        .header("x-request-id", "req-123")
        .header("connection", "x-custom-hop")
        .header("x-custom-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("x-test-hop-response", "1")
        .header("x-end-to-end", "kept")
        .body(client::empty())
        .unwrap();
    let resp = client.request(request).await.unwrap();
    let echo = resp.json();
    let headers = echo["headers"].as_object().unwrap();
    assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "https");
    assert_eq!(headers["x-request-id"], "req-123");
    assert_eq!(headers["x-end-to-end"], "kept");
    for hop in [
        "x-custom-hop",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(
            !headers.contains_key(hop),
            "{hop} forwarded upstream: {headers:?}"
        );
    }
    if let Some(connection) = headers.get("connection") {
        assert!(
            !connection.as_str().unwrap_or("").contains("x-custom-hop"),
            "connection header forwarded: {connection}"
        );
    }
    // Hop-by-hop headers of the response are removed too.
    assert_eq!(resp.header("x-upstream"), Some("up"));
    assert!(resp.header("x-test-hop").is_none(), "{:?}", resp.headers);
    assert!(resp.header("keep-alive").is_none(), "{:?}", resp.headers);

    // Over h2c, the same rules.
    let resp = Client::h2c()
        .get_with(&url, &[("x-forwarded-for", "10.9.9.9")])
        .await
        .unwrap();
    assert_eq!(
        resp.json()["headers"]["x-forwarded-for"],
        "10.9.9.9, 127.0.0.1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_config_dump_describe_the_running_proxy() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let wasp = Wasp::start(config(listen, &up)).await;
    let ready = client::get(&wasp.admin_url("/ready")).await.unwrap();
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));

    let client = Client::http1();
    for _ in 0..7 {
        assert_eq!(
            client
                .get(&format!("http://{listen}/api/m"))
                .await
                .unwrap()
                .status,
            200
        );
    }
    for _ in 0..3 {
        assert_eq!(
            client
                .get(&format!("http://{listen}/hello"))
                .await
                .unwrap()
                .status,
            200
        );
    }
    let resp = client
        .get_with(
            &format!("http://{listen}/api/m"),
            &[("x-test-status", "503")],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(
        client
            .get(&format!("http://{listen}/none"))
            .await
            .unwrap()
            .status,
        404
    );

    // Response completion is recorded when the body ends; give it a moment.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let m = wasp.metrics().await;
    let api = [
        ("listener", "edge"),
        ("route", "api"),
        ("cluster", "backend"),
    ];
    assert_eq!(
        m.sum(
            "wasp_requests_total",
            &[api[0], api[1], api[2], ("code", "200")]
        ),
        7.0
    );
    assert_eq!(
        m.sum(
            "wasp_requests_total",
            &[api[0], api[1], api[2], ("code", "503")]
        ),
        1.0
    );
    assert_eq!(
        m.sum(
            "wasp_requests_total",
            &[("listener", "edge"), ("route", "hello"), ("code", "200")]
        ),
        3.0
    );
    assert_eq!(
        m.sum(
            "wasp_requests_total",
            &[("listener", "edge"), ("code", "404")]
        ),
        1.0
    );
    assert_eq!(
        m.sum(
            "wasp_request_duration_seconds_count",
            &[("listener", "edge"), ("route", "api")]
        ),
        8.0
    );
    assert!(m.has("wasp_request_duration_seconds_bucket"));
    assert!(m.sum("wasp_upstream_cx_total", &[("cluster", "backend")]) >= 1.0);
    assert!(
        m.sum("wasp_upstream_cx_active", &[("cluster", "backend")]) >= 1.0,
        "pooled"
    );
    assert!(m.sum("wasp_downstream_cx_total", &[("listener", "edge")]) >= 1.0);
    assert_eq!(m.sum("wasp_active_requests", &[("listener", "edge")]), 0.0);
    let endpoint = up.addr.to_string();
    assert_eq!(
        m.sum(
            "wasp_upstream_endpoint_rq_total",
            &[("cluster", "backend"), ("endpoint", &endpoint)]
        ),
        8.0
    );
    assert_eq!(m.sum("wasp_config_version", &[]), 1.0);

    let dump = wasp.config_dump().await;
    assert_eq!(dump["version"], 1);
    assert!(dump["last_reload_error"].is_null());
    assert_eq!(dump["config"]["listeners"][0]["name"], "edge");
    assert_eq!(
        dump["config"]["listeners"][0]["address"],
        listen.to_string()
    );
    assert_eq!(dump["config"]["listeners"][0]["routes"][0]["name"], "api");
    let clusters = dump["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0]["name"], "backend");
    assert_eq!(clusters[0]["endpoints"][0]["address"], endpoint);
    assert_eq!(clusters[0]["endpoints"][0]["healthy"], true);
    assert_eq!(clusters[0]["endpoints"][0]["ejected"], false);
    assert!(dump["config"].get("admin").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_only_on_listeners_that_ask() {
    let logged = free_addr();
    let quiet = free_addr();
    let up = Upstream::start("up").await;
    let config = Config::new()
        .listener(
            Listener::new("logged", logged)
                .access_log()
                .route(Route::any().cluster("backend")),
        )
        .listener(Listener::new("quiet", quiet).route(Route::any().cluster("backend")))
        .cluster(Cluster::new("backend").endpoint(up.addr));
    let wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let resp = client
        .get_with(
            &format!("http://{logged}/seen?q=1"),
            &[
                ("x-request-id", "access-id-1"),
                ("x-test-response-bytes", "1234"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(resp.body.len(), 1234);
    client
        .get_with(
            &format!("http://{quiet}/unseen"),
            &[("x-request-id", "access-id-2")],
        )
        .await
        .unwrap();
    let mut line = None;
    for _ in 0..50 {
        line = wasp
            .log()
            .lines()
            .find(|l| l.contains("wasp::access") && l.contains("access-id-1"))
            .map(str::to_owned);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let line = line.unwrap_or_else(|| panic!("no access line in:\n{}", wasp.log()));
    for part in [
        "listener=\"logged\"".to_owned(),
        "method=\"GET\"".to_owned(),
        "path=\"/seen?q=1\"".to_owned(),
        "status=200".to_owned(),
        format!("upstream={}", up.addr),
        "bytes_sent=1234".to_owned(),
    ] {
        assert!(line.contains(&part), "{part} missing from: {line}");
    }
    assert!(
        !wasp.log().contains("access-id-2"),
        "the quiet listener logs nothing"
    );
}
