//! Mutual TLS on listeners through the real binary, with certificates made
//! in the test (rcgen): STRICT accepts only a client certificate chaining to
//! the trust bundle with exactly one SPIFFE ID of the trust domain, and
//! counts every refused handshake by reason; the verified identity reaches
//! filters as `source.principal`; PERMISSIVE serves mutual TLS and plain
//! text on one port.

use std::net::SocketAddr;
use std::path::Path;

use http::Request;
use serde_json::json;
use wasp_e2e::client::{empty, tls_request_with};
use wasp_e2e::mesh::{Leaf, TestCa, Validity, anonymous_client_config, spiffe};
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Resp, Route, Upstream, Wasp,
    filter_module, free_addr,
};

/// A sidecar's inbound side: an mTLS listener in front of an echo upstream,
/// with the `sdk_features` filter answering `x-prop-principal`.
struct Inbound {
    wasp: Wasp,
    listen: SocketAddr,
    upstream: Upstream,
}

/// The `mesh` section naming `leaf` and `ca`'s bundle, written into `dir`.
fn mesh_section(dir: &Path, name: &str, leaf: &Leaf, ca: &TestCa) -> String {
    let (cert, key) = leaf.write(dir, name);
    let bundle = ca.write(dir, &format!("{name}-bundle.pem"));
    format!(
        "mesh: {}\n",
        json!({"cert_file": cert, "key_file": key, "trust_bundle": bundle})
    )
}

impl Inbound {
    async fn start(ca: &TestCa, mode: &str) -> Inbound {
        let dir = tempfile::tempdir().unwrap().keep();
        let listen = free_addr();
        let upstream = Upstream::start("app").await;
        let server = ca.leaf(&[&spiffe("default", "b")], Validity::Current);
        let plugin = Plugin::new("features", filter_module("sdk_features"))
            .configuration(json!({"callout_cluster": "app", "grpc_cluster": "app"}));
        let config = Config::new()
            .filter_chain(FilterChain::new("features").plugin(plugin))
            .listener(
                Listener::new("inbound", listen)
                    .set("mtls", json!({"mode": mode}))
                    .route(Route::prefix("/").filter_chain("features").cluster("app")),
            )
            .cluster(Cluster::new("app").endpoint(upstream.addr))
            .raw(&mesh_section(&dir, "b", &server, ca));
        let wasp = Wasp::start(config).await;
        Inbound {
            wasp,
            listen,
            upstream,
        }
    }

    /// A GET over TLS with `config`, asking for the principal.
    async fn get_tls(&self, config: rustls::ClientConfig) -> anyhow::Result<Resp> {
        let request = Request::get(format!("https://localhost:{}/", self.listen.port()))
            .header("host", "localhost")
            .header("x-test", "properties")
            .body(empty())
            .unwrap();
        tls_request_with(config, self.listen, "localhost", request)
            .await
            .map(|(_, resp)| resp)
    }

    /// The failures counted for `reason`, once they reach `expected` (the
    /// server counts after the client saw the refusal) or after 5 s.
    async fn failures(&self, reason: &str, expected: f64) -> f64 {
        self.wasp
            .metric_reaching(
                "wasp_mtls_handshake_failures_total",
                &[("listener", "inbound"), ("reason", reason)],
                expected,
                std::time::Duration::from_secs(5),
            )
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_accepts_a_mesh_certificate_and_filters_see_its_spiffe_id() {
    let ca = TestCa::new("mesh root");
    let inbound = Inbound::start(&ca, "STRICT").await;
    let client = ca.leaf(&[&spiffe("shop", "a")], Validity::Current);
    let resp = inbound.get_tls(client.client_config(&ca)).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("x-prop-principal"),
        Some(spiffe("shop", "a").as_str())
    );
    assert_eq!(inbound.upstream.hits(), 1);
    let metrics = inbound.wasp.metrics().await;
    assert_eq!(
        metrics.sum(
            "wasp_mtls_connections_total",
            &[("listener", "inbound"), ("transport", "mtls")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_bad_client_certificates_and_counts_each_reason() {
    let ca = TestCa::new("mesh root");
    let inbound = Inbound::start(&ca, "STRICT").await;
    let other_ca = TestCa::new("another root");
    let cases: Vec<(&str, rustls::ClientConfig)> = vec![
        (
            "unknown_ca",
            other_ca
                .leaf(&[&spiffe("shop", "a")], Validity::Current)
                .client_config(&ca),
        ),
        (
            "expired",
            ca.leaf(&[&spiffe("shop", "a")], Validity::Expired)
                .client_config(&ca),
        ),
        (
            "spiffe_id",
            ca.leaf(&["spiffe://other.domain/ns/shop/sa/a"], Validity::Current)
                .client_config(&ca),
        ),
        (
            "uri_san_count",
            ca.leaf(
                &[&spiffe("shop", "a"), &spiffe("shop", "b")],
                Validity::Current,
            )
            .client_config(&ca),
        ),
        ("no_client_cert", anonymous_client_config(&ca)),
    ];
    for (reason, config) in cases {
        let result = inbound.get_tls(config).await;
        assert!(result.is_err(), "{reason}: {result:?}");
        assert_eq!(inbound.failures(reason, 1.0).await, 1.0, "{reason}");
    }
    // A certificate without any URI SAN is refused as well.
    let none = ca.leaf(&[], Validity::Current).client_config(&ca);
    assert!(inbound.get_tls(none).await.is_err());
    assert_eq!(inbound.failures("uri_san_count", 2.0).await, 2.0);
    // Plain text on a STRICT port is no handshake at all.
    let plain = Client::http1()
        .get(&format!("http://{}/", inbound.listen))
        .await;
    assert!(plain.is_err() || plain.unwrap().status != 200);
    assert_eq!(inbound.upstream.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_serves_mutual_tls_and_plain_text_on_one_port() {
    let ca = TestCa::new("mesh root");
    let inbound = Inbound::start(&ca, "PERMISSIVE").await;
    let plain = Client::http1()
        .get_with(
            &format!("http://{}/", inbound.listen),
            &[("x-test", "properties")],
        )
        .await
        .unwrap();
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("x-prop-principal"), Some(""));
    let client = ca.leaf(&[&spiffe("shop", "a")], Validity::Current);
    let tls = inbound.get_tls(client.client_config(&ca)).await.unwrap();
    assert_eq!(tls.status, 200);
    assert_eq!(
        tls.header("x-prop-principal"),
        Some(spiffe("shop", "a").as_str())
    );
    // TLS without a client certificate is still refused.
    assert!(inbound.get_tls(anonymous_client_config(&ca)).await.is_err());
    let metrics = inbound.wasp.metrics().await;
    for transport in ["mtls", "plaintext"] {
        assert_eq!(
            metrics.sum(
                "wasp_mtls_connections_total",
                &[("listener", "inbound"), ("transport", transport)]
            ),
            1.0,
            "{transport}"
        );
    }
    assert_eq!(inbound.upstream.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_without_a_mesh_section_is_a_configuration_error() {
    let listen = free_addr();
    let config = Config::new().listener(
        Listener::new("inbound", listen)
            .set("mtls", json!({"mode": "STRICT"}))
            .route(Route::prefix("/").direct(200, "ok")),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasp.yaml");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = std::process::Command::new(wasp_e2e::wasp::binary())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("listeners[0].mtls") && stderr.contains("'mesh' section"),
        "{stderr}"
    );
}
