//! Streaming: 1 GiB uploads and downloads pass through the proxy without
//! being buffered — the proxy's peak RSS stays under 100 MiB, also when the
//! client reads slowly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use wasp_e2e::client::{BoxError, Client};
use wasp_e2e::{Cluster, Config, Listener, Route, Upstream, Wasp, free_addr};

const GIB: u64 = 1 << 30;
const CHUNK: usize = 64 * 1024;
const RSS_LIMIT_KIB: u64 = 100 * 1024;

/// Routes `/h1` to cluster `<name>-h1` (HTTP/1.1) and `/h2` to cluster
/// `<name>-h2` (HTTP/2), both on `upstream`, with the route `timeout`.
fn two_protocols(listen: SocketAddr, name: &str, upstream: SocketAddr, timeout: &str) -> Config {
    let (h1, h2) = (format!("{name}-h1"), format!("{name}-h2"));
    Config::new()
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/h1").cluster(&h1).timeout(timeout))
                .route(Route::prefix("/h2").cluster(&h2).timeout(timeout)),
        )
        .cluster(Cluster::new(&h1).endpoint(upstream))
        .cluster(Cluster::new(&h2).http2().endpoint(upstream))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_upload_streams_with_flat_memory() {
    let listen = free_addr();
    let sink = Upstream::start("sink").await;
    let config = Config::new()
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/upload").cluster("sink").timeout("0s")),
        )
        .cluster(Cluster::new("sink").endpoint(sink.addr));
    let wasp = Wasp::start(&config).await;
    let baseline_kib = wasp.rss_kib();

    // Sample the proxy's RSS while the upload runs.
    let done = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, max_rss, pid) = (Arc::clone(&done), Arc::clone(&max_rss), wasp.pid());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(kib) = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|k| k.parse::<u64>().ok())
                {
                    max_rss.fetch_max(kib, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let chunk = Bytes::from(vec![b'w'; CHUNK]);
    let chunks = GIB / CHUNK as u64;
    let stream = futures_util::stream::iter(
        (0..chunks).map(move |_| Ok::<_, BoxError>(Frame::data(chunk.clone()))),
    );
    let body = StreamBody::new(stream).boxed();
    let request = Request::post(format!("http://{listen}/upload"))
        .header("content-length", GIB.to_string())
        .body(body)
        .unwrap();
    let started = std::time::Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(600), Client::http1().request(request))
        .await
        .expect("upload finished in time")
        .expect("upload succeeded");
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    sampler.await.unwrap();

    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["body_len"], GIB, "the upstream got every byte");
    assert_eq!(sink.body_bytes(), GIB);
    let peak = wasp.peak_rss_kib();
    eprintln!(
        "1 GiB upload in {elapsed:.1?} ({:.0} MiB/s); proxy RSS baseline {} KiB, sampled max {} KiB, VmHWM {} KiB",
        1024.0 / elapsed.as_secs_f64(),
        baseline_kib,
        max_rss.load(Ordering::SeqCst),
        peak
    );
    assert!(peak > 0, "VmHWM readable");
    assert!(
        peak < RSS_LIMIT_KIB,
        "proxy peak RSS {peak} KiB is not under {RSS_LIMIT_KIB} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_downloads_stream_with_flat_memory_and_backpressure() {
    let listen = free_addr();
    let source = Upstream::start("source").await;
    let config = two_protocols(listen, "source", source.addr, "0s");
    let wasp = Wasp::start(&config).await;
    // HTTP/1.1 to the client (the path where a server can buffer), from
    // HTTP/1.1 and HTTP/2 upstreams.
    for upstream in ["h1", "h2"] {
        let request = Request::get(format!("http://{listen}/{upstream}/download"))
            .header("x-test-response-bytes", GIB.to_string())
            .body(wasp_e2e::client::empty())
            .unwrap();
        let started = std::time::Instant::now();
        let response = Client::http1().send(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut received = 0u64;
        // Read slowly at first: the proxy must wait for the client rather
        // than keep reading from the upstream into memory.
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("body frame");
            if let Some(data) = frame.data_ref() {
                received += data.len() as u64;
            }
            if received < 16 << 20 {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        let elapsed = started.elapsed();
        assert_eq!(received, GIB, "every byte arrived");
        let peak = wasp.peak_rss_kib();
        eprintln!(
            "1 GiB download from an {upstream} upstream in {elapsed:.1?}; proxy VmHWM {peak} KiB"
        );
        assert!(
            peak < RSS_LIMIT_KIB,
            "proxy peak RSS {peak} KiB is not under {RSS_LIMIT_KIB} KiB"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_outlive_the_route_timeout_and_truncation_reaches_the_client() {
    let listen = free_addr();
    let source = Upstream::start("source").await;
    let config = two_protocols(listen, "source", source.addr, "300ms");
    let _wasp = Wasp::start(&config).await;
    for (client, kind, upstream) in [
        (Client::http1(), "HTTP/1.1", "h1"),
        (Client::http1(), "HTTP/1.1", "h2"),
        (Client::h2c(), "h2c", "h1"),
        (Client::h2c(), "h2c", "h2"),
    ] {
        let case = format!("{upstream} upstream, {kind} client");
        // The route timeout ends at the response headers: a body streaming
        // for a second after them is not cut.
        let started = std::time::Instant::now();
        let resp = client
            .get_with(
                &format!("http://{listen}/{upstream}/slow-body"),
                &[
                    ("x-test-response-bytes", "655360"),
                    ("x-test-chunk-delay-ms", "100"),
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("{case}: {e:#}"));
        assert_eq!(resp.status, 200, "{case}");
        assert_eq!(resp.body.len(), 655_360, "{case}");
        assert!(started.elapsed() >= Duration::from_millis(900), "{case}");

        // An upstream breaking off mid-body: the client sees an error, not
        // a complete-looking or hanging response.
        let request = Request::get(format!("http://{listen}/{upstream}/truncated"))
            .header("x-test-response-bytes", "1000000")
            .header("x-test-truncate-at", "300000")
            .body(wasp_e2e::client::empty())
            .unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(10), async {
            let response = client.send(request).await?;
            anyhow::ensure!(response.status() == 200, "status {}", response.status());
            let body = response.into_body().collect().await?;
            Ok(body.to_bytes().len())
        })
        .await
        .unwrap_or_else(|_| panic!("{case}: the truncated response hung"));
        assert!(
            outcome.is_err(),
            "{case}: truncation went unnoticed: {outcome:?}"
        );
    }
    // The proxy still serves.
    let resp = Client::http1()
        .get(&format!("http://{listen}/h1/after"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_h2c_uploads_stream_with_flat_memory() {
    let listen = free_addr();
    let sink = Upstream::start("sink").await;
    let config = two_protocols(listen, "sink", sink.addr, "0s");
    let wasp = Wasp::start(&config).await;
    // An HTTP/2 client to HTTP/1.1 and HTTP/2 upstreams.
    for upstream in ["h1", "h2"] {
        let chunk = Bytes::from(vec![b'u'; CHUNK]);
        let stream = futures_util::stream::iter(
            (0..GIB / CHUNK as u64).map(move |_| Ok::<_, BoxError>(Frame::data(chunk.clone()))),
        );
        let request = Request::post(format!("http://{listen}/{upstream}/upload"))
            .body(StreamBody::new(stream).boxed())
            .unwrap();
        let started = std::time::Instant::now();
        let resp = tokio::time::timeout(Duration::from_secs(600), Client::h2c().request(request))
            .await
            .expect("upload finished in time")
            .expect("upload succeeded");
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            resp.json()["body_len"],
            GIB,
            "{upstream}: every byte arrived"
        );
        let peak = wasp.peak_rss_kib();
        eprintln!(
            "1 GiB h2c upload to an {upstream} upstream in {:.1?}; proxy VmHWM {peak} KiB",
            started.elapsed()
        );
        assert!(
            peak < RSS_LIMIT_KIB,
            "proxy peak RSS {peak} KiB is not under {RSS_LIMIT_KIB} KiB"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_go_back_to_the_pool_after_small_and_streamed_answers() {
    let listen = free_addr();
    let upstream = Upstream::start("up").await;
    let config = Config::new()
        .listener(Listener::new("main", listen).route(Route::prefix("/").cluster("up")))
        .cluster(Cluster::new("up").endpoint(upstream.addr));
    let _wasp = Wasp::start(&config).await;
    let client = Client::http1();
    let url = format!("http://{listen}/pooled");

    // A small answer arrives with its head: its connection is ready again
    // by the time the proxy has the response.
    let before = upstream.connections();
    for _ in 0..20 {
        assert_eq!(client.get(&url).await.unwrap().status, 200);
    }
    let small = upstream.connections() - before;
    assert!(
        small <= 1,
        "{small} connections opened for 20 small answers"
    );

    // A streamed answer still has its body on the wire when the head is
    // handed over: its connection comes back once the body is read.
    let streamed = [
        (wasp_e2e::upstream::control::RESPONSE_BYTES, "262144"),
        (wasp_e2e::upstream::control::CHUNK_DELAY_MS, "1"),
    ];
    let before = upstream.connections();
    for _ in 0..10 {
        let resp = client.get_with(&url, &streamed).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body.len(), 262_144);
    }
    let opened = upstream.connections() - before;
    assert!(
        opened <= 1,
        "{opened} connections opened for 10 streamed answers"
    );
}
