//! Protocols end to end: HTTP/1.1, h2c and TLS with ALPN (h2 and http/1.1)
//! to the client; HTTP/2 upstreams; gRPC unary and server streaming with
//! trailers and statuses; WebSocket upgrades.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{Request, Version};
use tokio_tungstenite::tungstenite::Message;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as PbStatus;
use tonic_health::pb::health_client::HealthClient;
use wasp_e2e::client::{self, Client};
use wasp_e2e::{GrpcHealth, TestCert, Upstream, Wasp, WsEcho, free_addr};

fn single_route(listen: std::net::SocketAddr, extra_listener: &str, cluster: &str) -> String {
    format!(
        r#"
listeners:
  - name: main
    address: "{listen}"
{extra_listener}    routes:
      - match: {{ prefix: / }}
        route: {{ cluster: up }}
clusters:
  - name: up
{cluster}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_h2c_clients_are_served_over_an_http1_upstream() {
    let listen = free_addr();
    let upstream = Upstream::start("up").await;
    let config = single_route(
        listen,
        "",
        &format!("    endpoints: [\"{}\"]\n", upstream.addr),
    );
    let _wasp = Wasp::start(&config).await;

    let resp = Client::http1()
        .get(&format!("http://{listen}/h1"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.version, Version::HTTP_11);
    assert_eq!(resp.json()["version"], "HTTP/1.1");
    assert_eq!(resp.json()["path"], "/h1");

    let h2c = Client::h2c();
    let resp = h2c.get(&format!("http://{listen}/h2c")).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.version, Version::HTTP_2, "answered over h2c");
    assert_eq!(
        resp.json()["version"],
        "HTTP/1.1",
        "upstream still HTTP/1.1"
    );
    assert_eq!(resp.json()["path"], "/h2c");
    assert_eq!(
        resp.json()["host"],
        listen.to_string(),
        ":authority becomes Host upstream"
    );

    // Keep-alive upstream: sequential requests reuse one pooled connection.
    let before = upstream.connections();
    for _ in 0..20 {
        assert_eq!(
            h2c.get(&format!("http://{listen}/again"))
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert!(
        upstream.connections() - before <= 1,
        "upstream connections are pooled ({} new for 20 requests)",
        upstream.connections() - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_negotiates_h2_and_http11_by_alpn() {
    let listen = free_addr();
    let upstream = Upstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(dir.path(), &["localhost"]);
    let tls = format!(
        "    tls:\n      cert_file: \"{}\"\n      key_file: \"{}\"\n",
        cert.cert_file.display(),
        cert.key_file.display()
    );
    let config = single_route(
        listen,
        &tls,
        &format!("    endpoints: [\"{}\"]\n", upstream.addr),
    );
    let _wasp = Wasp::start(&config).await;

    let request = || {
        Request::get("https://localhost/secure")
            .body(client::empty())
            .unwrap()
    };
    let (alpn, resp) = client::tls_request(
        listen,
        "localhost",
        cert.roots(),
        &[b"h2", b"http/1.1"],
        request(),
    )
    .await
    .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.version, Version::HTTP_2);
    let echo = resp.json();
    assert_eq!(echo["path"], "/secure");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");

    let request = Request::get("/secure11")
        .header("host", "localhost")
        .body(client::empty())
        .unwrap();
    let (alpn, resp) =
        client::tls_request(listen, "localhost", cert.roots(), &[b"http/1.1"], request)
            .await
            .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.version, Version::HTTP_11);
    assert_eq!(resp.json()["path"], "/secure11");

    // Plain text on the TLS port is not served.
    assert!(
        Client::http1()
            .get(&format!("http://{listen}/"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstream_multiplexes_on_one_connection() {
    let listen = free_addr();
    let upstream = Upstream::start("up2").await;
    let config = single_route(
        listen,
        "",
        &format!(
            "    protocol: http2\n    endpoints: [\"{}\"]\n",
            upstream.addr
        ),
    );
    let _wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = client.clone();
        let url = format!("http://{listen}/mux/{i}");
        tasks.push(tokio::spawn(async move {
            client
                .get_with(&url, &[("x-test-delay-ms", "200")])
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        let resp = task.await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["version"], "HTTP/2.0");
    }
    assert_eq!(
        upstream.connections(),
        1,
        "one multiplexed HTTP/2 connection"
    );
    assert!(upstream.max_in_flight() > 1, "streams ran concurrently");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_and_server_streaming_pass_through() {
    let listen = free_addr();
    let grpc = GrpcHealth::start().await;
    let config = single_route(
        listen,
        "",
        &format!("    protocol: http2\n    endpoints: [\"{}\"]\n", grpc.addr),
    );
    let _wasp = Wasp::start(&config).await;
    grpc.reporter
        .set_service_status("svc", ServingStatus::Serving)
        .await;

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{listen}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);

    // unary OK
    let reply = health
        .check(HealthCheckRequest {
            service: "svc".into(),
        })
        .await
        .expect("unary Check through the proxy");
    assert_eq!(reply.get_ref().status, PbStatus::Serving as i32);
    // unary with a non-OK grpc-status
    let status = health
        .check(HealthCheckRequest {
            service: "unknown".into(),
        })
        .await
        .expect_err("unknown service is NOT_FOUND");
    assert_eq!(status.code(), tonic::Code::NotFound);

    // server streaming: the current status, then each change
    let mut stream = health
        .watch(HealthCheckRequest {
            service: "svc".into(),
        })
        .await
        .expect("Watch through the proxy")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.status, PbStatus::Serving as i32);
    grpc.reporter
        .set_service_status("svc", ServingStatus::NotServing)
        .await;
    let second = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.status, PbStatus::NotServing as i32);
    grpc.reporter
        .set_service_status("svc", ServingStatus::Serving)
        .await;
    let third = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(third.status, PbStatus::Serving as i32);

    // The trailers themselves, seen by a plain HTTP/2 client.
    let frame = [0u8, 0, 0, 0, 5, 0x0a, 3, b's', b'v', b'c'];
    let request = Request::post(format!("http://{listen}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(client::full(frame.to_vec()))
        .unwrap();
    let resp = Client::h2c().request(request).await.unwrap();
    assert_eq!(resp.status, 200);
    let trailers = resp.trailers.expect("trailers reach the client");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(resp.body.len(), 7, "one framed HealthCheckResponse");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_echoes_both_ways() {
    let listen = free_addr();
    let ws = WsEcho::start().await;
    let config = single_route(listen, "", &format!("    endpoints: [\"{}\"]\n", ws.addr));
    let _wasp = Wasp::start(&config).await;

    let stream = tokio::net::TcpStream::connect(listen).await.unwrap();
    let (mut socket, response) =
        tokio_tungstenite::client_async(format!("ws://{listen}/chat"), stream)
            .await
            .expect("WebSocket handshake through the proxy");
    assert_eq!(response.status(), 101);
    for i in 0..10 {
        let text = format!("hello {i}");
        socket.send(Message::text(text.clone())).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Message::text(text));
    }
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    socket.send(Message::binary(blob.clone())).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_data().as_ref(), &blob[..]);
    socket.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_http11_requests_are_answered_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listen = free_addr();
    let upstream = Upstream::start("up").await;
    let config = single_route(
        listen,
        "",
        &format!("    endpoints: [\"{}\"]\n", upstream.addr),
    );
    let _wasp = Wasp::start(&config).await;

    let mut conn = tokio::net::TcpStream::connect(listen).await.unwrap();
    // The first is slow, the second fast: answers must still come in order.
    let requests = "GET /first HTTP/1.1\r\nhost: a\r\nx-test-delay-ms: 300\r\n\r\n\
         GET /second HTTP/1.1\r\nhost: a\r\n\r\n\
         GET /third HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";
    conn.write_all(requests.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut raw))
        .await
        .expect("the proxy closes after `connection: close`")
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
    let first = text.find("\"/first\"").expect("first answer");
    let second = text.find("\"/second\"").expect("second answer");
    let third = text.find("\"/third\"").expect("third answer");
    assert!(
        first < second && second < third,
        "answers in request order: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_name_endpoints_are_resolved() {
    let listen = free_addr();
    let upstream = Upstream::start("named").await;
    let config = single_route(
        listen,
        "",
        &format!(
            "    endpoints: [\"localhost:{}\"]\n    dns_refresh_rate: 1s\n",
            upstream.addr.port()
        ),
    )
    .replace(
        "route: { cluster: up }",
        "route: { cluster: up, retry_policy: { num_retries: 2, retry_on: [connect-failure] } }",
    );
    let wasp = Wasp::start(&config).await;
    let dump = wasp.config_dump().await;
    let addresses: Vec<&str> = dump["clusters"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["address"].as_str())
        .collect();
    assert!(
        addresses.contains(&upstream.addr.to_string().as_str()),
        "localhost resolved to {addresses:?}"
    );
    let client = Client::http1();
    for _ in 0..10 {
        let resp = client.get(&format!("http://{listen}/dns")).await.unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("x-upstream"), Some("named"));
    }
}
