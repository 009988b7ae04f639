//! The control-plane stream over mutual TLS, through the real `wasp-cp`,
//! `waspctl` and `wasp` binaries: a proxy bootstraps with its token, gets
//! its workload certificate, then subscribes on the TLS endpoint with it
//! and still receives and ACKs pushed configurations; a client whose
//! certificate names another identity than its subscription claims, or
//! whose certificate comes from a foreign CA, is refused and counted; a
//! proxy whose TLS endpoint fails falls back to the bootstrap endpoint.

use std::net::SocketAddr;
use std::time::Duration;

use wasp_e2e::controlplane::{Node, within};
use wasp_e2e::discovery::{ClientCert, bootstrap_certificate, subscribe_tls};
use wasp_e2e::mesh::{TestCa, Validity, spiffe};
use wasp_e2e::{Client, Config, ControlPlane, Listener, Route, free_addr};

/// How long a proxy may take to subscribe, get a certificate and move.
const SETTLE: Duration = Duration::from_secs(30);

fn document(listen: SocketAddr, body: &str) -> String {
    Config::new()
        .listener(Listener::new("main", listen).route(Route::prefix("/").direct(200, body)))
        .to_string()
}

async fn body(listen: SocketAddr) -> String {
    match Client::http1().get(&format!("http://{listen}/")).await {
        Ok(resp) => resp.text(),
        Err(_) => String::new(),
    }
}

/// The entry of `node` in wasp-cp's /proxies.
async fn proxy_json(cp: &ControlPlane, node: &str) -> serde_json::Value {
    let all = wasp_e2e::client::get(&cp.http_url("/proxies"))
        .await
        .map(|r| r.json())
        .unwrap_or_default();
    all.as_array()
        .and_then(|a| a.iter().find(|p| p["node_id"] == node).cloned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_moves_its_subscription_to_mtls_once_certified_and_still_acks_pushes() {
    let cp = ControlPlane::start().await;
    let listen = free_addr();
    let v1 = cp.apply(&document(listen, "one"));
    let node = Node::new("web-1", "namespace=shop,sa=web").listener("main", listen);
    let wasp = cp.node(&node);
    wasp.wait_ready().await;

    within(
        SETTLE,
        "the subscription over mTLS with v1 ACKed",
        || async {
            let p = proxy_json(&cp, "web-1").await;
            p["transport"] == "mtls" && p["connected"] == true && p["running_version"] == v1
        },
    )
    .await;
    let status = proxy_json(&cp, "web-1").await;
    assert_eq!(status["peer_identity"], spiffe("shop", "web"), "{status}");
    assert!(
        cp.metric("wasp_cp_subscriptions_total{transport=\"mtls\"}")
            .await
            >= 1
    );
    assert!(
        wasp.log()
            .contains("moving the subscription to the control plane's TLS endpoint"),
        "{}",
        wasp.log_tail(4000)
    );

    // A new version applied with waspctl reaches the proxy over the mTLS
    // stream, which ACKs it.
    let v2 = cp.apply(&document(listen, "two"));
    within(SETTLE, "version 2 serving", || async {
        body(listen).await == "two"
    })
    .await;
    within(SETTLE, "the ACK of version 2", || async {
        proxy_json(&cp, "web-1").await["running_version"] == v2
    })
    .await;
    let status = cp.proxy_status("web-1");
    assert_eq!(status["transport"], "mtls", "{status}");
    assert_eq!(status["last_result"], "ACK", "{status}");
    assert!(
        !wasp
            .log()
            .contains("falling back to the bootstrap endpoint"),
        "{}",
        wasp.log_tail(4000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_identity_than_the_subscription_claims_is_refused() {
    let cp = ControlPlane::start().await;
    // A version to receive once subscribed.
    cp.apply(&document(free_addr(), "one"));
    let web = [("namespace", "shop"), ("sa", "web")];
    let issued = bootstrap_certificate(&cp.url(), "web-1", &web).await;
    assert_eq!(issued.spiffe_id, spiffe("shop", "web"));
    let cert = || ClientCert {
        chain_pem: &issued.chain_pem,
        key_pem: &issued.key_pem,
    };

    // The certificate claiming its own identity subscribes.
    let update = subscribe_tls(
        cp.tls_addr(),
        &issued.bundle_pem,
        Some(cert()),
        "web-1",
        &web,
    )
    .await
    .expect("a subscription with the matching identity");
    assert_eq!(update.tls_endpoint, cp.tls_addr().to_string());

    // The same certificate claiming the labels of another identity.
    let db = [("namespace", "shop"), ("sa", "db")];
    let refused = subscribe_tls(cp.tls_addr(), &issued.bundle_pem, Some(cert()), "db-1", &db)
        .await
        .expect_err("a subscription claiming another identity");
    assert!(
        refused.contains("PermissionDenied")
            && refused.contains(&format!(
                "client certificate identity {} does not match the identity {} this subscription claims",
                spiffe("shop", "web"),
                spiffe("shop", "db")
            )),
        "{refused}"
    );
    let mismatches = "wasp_cp_subscriptions_rejected_total{reason=\"identity_mismatch\"}";
    assert_eq!(cp.metric(mismatches).await, 1);
    assert_eq!(proxy_json(&cp, "db-1").await, serde_json::Value::Null);
    assert!(cp.log().contains("subscription refused"), "{}", cp.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_a_foreign_ca_fails_the_handshake() {
    let cp = ControlPlane::start().await;
    let web = [("namespace", "shop"), ("sa", "web")];
    // The real bundle, to verify the control plane with.
    let issued = bootstrap_certificate(&cp.url(), "web-1", &web).await;
    let foreign = TestCa::new("foreign").leaf(&[&spiffe("shop", "web")], Validity::Current);
    let refused = subscribe_tls(
        cp.tls_addr(),
        &issued.bundle_pem,
        Some(ClientCert {
            chain_pem: &foreign.cert_pem,
            key_pem: &foreign.key_pem,
        }),
        "web-2",
        &web,
    )
    .await
    .expect_err("a certificate from a foreign CA");
    eprintln!("refused: {refused}");
    // Counted (once per attempt: the client may have tried again).
    let unknown_ca = "wasp_cp_tls_handshake_failures_total{reason=\"unknown_ca\"}";
    within(
        Duration::from_secs(10),
        "the handshake failure counted",
        || async { cp.metric(unknown_ca).await >= 1 },
    )
    .await;
    assert_eq!(proxy_json(&cp, "web-2").await, serde_json::Value::Null);
    assert_eq!(
        cp.metric("wasp_cp_subscriptions_total{transport=\"mtls\"}")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_whose_tls_endpoint_fails_falls_back_to_the_bootstrap_endpoint() {
    let cp = ControlPlane::start().await;
    let listen = free_addr();
    let v1 = cp.apply(&document(listen, "one"));
    // Nothing listens there.
    let dead = format!("https://{}", free_addr());
    let node = Node::new("web-1", "namespace=shop,sa=web")
        .listener("main", listen)
        .args(&["--control-plane-tls-url", &dead]);
    let wasp = cp.node(&node);
    wasp.wait_ready().await;
    within(SETTLE, "the fallback", || async {
        wasp.log()
            .contains("falling back to the bootstrap endpoint with the token")
    })
    .await;
    within(SETTLE, "v1 ACKed over the bootstrap endpoint", || async {
        let p = proxy_json(&cp, "web-1").await;
        p["transport"] == "plaintext" && p["connected"] == true && p["running_version"] == v1
    })
    .await;
    let v2 = cp.apply(&document(listen, "two"));
    within(SETTLE, "the ACK of version 2", || async {
        proxy_json(&cp, "web-1").await["running_version"] == v2
    })
    .await;
    assert_eq!(body(listen).await, "two");
}
