//! TLS origination to clusters and two sidecars talking mutual TLS, through
//! the real binary with certificates made in the test: sidecar A forwards
//! over ISTIO_MUTUAL to sidecar B, whose `authz` filter allows A's SPIFFE ID
//! (`principals`); A refuses an upstream whose certificate has an
//! unexpected SPIFFE ID, several URI SANs, another CA or is expired, and
//! counts each reason; SIMPLE verifies the server by name.

use std::path::Path;

use serde_json::{Value, json};
use wasp_e2e::client::{empty, tls_request_with};
use wasp_e2e::mesh::{Leaf, TestCa, TlsPeer, Validity, spiffe};
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Route, Upstream, Wasp, filter_module,
    free_addr,
};

/// The `mesh` section naming `leaf` and `ca`'s bundle, written into `dir`.
fn mesh_section(dir: &Path, name: &str, leaf: &Leaf, ca: &TestCa) -> String {
    let (cert, key) = leaf.write(dir, name);
    let bundle = ca.write(dir, &format!("{name}-bundle.pem"));
    format!(
        "mesh: {}\n",
        json!({"cert_file": cert, "key_file": key, "trust_bundle": bundle})
    )
}

/// A cluster to `addr` originating TLS with `tls`.
fn tls_cluster(name: &str, addr: impl ToString, tls: Value) -> Cluster {
    Cluster::new(name).endpoint(addr).set("tls", tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_a_reaches_b_over_mutual_tls_and_b_authorizes_a_by_spiffe_id() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mesh root");
    let a_id = spiffe("shop", "a");
    let b_id = spiffe("default", "b");
    let app = Upstream::start("app").await;

    // Sidecar B: STRICT inbound, authz allowing only A.
    let b_listen = free_addr();
    let authz = json!({"policies": [{"name": "only-a", "action": "ALLOW", "rules": [
        {"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/a"]}}]},
    ]}]});
    let b_config = Config::new()
        .filter_chain(
            FilterChain::new("secured")
                .plugin(Plugin::new("authz", filter_module("wasp_authz")).configuration(&authz)),
        )
        .listener(
            Listener::new("inbound", b_listen)
                .set("mtls", json!({"mode": "STRICT"}))
                .route(Route::prefix("/").filter_chain("secured").cluster("app")),
        )
        .cluster(Cluster::new("app").endpoint(app.addr))
        .raw(&mesh_section(
            dir.path(),
            "b",
            &ca.leaf(&[&b_id], Validity::Current),
            &ca,
        ));
    let b = Wasp::start(b_config).await;

    // Sidecar A: plain outbound listener, ISTIO_MUTUAL to B.
    let a_listen = free_addr();
    let a_config = Config::new()
        .listener(
            Listener::new("outbound", a_listen)
                .route(Route::prefix("/wrong").cluster("b-wrong-id"))
                .route(Route::prefix("/").cluster("b")),
        )
        .cluster(tls_cluster(
            "b",
            b_listen,
            json!({"mode": "ISTIO_MUTUAL", "expected_identities": [b_id]}),
        ))
        .cluster(tls_cluster(
            "b-wrong-id",
            b_listen,
            json!({"mode": "ISTIO_MUTUAL", "expected_identities": [spiffe("default", "c")]}),
        ))
        .raw(&mesh_section(
            dir.path(),
            "a",
            &ca.leaf(&[&a_id], Validity::Current),
            &ca,
        ));
    let a = Wasp::start(a_config).await;

    let client = Client::http1();
    for _ in 0..5 {
        let resp = client
            .get(&format!("http://{a_listen}/hello"))
            .await
            .unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    assert_eq!(app.hits(), 5);
    // Five requests, one pooled upstream TLS connection.
    let a_metrics = a.metrics().await;
    assert_eq!(
        a_metrics.sum("wasp_upstream_cx_total", &[("cluster", "b")]),
        1.0
    );
    let b_metrics = b.metrics().await;
    assert_eq!(
        b_metrics.sum(
            "wasp_mtls_connections_total",
            &[("listener", "inbound"), ("transport", "mtls")]
        ),
        1.0
    );

    // A refuses B when B's identity is not the one expected.
    let wrong = client
        .get(&format!("http://{a_listen}/wrong"))
        .await
        .unwrap();
    assert_eq!(wrong.status, 503, "{}", wrong.text());
    assert_eq!(
        a.metrics().await.sum(
            "wasp_upstream_tls_failures_total",
            &[("cluster", "b-wrong-id"), ("reason", "spiffe_id")]
        ),
        1.0
    );
    assert_eq!(app.hits(), 5);

    // B's authz refuses another workload of the mesh.
    let c = ca.leaf(&[&spiffe("shop", "c")], Validity::Current);
    let request = http::Request::get(format!("https://localhost:{}/", b_listen.port()))
        .header("host", "localhost")
        .body(empty())
        .unwrap();
    let (_, denied) = tls_request_with(c.client_config(&ca), b_listen, "localhost", request)
        .await
        .unwrap();
    assert_eq!(denied.status, 403);
    assert_eq!(denied.text(), "RBAC: access denied");
    assert_eq!(app.hits(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_mutual_refuses_peers_that_fail_the_spiffe_checks() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mesh root");
    let other = TestCa::new("another root");
    let b_id = spiffe("default", "b");
    let peers = [
        (
            "good",
            TlsPeer::start(&ca.leaf(&[&b_id], Validity::Current)).await,
        ),
        (
            "two-sans",
            TlsPeer::start(&ca.leaf(&[&b_id, &spiffe("default", "x")], Validity::Current)).await,
        ),
        (
            "other-ca",
            TlsPeer::start(&other.leaf(&[&b_id], Validity::Current)).await,
        ),
        (
            "expired",
            TlsPeer::start(&ca.leaf(&[&b_id], Validity::Expired)).await,
        ),
    ];
    let listen = free_addr();
    let mut listener = Listener::new("outbound", listen);
    let mut config = Config::new();
    for (name, peer) in &peers {
        listener = listener.route(Route::prefix(&format!("/{name}")).cluster(name));
        config = config.cluster(tls_cluster(
            name,
            peer.addr,
            json!({"mode": "ISTIO_MUTUAL", "expected_identities": [b_id]}),
        ));
    }
    // SIMPLE: TLS without a client certificate, the server checked by name.
    listener = listener
        .route(Route::prefix("/simple-ok").cluster("simple-ok"))
        .route(Route::prefix("/simple-bad-name").cluster("simple-bad-name"));
    let good = peers[0].1.addr;
    config = config
        .cluster(tls_cluster(
            "simple-ok",
            good,
            json!({"mode": "SIMPLE", "sni": "localhost"}),
        ))
        .cluster(tls_cluster(
            "simple-bad-name",
            good,
            json!({"mode": "SIMPLE", "sni": "elsewhere.example"}),
        ));
    let a = ca.leaf(&[&spiffe("shop", "a")], Validity::Current);
    let wasp = Wasp::start(
        config
            .listener(listener)
            .raw(&mesh_section(dir.path(), "a", &a, &ca)),
    )
    .await;
    let client = Client::http1();
    let status = |path: &'static str| {
        let client = client.clone();
        async move {
            client
                .get(&format!("http://{listen}/{path}"))
                .await
                .unwrap()
                .status
        }
    };
    assert_eq!(status("good").await, 200);
    assert_eq!(status("simple-ok").await, 200);
    for path in ["two-sans", "other-ca", "expired", "simple-bad-name"] {
        assert_eq!(status(path).await, 503, "{path}");
    }
    let metrics = wasp.metrics().await;
    for (cluster, reason) in [
        ("two-sans", "uri_san_count"),
        ("other-ca", "unknown_ca"),
        ("expired", "expired"),
        ("simple-bad-name", "bad_certificate"),
    ] {
        assert_eq!(
            metrics.sum(
                "wasp_upstream_tls_failures_total",
                &[("cluster", cluster), ("reason", reason)]
            ),
            1.0,
            "{cluster}: {}",
            metrics.text
        );
    }
}
