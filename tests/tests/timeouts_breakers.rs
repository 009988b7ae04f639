//! Timeouts and circuit breakers end to end: the route timeout (504 on
//! time, upstream request cancelled), per-try timeouts, `max_pending_requests`
//! and `max_requests` overflow (503 at once, `x-wasp-overloaded: true`,
//! counted), and idle timeouts of client and upstream connections.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasp_e2e::{Client, Cluster, Config, Listener, Mode, Retry, Route, Upstream, Wasp, free_addr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_upstream_gets_504_at_the_route_timeout() {
    let listen = free_addr();
    let hung = Upstream::start_with("hung", Mode::Hang).await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/").cluster("hung").timeout("500ms")),
        )
        .cluster(Cluster::new("hung").endpoint(hung.addr));
    let wasp = Wasp::start(&config).await;
    let client = Client::http1();
    // Warm the client connection so only the proxy's timer is measured.
    let _ = client.get(&format!("http://{listen}/warm")).await.unwrap();
    // Never early; the median of five within ±50 ms (scheduling noise on a
    // loaded machine can delay a single answer, not the proxy's timer).
    let mut times = Vec::new();
    for i in 0..5 {
        let started = Instant::now();
        let resp = client
            .get(&format!("http://{listen}/hang/{i}"))
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(resp.status, 504, "{}", resp.text());
        assert_eq!(resp.text(), "upstream request timeout\n");
        assert!(
            elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(1),
            "504 after {elapsed:?}"
        );
        times.push(elapsed);
    }
    times.sort();
    let median = times[2];
    eprintln!("route timeout 500 ms: answers after {times:?}");
    assert!(
        median >= Duration::from_millis(450) && median <= Duration::from_millis(550),
        "504 after {median:?} (median), expected 500 ms ± 50 ms"
    );
    // The upstream requests were cancelled, not left running.
    for _ in 0..100 {
        if hung.in_flight() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hung.in_flight(), 0, "upstream requests cancelled");
    assert_eq!(hung.cancelled(), 6);
    let m = wasp.metrics().await;
    assert_eq!(
        m.sum("wasp_upstream_rq_timeout_total", &[("cluster", "hung")]),
        6.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_timeout_ends_each_attempt() {
    let listen = free_addr();
    let hung = Upstream::start_with("hung", Mode::Hang).await;
    let good = Upstream::start("good").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(
                    Route::prefix("/pair").cluster("pair").timeout("10s").retry(
                        Retry::new(1)
                            .on(&["reset"])
                            .per_try_timeout("200ms")
                            .base_interval("1ms"),
                    ),
                )
                .route(
                    Route::prefix("/alone")
                        .cluster("alone")
                        .timeout("10s")
                        .retry(
                            Retry::new(2)
                                .on(&["5xx"])
                                .per_try_timeout("200ms")
                                .base_interval("1ms")
                                .max_interval("2ms"),
                        ),
                ),
        )
        .cluster(Cluster::new("pair").endpoints([hung.addr, good.addr]))
        .cluster(Cluster::new("alone").endpoint(hung.addr));
    let wasp = Wasp::start(&config).await;
    let client = Client::http1();
    // Requests that first go to `hung` wait 200 ms, then succeed on `good`.
    let mut retried = 0;
    for _ in 0..4 {
        let started = Instant::now();
        let resp = client.get(&format!("http://{listen}/pair")).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(resp.status, 200);
        if resp.header("x-wasp-attempt-count") == Some("2") {
            retried += 1;
            assert_eq!(resp.header("x-upstream"), Some("good"));
            assert!(
                elapsed >= Duration::from_millis(190) && elapsed < Duration::from_secs(2),
                "per-try timeout then retry took {elapsed:?}"
            );
        }
    }
    // Alone: three attempts of 200 ms each, then 504.
    let started = Instant::now();
    let resp = client.get(&format!("http://{listen}/alone")).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(resp.status, 504);
    assert_eq!(resp.header("x-wasp-attempt-count"), Some("3"));
    assert!(
        elapsed >= Duration::from_millis(600) && elapsed < Duration::from_millis(1500),
        "three 200 ms attempts took {elapsed:?}"
    );
    assert!(retried >= 1, "some request met the hung endpoint first");
    let m = wasp.metrics().await;
    assert_eq!(
        m.sum(
            "wasp_upstream_rq_per_try_timeout_total",
            &[("cluster", "pair")]
        ),
        f64::from(retried)
    );
    assert_eq!(
        m.sum(
            "wasp_upstream_rq_per_try_timeout_total",
            &[("cluster", "alone")]
        ),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_and_active_request_limits_overflow_with_503_at_once() {
    let listen = free_addr();
    let slow = Upstream::start_with("slow", Mode::Delay(Duration::from_millis(1500))).await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/pending").cluster("pending"))
                .route(Route::prefix("/active").cluster("active")),
        )
        .cluster(
            Cluster::new("pending")
                .endpoint(slow.addr)
                .circuit_breakers(json!({ "max_connections": 5, "max_pending_requests": 10 })),
        )
        .cluster(
            Cluster::new("active")
                .endpoint(slow.addr)
                .circuit_breakers(json!({ "max_requests": 20 })),
        );
    let wasp = Wasp::start(&config).await;

    for (path, cluster, breaker, admitted) in [
        ("pending", "pending", "max_pending_requests", 15),
        ("active", "active", "max_requests", 20),
    ] {
        let client = Client::http1();
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let client = client.clone();
            let url = format!("http://{listen}/{path}");
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                let resp = client.get(&url).await.unwrap();
                (resp, started.elapsed())
            }));
        }
        let mut ok = 0;
        let mut overflow = 0;
        for task in tasks {
            let (resp, elapsed) = task.await.unwrap();
            match resp.status {
                200 => ok += 1,
                503 => {
                    overflow += 1;
                    assert_eq!(resp.header("x-wasp-overloaded"), Some("true"));
                    assert!(
                        elapsed < Duration::from_millis(1000),
                        "overflow answered at once, not after the upstream delay ({elapsed:?})"
                    );
                }
                other => panic!("unexpected status {other}: {}", resp.text()),
            }
        }
        eprintln!("{cluster}: {ok} admitted, {overflow} overflowed");
        assert_eq!(ok + overflow, 100);
        assert!(
            ok >= admitted && ok <= admitted + 10,
            "{cluster}: {ok} admitted with a limit of {admitted}"
        );
        let m = wasp.metrics().await;
        assert_eq!(
            m.sum(
                "wasp_upstream_rq_overflow_total",
                &[("cluster", cluster), ("breaker", breaker)]
            ),
            overflow as f64,
            "{cluster}: overflow counted"
        );
    }
    assert!(slow.max_in_flight() <= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_client_and_upstream_connections_are_closed() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .idle_timeout("500ms")
                .route(Route::prefix("/").cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr).idle_timeout("500ms"));
    let wasp = Wasp::start(&config).await;

    let request = format!("GET /idle HTTP/1.1\r\nhost: {listen}\r\n\r\n");
    let mut conn = tokio::net::TcpStream::connect(listen).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // A request slower than the idle timeout is not cut off.
    let slow = format!("GET /slow HTTP/1.1\r\nhost: {listen}\r\nx-test-delay-ms: 1200\r\n\r\n");
    conn.write_all(slow.as_bytes()).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "in-flight request survived the idle timeout"
    );

    // Then, idle, the connection is closed by the proxy.
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("the proxy closes the idle connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "EOF on an idle connection");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "closed after {waited:?} idle"
    );
    let m = wasp.metrics().await;
    assert!(
        m.sum(
            "wasp_downstream_cx_idle_timeout_total",
            &[("listener", "main")]
        ) >= 1.0
    );

    // A busy connection stays open: requests every 200 ms for 1.5 s.
    let client = Client::http1();
    let before = m.sum("wasp_downstream_cx_total", &[("listener", "main")]);
    for _ in 0..8 {
        assert_eq!(
            client
                .get(&format!("http://{listen}/busy"))
                .await
                .unwrap()
                .status,
            200
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m = wasp.metrics().await;
    assert_eq!(
        m.sum("wasp_downstream_cx_total", &[("listener", "main")]) - before,
        1.0,
        "one kept-alive connection served every request"
    );

    // Pooled upstream connections idle for 500 ms are closed too.
    let mut active = 1.0;
    for _ in 0..60 {
        active = wasp
            .metrics()
            .await
            .sum("wasp_upstream_cx_active", &[("cluster", "up")]);
        if active == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(active, 0.0, "idle upstream connections closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_timeout_starts_when_the_request_body_has_arrived() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen).route(Route::prefix("/").cluster("up").timeout("400ms")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr));
    let _wasp = Wasp::start(&config).await;
    // A body trickling in over ~1 s: longer than the timeout, yet fine.
    let stream = futures_util::stream::unfold(0u32, |i| async move {
        if i == 10 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((
            Ok::<_, wasp_e2e::client::BoxError>(Frame::data(Bytes::from_static(b"0123456789"))),
            i + 1,
        ))
    });
    let request = http::Request::post(format!("http://{listen}/slow-upload"))
        .body(StreamBody::new(stream).boxed())
        .unwrap();
    let started = Instant::now();
    let resp = Client::http1().request(request).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["body_len"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_going_away_cancels_the_upstream_request() {
    let listen = free_addr();
    let hung = Upstream::start_with("hung", Mode::Hang).await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen).route(Route::prefix("/").cluster("hung").timeout("0s")),
        )
        .cluster(Cluster::new("hung").endpoint(hung.addr));
    let wasp = Wasp::start(&config).await;
    let mut conn = tokio::net::TcpStream::connect(listen).await.unwrap();
    conn.write_all(format!("GET /wait HTTP/1.1\r\nhost: {listen}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    for _ in 0..200 {
        if hung.in_flight() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hung.in_flight(), 1, "the request reached the upstream");
    assert_eq!(
        wasp.metrics()
            .await
            .sum("wasp_active_requests", &[("listener", "main")]),
        1.0
    );
    drop(conn);
    for _ in 0..200 {
        if hung.cancelled() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hung.cancelled(), 1, "the upstream request was cancelled");
    assert_eq!(hung.in_flight(), 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let m = wasp.metrics().await;
    assert_eq!(m.sum("wasp_active_requests", &[("listener", "main")]), 0.0);
    assert_eq!(
        m.sum("wasp_downstream_cx_active", &[("listener", "main")]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_answers_503_and_retries_elsewhere() {
    // A socket that never accepts, its backlog filled: new connection
    // attempts get no answer (SYNs are dropped), so connecting hangs.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let black_hole = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let attempt = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(black_hole),
        )
        .await;
        match attempt {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    let probe = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect(black_hole),
    )
    .await;
    assert!(probe.is_err(), "the backlog is full: connecting hangs");

    let listen = free_addr();
    let good = Upstream::start("good").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/alone").cluster("hole"))
                .route(
                    Route::prefix("/retry")
                        .cluster("hole-first")
                        .retry(Retry::new(1).on(&["connect-failure"]).base_interval("1ms")),
                ),
        )
        .cluster(
            Cluster::new("hole")
                .connect_timeout("300ms")
                .endpoint(black_hole),
        )
        .cluster(
            Cluster::new("hole-first")
                .connect_timeout("300ms")
                .endpoints([black_hole, good.addr]),
        );
    let wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let started = Instant::now();
    let resp = client.get(&format!("http://{listen}/alone")).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(
        elapsed >= Duration::from_millis(280) && elapsed < Duration::from_millis(1500),
        "503 after {elapsed:?}, connect timeout 300 ms"
    );
    // Round robin: the first request starts on the black hole, times out
    // connecting, and is retried on `good`.
    let started = Instant::now();
    let resp = client.get(&format!("http://{listen}/retry")).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-upstream"), Some("good"));
    if resp.header("x-wasp-attempt-count") == Some("2") {
        assert!(started.elapsed() >= Duration::from_millis(280));
    }
    let m = wasp.metrics().await;
    assert!(
        m.sum(
            "wasp_upstream_cx_connect_fail_total",
            &[("cluster", "hole")]
        ) >= 1.0
    );
    drop(fillers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_client_connections_are_closed() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .idle_timeout("400ms")
                .route(Route::any().cluster("up")),
        )
        .cluster(Cluster::new("up").endpoint(up.addr));
    let wasp = Wasp::start(&config).await;
    let client = Client::h2c();
    assert_eq!(
        client
            .get(&format!("http://{listen}/a"))
            .await
            .unwrap()
            .status,
        200
    );
    let mut closed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let m = wasp.metrics().await;
        if m.sum("wasp_downstream_cx_active", &[("listener", "main")]) == 0.0 {
            closed = true;
            assert_eq!(
                m.sum(
                    "wasp_downstream_cx_idle_timeout_total",
                    &[("listener", "main")]
                ),
                1.0
            );
            break;
        }
    }
    assert!(closed, "the idle HTTP/2 connection was closed");
    // The client reconnects transparently.
    assert_eq!(
        client
            .get(&format!("http://{listen}/b"))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_before_the_body() {
    let listen = free_addr();
    let up = Upstream::start("up").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/plain").cluster("up"))
                .route(Route::prefix("/retry").cluster("up").retry(Retry::new(1))),
        )
        .cluster(Cluster::new("up").endpoint(up.addr));
    let _wasp = Wasp::start(&config).await;
    for path in ["/plain", "/retry"] {
        let mut conn = tokio::net::TcpStream::connect(listen).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("100 Continue arrives before the body is sent")
            .unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"),
            "{path}: {}",
            String::from_utf8_lossy(&buf[..n])
        );
        conn.write_all(b"hello").await.unwrap();
        let mut answer = String::new();
        while !answer.contains("\"body_len\":5") {
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
                .await
                .expect("the answer arrives")
                .unwrap();
            assert!(n > 0, "{path}: closed early: {answer}");
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(answer.contains("HTTP/1.1 200 OK"), "{path}: {answer}");
    }
}
