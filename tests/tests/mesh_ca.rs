//! The control plane as certificate authority, end to end: two sidecars
//! subscribed to `wasp-cp` get workload certificates for the SPIFFE IDs of
//! their labels (keys made in the proxies, CSRs over the subscription), the
//! trust bundle comes with the configuration, and A reaches B over mutual
//! TLS. With a 4 s lifetime both rotate every ~2 s while requests flow —
//! over a pooled connection and over a new connection each — and not one
//! fails; nor during a root rotation, even when `wasp-cp` restarts in the
//! middle of it (it resumes the rotation from its store).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasp_e2e::controlplane::{Node, within};
use wasp_e2e::{Client, ControlPlane, Upstream, Wasp, free_addr};

fn sidecar_b(b_listen: SocketAddr, app: SocketAddr) -> String {
    format!(
        r#"
mesh: {{}}
listeners:
  - name: inbound
    address: {b_listen}
    mtls: {{mode: STRICT}}
    routes: [{{match: {{prefix: /}}, route: {{cluster: app}}}}]
clusters:
  - {{name: app, endpoints: ["{app}"]}}
"#
    )
}

fn sidecar_a(a_listen: SocketAddr, b_listen: SocketAddr) -> String {
    let tls =
        r#"{mode: ISTIO_MUTUAL, expected_identities: ["spiffe://cluster.local/ns/shop/sa/b"]}"#;
    format!(
        r#"
mesh: {{}}
listeners:
  - name: outbound
    address: {a_listen}
    routes:
      - {{match: {{prefix: /fresh}}, route: {{cluster: b-fresh}}}}
      - {{match: {{prefix: /}}, route: {{cluster: b}}}}
clusters:
  - {{name: b, endpoints: ["{b_listen}"], tls: {tls}}}
  - {{name: b-fresh, endpoints: ["{b_listen}"], max_idle_per_endpoint: 0, tls: {tls}}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_rotate_ca_issued_certificates_under_load_without_a_failed_request() {
    let cp = ControlPlane::start_with(&["--cert-lifetime", "4s"]).await;
    let (a_listen, a, b, _app) = sidecars(&cp).await;
    let issued = |log: &str| {
        log.matches("workload certificate from the control plane")
            .count()
    };
    let (a_before, b_before) = (issued(&a.log()), issued(&b.log()));

    let (ok, failed) = load(a_listen, Duration::from_secs(10)).await;
    eprintln!("requests: {ok} ok, {failed} failed");
    assert_eq!(
        failed,
        0,
        "A:\n{}\nB:\n{}",
        a.log_tail(4000),
        b.log_tail(4000)
    );
    assert!(ok > 100, "{ok} requests only");
    // Both rotated several times during the load (every ~2 s).
    let (a_after, b_after) = (issued(&a.log()), issued(&b.log()));
    assert!(
        a_after >= a_before + 3,
        "A rotated {} times",
        a_after - a_before
    );
    assert!(
        b_after >= b_before + 3,
        "B rotated {} times",
        b_after - b_before
    );
    // The pooled connection outlived the rotations.
    let metrics = a.metrics().await;
    let pooled = metrics.sum("wasp_upstream_cx_total", &[("cluster", "b")]);
    assert!(pooled <= 4.0, "{pooled} pooled connections");
    assert!(metrics.sum("wasp_upstream_cx_total", &[("cluster", "b-fresh")]) > 10.0);
    assert_eq!(
        metrics.sum("wasp_upstream_tls_failures_total", &[]),
        0.0,
        "{}",
        metrics.text
    );
}

/// Load through sidecar A for `duration`: two workers on a pooled upstream
/// connection, two on a new upstream connection (a new handshake) per
/// request. Returns the successful and failed request counts.
async fn load(a_listen: SocketAddr, duration: Duration) -> (u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + duration;
    let mut workers = Vec::new();
    for worker in 0..4 {
        let path = if worker % 2 == 0 { "/pooled" } else { "/fresh" };
        let url = format!("http://{a_listen}{path}");
        let (ok, failed) = (Arc::clone(&ok), Arc::clone(&failed));
        workers.push(tokio::spawn(async move {
            let client = Client::http1();
            while Instant::now() < until {
                match client.get(&url).await {
                    Ok(resp) if resp.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(resp) => {
                        eprintln!("{path}: {} {}", resp.status, resp.text());
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(err) => {
                        eprintln!("{path}: {err:#}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

/// Two sidecars subscribed to `cp`, A reaching B over mutual TLS.
async fn sidecars(cp: &ControlPlane) -> (SocketAddr, Wasp, Wasp, Upstream) {
    let app = Upstream::start("app").await;
    let (a_listen, b_listen) = (free_addr(), free_addr());
    cp.apply_for(&sidecar_b(b_listen, app.addr), "role=b");
    cp.apply_for(&sidecar_a(a_listen, b_listen), "role=a");
    let b_node =
        Node::new("b", "role=b,namespace=shop,service_account=b").listener("inbound", b_listen);
    let a_node =
        Node::new("a", "role=a,namespace=shop,service_account=a").listener("outbound", a_listen);
    let b = cp.node(&b_node);
    let a = cp.node(&a_node);
    let url = format!("http://{a_listen}/");
    within(Duration::from_secs(15), "A reaches B over mTLS", || {
        let url = url.clone();
        async move {
            Client::http1()
                .get(&url)
                .await
                .is_ok_and(|r| r.status == 200)
        }
    })
    .await;
    (a_listen, a, b, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_rotation_with_overlap_drops_no_request() {
    let mut cp = ControlPlane::start_with(&["--cert-lifetime", "4s"]).await;
    let (a_listen, a, b, _app) = sidecars(&cp).await;
    let traffic = tokio::spawn(load(a_listen, Duration::from_secs(14)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The new root is trusted at once, signs after 4 s, and the old one
    // leaves the bundle after 8 s.
    cp.restart_with(&["--cert-lifetime", "4s", "--rotate-root", "4s"])
        .await;
    let (ok, failed) = traffic.await.unwrap();
    eprintln!("requests during the rotation: {ok} ok, {failed} failed");
    assert_eq!(
        failed,
        0,
        "A:\n{}\nB:\n{}",
        a.log_tail(4000),
        b.log_tail(4000)
    );
    assert!(ok > 100, "{ok} requests only");
    assert!(cp.log().contains("the new root signs now"), "{}", cp.log());
    // Both sidecars took the two-root bundle, then the new root's alone.
    for (name, proxy) in [("A", &a), ("B", &b)] {
        let bundles = proxy.log().matches("trust bundle installed").count();
        assert!(bundles >= 3, "{name} installed {bundles} bundles");
    }
    let metrics = a.metrics().await;
    assert_eq!(metrics.sum("wasp_upstream_tls_failures_total", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_rotation_resumes_across_control_plane_restarts_and_drops_no_request() {
    let lifetime = ["--cert-lifetime", "6s"];
    let mut cp = ControlPlane::start_with(&lifetime).await;
    let (a_listen, a, b, _app) = sidecars(&cp).await;
    let old_root = trust_bundle(&cp).await;
    let traffic = tokio::spawn(load(a_listen, Duration::from_secs(20)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The new root is trusted at once, signs after 6 s, and the old one
    // leaves the bundle after 12 s.
    cp.restart_with(&["--cert-lifetime", "6s", "--rotate-root", "6s"])
        .await;
    let rotation = Instant::now();
    // Restarted in the overlap while the old root still signs, and again
    // once the new root signs and both are trusted: with the same data
    // directory and without --rotate-root, as a crash or an upgrade would.
    for at in [3, 9] {
        tokio::time::sleep_until((rotation + Duration::from_secs(at)).into()).await;
        cp.restart_with(&lifetime).await;
    }
    let (ok, failed) = traffic.await.unwrap();
    eprintln!("requests during the rotation: {ok} ok, {failed} failed");
    assert_eq!(
        failed,
        0,
        "A:\n{}\nB:\n{}\nwasp-cp:\n{}",
        a.log_tail(4000),
        b.log_tail(4000),
        cp.log()
    );
    assert!(ok > 100, "{ok} requests only");
    // The rotation finished: one root, the new one.
    let bundle = trust_bundle(&cp).await;
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 1, "{bundle}");
    assert_ne!(bundle, old_root);
    let log = cp.log();
    assert_eq!(log.matches("CA root rotation started").count(), 1, "{log}");
    assert_eq!(log.matches("CA root rotation resumed").count(), 2, "{log}");
    assert!(log.contains("the new root signs now"), "{log}");
    assert!(log.contains("the old root left the bundle"), "{log}");
    // Both sidecars took the two-root bundle, then the new root's alone,
    // and their certificates now chain to the new root only.
    for (name, proxy) in [("A", &a), ("B", &b)] {
        let bundles = proxy.log().matches("trust bundle installed").count();
        assert!(bundles >= 2, "{name} installed {bundles} bundles");
    }
    let metrics = a.metrics().await;
    assert_eq!(metrics.sum("wasp_upstream_tls_failures_total", &[]), 0.0);
}

/// The trust bundle wasp-cp serves now.
async fn trust_bundle(cp: &ControlPlane) -> String {
    wasp_e2e::client::get(&cp.http_url("/trust-bundle"))
        .await
        .unwrap()
        .text()
}
