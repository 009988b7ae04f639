//! TLS session resumption between sidecars, through the real binaries with
//! certificates made in the test: sidecar A opens a new ISTIO_MUTUAL
//! connection to sidecar B for every request (`max_idle_per_endpoint: 0`);
//! after the first full handshake to an endpoint the next ones resume, both
//! sides count them by kind, and B still sees A's verified SPIFFE ID on
//! resumed connections (its `authz` filter allows only A, and a filter
//! echoes `source.principal`). A cluster's endpoints keep separate sessions.
//! No session outlives the trust bundle that verified it: once B no longer
//! trusts A's CA, or A no longer trusts B's, the next connection fails
//! instead of resuming.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use wasp_e2e::mesh::{Leaf, TestCa, Validity, spiffe};
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Route, Upstream, Wasp, filter_module,
    free_addr,
};

/// The `mesh` section naming `leaf` and the bundle file `bundle`, written
/// into `dir`.
fn mesh_section(dir: &Path, name: &str, leaf: &Leaf, bundle: &Path) -> String {
    let (cert, key) = leaf.write(dir, name);
    format!(
        "mesh: {}\n",
        json!({"cert_file": cert, "key_file": key, "trust_bundle": bundle})
    )
}

/// Sidecar B: STRICT inbound whose chain allows only A's identity (`authz`)
/// and answers `source.principal` (`sdk_features`, `x-test: properties`).
async fn sidecar_b(dir: &Path, name: &str, ca: &TestCa, app: &Upstream) -> (Wasp, SocketAddr) {
    let listen = free_addr();
    let authz = json!({"policies": [{"name": "only-a", "action": "ALLOW", "rules": [
        {"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/a"]}}]},
    ]}]});
    let features = json!({"callout_cluster": "app", "grpc_cluster": "app"});
    let bundle = ca.write(dir, &format!("{name}-bundle.pem"));
    let config = Config::new()
        .filter_chain(
            FilterChain::new("secured")
                .plugin(Plugin::new("authz", filter_module("wasp_authz")).configuration(&authz))
                .plugin(
                    Plugin::new("features", filter_module("sdk_features")).configuration(features),
                ),
        )
        .listener(
            Listener::new("inbound", listen)
                .set("mtls", json!({"mode": "STRICT"}))
                .route(Route::prefix("/").filter_chain("secured").cluster("app")),
        )
        .cluster(Cluster::new("app").endpoint(app.addr))
        .raw(&mesh_section(
            dir,
            name,
            &ca.leaf(&[&spiffe("default", "b")], Validity::Current),
            &bundle,
        ));
    (Wasp::start(config).await, listen)
}

/// Sidecar A: a plain listener, cluster `b` (ISTIO_MUTUAL, a new connection
/// per request) to `endpoints`. Returns it with its bundle file.
async fn sidecar_a(dir: &Path, ca: &TestCa, endpoints: &[SocketAddr]) -> (Wasp, SocketAddr) {
    let listen = free_addr();
    let mut cluster = Cluster::new("b").set("max_idle_per_endpoint", 0).set(
        "tls",
        json!({"mode": "ISTIO_MUTUAL", "expected_identities": [spiffe("default", "b")]}),
    );
    for endpoint in endpoints {
        cluster = cluster.endpoint(endpoint);
    }
    let bundle = ca.write(dir, "a-bundle.pem");
    let config = Config::new()
        .listener(Listener::new("outbound", listen).route(Route::prefix("/").cluster("b")))
        .cluster(cluster)
        .raw(&mesh_section(
            dir,
            "a",
            &ca.leaf(&[&spiffe("shop", "a")], Validity::Current),
            &bundle,
        ));
    (Wasp::start(config).await, listen)
}

/// A GET through A asking B's filter for the principal it sees.
async fn get(client: &Client, a_listen: SocketAddr) -> wasp_e2e::Resp {
    client
        .get_with(
            &format!("http://{a_listen}/hello"),
            &[("x-test", "properties")],
        )
        .await
        .unwrap()
}

/// `wasp_upstream_tls_handshakes_total{cluster="b",resumed}` of A.
async fn upstream_handshakes(a: &Wasp, resumed: &str) -> f64 {
    a.metrics().await.sum(
        "wasp_upstream_tls_handshakes_total",
        &[("cluster", "b"), ("resumed", resumed)],
    )
}

/// `wasp_mtls_handshakes_total{listener="inbound",resumed}` of B, once it
/// reaches `expected` (B counts after the client finished) or after 5 s.
async fn inbound_handshakes(b: &Wasp, resumed: &str, expected: f64) -> f64 {
    b.metric_reaching(
        "wasp_mtls_handshakes_total",
        &[("listener", "inbound"), ("resumed", resumed)],
        expected,
        Duration::from_secs(5),
    )
    .await
}

/// Rewrites a sidecar's bundle file with `ca`'s root and reloads it.
async fn switch_bundle(wasp: &Wasp, bundle: &Path, ca: &TestCa) {
    std::fs::write(bundle, &ca.pem).unwrap();
    let version = wasp.version().await;
    wasp.sighup();
    wasp.wait_version(version + 1, Duration::from_secs(10))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_resume_the_session_and_keep_the_peer_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mesh root");
    let app = Upstream::start("app").await;
    let (b, b_listen) = sidecar_b(dir.path(), "b", &ca, &app).await;
    let (a, a_listen) = sidecar_a(dir.path(), &ca, &[b_listen]).await;

    let client = Client::http1();
    for i in 0..10 {
        let resp = get(&client, a_listen).await;
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        // B's authz allowed A and its filter saw A's identity, on the full
        // handshake and on every resumed one alike.
        assert_eq!(
            resp.header("x-prop-principal"),
            Some(spiffe("shop", "a").as_str()),
            "request {i}"
        );
    }
    assert_eq!(app.hits(), 10);
    // A new upstream connection each time: one full handshake, then nine
    // resumed ones, on both sides.
    let a_metrics = a.metrics().await;
    assert_eq!(
        a_metrics.sum("wasp_upstream_cx_total", &[("cluster", "b")]),
        10.0
    );
    assert_eq!(upstream_handshakes(&a, "false").await, 1.0);
    assert_eq!(upstream_handshakes(&a, "true").await, 9.0);
    assert_eq!(inbound_handshakes(&b, "true", 9.0).await, 9.0);
    assert_eq!(inbound_handshakes(&b, "false", 1.0).await, 1.0);

    // B stops trusting A's CA: A's session ticket no longer opens, and the
    // full handshake refuses A's certificate. Nothing reaches the app.
    let other = TestCa::new("another root");
    let b_bundle = dir.path().join("b-bundle.pem");
    switch_bundle(&b, &b_bundle, &other).await;
    let refused = get(&client, a_listen).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(app.hits(), 10);
    // A finished a full handshake (TLS 1.3: the client is done before the
    // server checks its certificate), then B's refusal came.
    assert_eq!(upstream_handshakes(&a, "false").await, 2.0);
    assert_eq!(upstream_handshakes(&a, "true").await, 9.0);
    // B counts the refusal once its alert is written, which can be after
    // A has answered.
    let failures = b
        .metric_reaching(
            "wasp_mtls_handshake_failures_total",
            &[("listener", "inbound"), ("reason", "unknown_ca")],
            1.0,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(failures, 1.0, "{}", b.metrics().await.text);

    // Trusted again: a full handshake, then resumption as before.
    switch_bundle(&b, &b_bundle, &ca).await;
    for _ in 0..2 {
        assert_eq!(get(&client, a_listen).await.status, 200);
    }
    assert_eq!(upstream_handshakes(&a, "false").await, 3.0);
    assert_eq!(upstream_handshakes(&a, "true").await, 10.0);
    assert_eq!(inbound_handshakes(&b, "false", 2.0).await, 2.0);
    assert_eq!(inbound_handshakes(&b, "true", 10.0).await, 10.0);

    // A stops trusting B's CA: A does not resume the session it holds but
    // handshakes in full, and refuses B.
    let a_bundle = dir.path().join("a-bundle.pem");
    switch_bundle(&a, &a_bundle, &other).await;
    let refused = get(&client, a_listen).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    let a_metrics = a.metrics().await;
    assert_eq!(
        a_metrics.sum(
            "wasp_upstream_tls_failures_total",
            &[("cluster", "b"), ("reason", "unknown_ca")]
        ),
        1.0,
        "{}",
        a_metrics.text
    );
    assert_eq!(upstream_handshakes(&a, "false").await, 3.0);
    assert_eq!(upstream_handshakes(&a, "true").await, 10.0);
    assert_eq!(app.hits(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_of_a_cluster_resumes_its_own_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mesh root");
    let app = Upstream::start("app").await;
    // Two B sidecars, each with its own session ticket keys.
    let (_b1, b1_listen) = sidecar_b(dir.path(), "b1", &ca, &app).await;
    let (_b2, b2_listen) = sidecar_b(dir.path(), "b2", &ca, &app).await;
    let (a, a_listen) = sidecar_a(dir.path(), &ca, &[b1_listen, b2_listen]).await;

    let client = Client::http1();
    for i in 0..10 {
        let resp = get(&client, a_listen).await;
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        assert_eq!(
            resp.header("x-prop-principal"),
            Some(spiffe("shop", "a").as_str())
        );
    }
    // Round robin over two endpoints: one full handshake with each, then
    // each resumes its own session (one shared store would offer each the
    // other's tickets, which it cannot open).
    assert_eq!(upstream_handshakes(&a, "false").await, 2.0);
    assert_eq!(upstream_handshakes(&a, "true").await, 8.0);
}
