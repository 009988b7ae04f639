//! Endpoints taken out of rotation: by active health checks (on tokio's
//! paused clock, so the check interval passes without waiting) and by
//! outlier detection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::fixture::Proxy;
use super::fixture::forward_all;
use super::upstream::Upstream;

/// An upstream answering `/healthz` 200 while `healthy` holds (503 when
/// not), and every other path 200 with `name`.
async fn checked(name: &'static str, healthy: Arc<AtomicBool>) -> Upstream {
    Upstream::start(move |_, seen| {
        let mut response = Response::new(Full::new(Bytes::from_static(name.as_bytes())));
        if seen.uri.path() == "/healthz" && !healthy.load(Ordering::Relaxed) {
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        Some(response)
    })
    .await
}

/// The bodies of `n` requests, sorted (round robin order aside).
async fn answers(proxy: &Proxy, n: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    for _ in 0..n {
        let reply = proxy.get("/").await;
        assert_eq!(reply.status, 200);
        bodies.push(reply.body);
    }
    bodies.sort();
    bodies
}

#[tokio::test(start_paused = true)]
async fn failing_health_checks_take_an_endpoint_out_until_it_passes_again() {
    let a_healthy = Arc::new(AtomicBool::new(false));
    let a = checked("a", Arc::clone(&a_healthy)).await;
    let b = checked("b", Arc::new(AtomicBool::new(true))).await;
    let health = "health_check: \
        { path: /healthz, interval: 5s, timeout: 1s, unhealthy_threshold: 2, healthy_threshold: 1 }";
    let proxy = Proxy::start(&forward_all(&[a.endpoint(), b.endpoint()], "", health)).await;

    // The first check (at once) fails once: still in rotation.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(answers(&proxy, 2).await, ["a", "b"]);
    // The second (5s later) makes two failures in a row.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(answers(&proxy, 4).await, ["b", "b", "b", "b"]);
    // One passing check brings it back.
    a_healthy.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(answers(&proxy, 2).await, ["a", "b"]);
}

#[tokio::test]
async fn consecutive_5xx_eject_an_endpoint_from_rotation() {
    let a = Upstream::statuses(&[503]).await;
    let b = Upstream::ok("b").await;
    let outlier = "outlier_detection: \
        { consecutive_5xx: 2, base_ejection_time: 30s, max_ejection_percent: 50 }";
    let proxy = Proxy::start(&forward_all(&[a.endpoint(), b.endpoint()], "", outlier)).await;

    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(proxy.get("/").await.status.as_u16());
    }
    assert_eq!(a.seen().len(), 2, "ejected after its second 503");
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 2);
    assert_eq!(b.seen().len(), 6);
    let ejections = proxy
        .state
        .metrics
        .upstream_ejections
        .with_label_values(&["app"]);
    assert_eq!(ejections.get(), 1);
}
