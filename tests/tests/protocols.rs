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

/// The listener lines that serve TLS with `cert`.
fn tls_listener(cert: &TestCert) -> String {
    format!(
        "    tls:\n      cert_file: \"{}\"\n      key_file: \"{}\"\n",
        cert.cert_file.display(),
        cert.key_file.display()
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
    let tls = tls_listener(&cert);
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
    let mut next_status = async || {
        tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a health update within 10 s")
            .expect("the watch stream")
            .expect("a message")
            .status
    };
    assert_eq!(next_status().await, PbStatus::Serving as i32);
    for status in [ServingStatus::NotServing, ServingStatus::Serving] {
        grpc.reporter.set_service_status("svc", status).await;
        let expected = match status {
            ServingStatus::NotServing => PbStatus::NotServing,
            _ => PbStatus::Serving,
        };
        assert_eq!(next_status().await, expected as i32);
    }

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_switches_the_tls_certificate() {
    let listen = free_addr();
    let upstream = Upstream::start("up").await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cert_a = TestCert::generate(dir_a.path(), &["localhost"]);
    let cert_b = TestCert::generate(dir_b.path(), &["localhost"]);
    let config = |cert: &TestCert| {
        let tls = tls_listener(cert);
        single_route(
            listen,
            &tls,
            &format!("    endpoints: [\"{}\"]\n", upstream.addr),
        )
    };
    let wasp = Wasp::start(config(&cert_a)).await;
    let get = |roots| async move {
        let request = Request::get("https://localhost/cert")
            .body(client::empty())
            .unwrap();
        client::tls_request(listen, "localhost", roots, &[b"h2"], request).await
    };
    assert_eq!(get(cert_a.roots()).await.unwrap().1.status, 200);
    assert!(get(cert_b.roots()).await.is_err(), "B is not served yet");

    wasp.write_config(config(&cert_b));
    wasp.sighup();
    wasp.wait_version(2, Duration::from_secs(10)).await;
    assert_eq!(get(cert_b.roots()).await.unwrap().1.status, 200);
    assert!(get(cert_a.roots()).await.is_err(), "A is no longer served");

    // A missing key file fails the reload and keeps B.
    let broken = config(&cert_b).replace(
        &cert_b.key_file.display().to_string(),
        "/nonexistent/key.pem",
    );
    wasp.write_config(&broken);
    wasp.sighup();
    let mut error = None;
    for _ in 0..100 {
        if let Some(e) = wasp.config_dump().await["last_reload_error"].as_str() {
            error = Some(e.to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = error.expect("the reload failed");
    assert!(error.contains("listeners[0].tls"), "{error}");
    assert_eq!(get(cert_b.roots()).await.unwrap().1.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_recover_when_an_upstream_restarts() {
    use wasp_e2e::{Mode, Options};
    let listen = free_addr();
    let first = Upstream::start("first").await;
    let addr = first.addr;
    let config = format!(
        r#"
listeners:
  - name: main
    address: "{listen}"
    routes:
      - match: {{ prefix: /h1 }}
        route: {{ cluster: h1 }}
      - match: {{ prefix: /h2 }}
        route: {{ cluster: h2 }}
clusters:
  - name: h1
    endpoints: ["{addr}"]
  - name: h2
    protocol: http2
    endpoints: ["{addr}"]
"#
    );
    let _wasp = Wasp::start(&config).await;
    let client = Client::http1();
    for path in ["h1", "h2"] {
        let resp = client
            .get(&format!("http://{listen}/{path}"))
            .await
            .unwrap();
        assert_eq!(resp.header("x-upstream"), Some("first"), "{path}");
    }
    // The upstream goes away with its connections, then comes back.
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for path in ["h1", "h2"] {
        let resp = client
            .get(&format!("http://{listen}/{path}"))
            .await
            .unwrap();
        assert_eq!(resp.status, 503, "{path} while the upstream is down");
    }
    let options = Options {
        addr: Some(addr),
        ..Options::default()
    };
    let _second = Upstream::start_opts("second", Mode::Echo, options).await;
    for path in ["h1", "h2"] {
        for _ in 0..5 {
            let resp = client
                .get(&format!("http://{listen}/{path}"))
                .await
                .unwrap();
            assert_eq!(
                resp.status,
                200,
                "{path} after the restart: {}",
                resp.text()
            );
            assert_eq!(resp.header("x-upstream"), Some("second"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_of_http2_clusters_speak_http2() {
    use wasp_e2e::{Mode, Options};
    let listen = free_addr();
    let options = Options {
        http2_only: true,
        ..Options::default()
    };
    let a = Upstream::start_opts("a", Mode::Echo, options).await;
    let b = Upstream::start_opts("b", Mode::Echo, options).await;
    let config = format!(
        r#"
listeners:
  - name: main
    address: "{listen}"
    routes:
      - route: {{ cluster: grpc-like }}
clusters:
  - name: grpc-like
    protocol: http2
    panic_threshold: 0
    endpoints: ["{}", "{}"]
    health_check: {{ path: /healthz, interval: 100ms, timeout: 500ms, unhealthy_threshold: 1, healthy_threshold: 1 }}
"#,
        a.addr, b.addr
    );
    let wasp = Wasp::start(&config).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        a.health_checks() >= 2,
        "probes answered over HTTP/2 ({})",
        a.health_checks()
    );
    let dump = wasp.config_dump().await;
    for endpoint in dump["clusters"][0]["endpoints"].as_array().unwrap() {
        assert_eq!(endpoint["healthy"], true, "{endpoint}");
    }
    b.set_healthy(false);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let client = Client::http1();
    for _ in 0..10 {
        let resp = client.get(&format!("http://{listen}/x")).await.unwrap();
        assert_eq!(resp.header("x-upstream"), Some("a"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls() {
    let listen = free_addr();
    let ws = WsEcho::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(dir.path(), &["localhost"]);
    let tls = tls_listener(&cert);
    let config = single_route(listen, &tls, &format!("    endpoints: [\"{}\"]\n", ws.addr));
    let _wasp = Wasp::start(&config).await;

    let mut tls_config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(cert.roots())
    .with_no_client_auth();
    tls_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls_config));
    let tcp = tokio::net::TcpStream::connect(listen).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async("wss://localhost/chat", stream)
        .await
        .expect("WebSocket handshake over TLS");
    assert_eq!(response.status(), 101);
    socket.send(Message::text("over tls")).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::text("over tls"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_keeps_trailers() {
    let listen = free_addr();
    let grpc = GrpcHealth::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(dir.path(), &["localhost"]);
    let tls = tls_listener(&cert);
    let config = single_route(
        listen,
        &tls,
        &format!("    protocol: http2\n    endpoints: [\"{}\"]\n", grpc.addr),
    );
    let _wasp = Wasp::start(&config).await;
    grpc.reporter
        .set_service_status("svc", ServingStatus::NotServing)
        .await;
    let frame = [0u8, 0, 0, 0, 5, 0x0a, 3, b's', b'v', b'c'];
    let request = Request::post("https://localhost/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(client::full(frame.to_vec()))
        .unwrap();
    let (alpn, resp) = client::tls_request(listen, "localhost", cert.roots(), &[b"h2"], request)
        .await
        .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(resp.status, 200);
    // HealthCheckResponse { status: NOT_SERVING (2) }, framed.
    assert_eq!(&resp.body[..], &[0u8, 0, 0, 0, 2, 0x08, 2][..]);
    let trailers = resp.trailers.expect("trailers over TLS");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
}
