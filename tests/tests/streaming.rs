//! Streaming: a 1 GiB upload passes through the proxy without being
//! buffered — the proxy's peak RSS stays under 100 MiB.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use wasp_e2e::client::{BoxError, Client};
use wasp_e2e::{Upstream, Wasp, free_addr};

const GIB: u64 = 1 << 30;
const CHUNK: usize = 64 * 1024;
const RSS_LIMIT_KIB: u64 = 100 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_upload_streams_with_flat_memory() {
    let listen = free_addr();
    let sink = Upstream::start("sink").await;
    let config = format!(
        r#"
listeners:
  - name: main
    address: "{listen}"
    routes:
      - match: {{ prefix: /upload }}
        route: {{ cluster: sink, timeout: 0s }}
clusters:
  - name: sink
    endpoints: ["{}"]
"#,
        sink.addr
    );
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
