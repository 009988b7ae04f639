//! Handshakes between the mesh's own listener and cluster TLS settings over
//! loopback: sessions resume, the resumed server side still holds the
//! client's verified certificate, and a change of the identity (bundle,
//! workload certificate, trust domain) on either side ends resumption while
//! re-installing the same material does not.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::HandshakeKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::*;

struct Ca {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A workload certificate for `id`.
    fn workload(&self, id: &str, mesh: &MeshIdentity) -> Workload {
        self.workload_until(id, mesh, None)
    }

    /// A workload certificate for `id`, valid until `not_after` if given.
    fn workload_until(
        &self,
        id: &str,
        mesh: &MeshIdentity,
        not_after: Option<std::time::SystemTime>,
    ) -> Workload {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        if let Some(not_after) = not_after {
            params.not_after = not_after.into();
        }
        params.subject_alt_names = vec![rcgen::SanType::URI(id.try_into().unwrap())];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let der = rustls_pki_types::PrivateKeyDer::Pkcs8(
            rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
        );
        workload_from_der(vec![cert.der().clone()], der, mesh.crypto()).unwrap()
    }
}

/// A mesh identity with a certificate for `id` and `bundle` as trust.
fn identity(ca: &Ca, id: &str, bundle: &str) -> Arc<MeshIdentity> {
    let mesh = MeshIdentity::new();
    mesh.set_workload(ca.workload(id, &mesh));
    mesh.set_trust(trust_from_pem(bundle, mesh.crypto()).unwrap());
    mesh
}

/// What the server saw of one connection: its kind, the client's
/// certificate chain length, and whether it resumed past the client
/// certificate's expiry.
type Seen = (Option<HandshakeKind>, usize, bool);

/// A loopback listener with `mesh`'s mutual-TLS acceptor, answering one
/// exchange per connection.
async fn server(mesh: &Arc<MeshIdentity>) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let acceptor = Arc::new(inbound::acceptor(mesh).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.current();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let session = tls.get_ref().1;
                let chain = session.peer_certificates().map_or(0, <[_]>::len);
                let expired = sessions::resumed_past_expiry(session);
                let _ = seen.send((session.handshake_kind(), chain, expired));
                let mut ping = [0u8; 4];
                if tls.read_exact(&mut ping).await.is_ok() {
                    let _ = tls.write_all(b"pong").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (addr, rx)
}

/// A client of `addr` with `mesh`'s ISTIO_MUTUAL settings.
fn client(mesh: &Arc<MeshIdentity>, addr: SocketAddr) -> outbound::UpstreamTls {
    let cluster: wasp_config::ClusterConfig = serde_yaml_ng::from_str(&format!(
        "{{name: b, endpoints: ['{addr}'], tls: {{mode: ISTIO_MUTUAL}}}}"
    ))
    .unwrap();
    let counter = |name: &str, labels: &[&str]| {
        prometheus::IntCounterVec::new(prometheus::Opts::new(name, name), labels).unwrap()
    };
    let metrics = outbound::UpstreamTlsMetrics {
        failures: counter("failures", &["cluster", "reason"]),
        handshakes: counter("handshakes", &["cluster", "resumed"]),
    };
    outbound::UpstreamTls::new(&cluster, mesh, metrics)
        .unwrap()
        .unwrap()
}

/// One connection and exchange; the client's handshake kind.
async fn exchange(tls: &outbound::UpstreamTls, addr: SocketAddr) -> Option<HandshakeKind> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut stream = tls.connect(stream).await.unwrap();
    let kind = stream.get_ref().1.handshake_kind();
    stream.write_all(b"ping").await.unwrap();
    let mut pong = Vec::new();
    stream.read_to_end(&mut pong).await.unwrap();
    assert_eq!(pong, b"pong");
    kind
}

const FULL: Option<HandshakeKind> = Some(HandshakeKind::Full);
const RESUMED: Option<HandshakeKind> = Some(HandshakeKind::Resumed);

#[tokio::test]
async fn sessions_resume_and_the_server_keeps_the_client_certificate() {
    let ca = Ca::new();
    let bundle = ca.cert.pem();
    let a = identity(&ca, "spiffe://cluster.local/ns/x/sa/a", &bundle);
    let b = identity(&ca, "spiffe://cluster.local/ns/x/sa/b", &bundle);
    let (addr, mut seen) = server(&b).await;
    let tls = client(&a, addr);
    assert_eq!(exchange(&tls, addr).await, FULL);
    assert_eq!(seen.recv().await, Some((FULL, 1, false)));
    for _ in 0..3 {
        assert_eq!(exchange(&tls, addr).await, RESUMED);
        assert_eq!(seen.recv().await, Some((RESUMED, 1, false)));
    }
    // The same material installed again (a reload) keeps the sessions.
    a.set_trust(trust_from_pem(&bundle, a.crypto()).unwrap());
    b.set_trust(trust_from_pem(&bundle, b.crypto()).unwrap());
    a.set_trust_domain("cluster.local");
    assert_eq!(exchange(&tls, addr).await, RESUMED);
}

/// A change of identity material, named.
type Change = Box<dyn Fn()>;

#[tokio::test]
async fn an_identity_change_on_either_side_ends_resumption() {
    let ca = Ca::new();
    let extra = Ca::new();
    let bundle = ca.cert.pem();
    let a = identity(&ca, "spiffe://cluster.local/ns/x/sa/a", &bundle);
    let b = identity(&ca, "spiffe://cluster.local/ns/x/sa/b", &bundle);
    let (addr, _seen) = server(&b).await;
    let tls = client(&a, addr);
    let two_roots = format!("{bundle}{}", extra.cert.pem());
    let changes: Vec<(&str, Change)> = vec![
        ("client bundle", {
            let (a, pem) = (Arc::clone(&a), two_roots.clone());
            Box::new(move || a.set_trust(trust_from_pem(&pem, a.crypto()).unwrap()))
        }),
        ("server bundle", {
            let (b, pem) = (Arc::clone(&b), two_roots.clone());
            Box::new(move || b.set_trust(trust_from_pem(&pem, b.crypto()).unwrap()))
        }),
        ("client certificate", {
            let a = Arc::clone(&a);
            let workload =
                std::sync::Mutex::new(Some(ca.workload("spiffe://cluster.local/ns/x/sa/a", &a)));
            Box::new(move || a.set_workload(workload.lock().unwrap().take().unwrap()))
        }),
        ("server certificate", {
            let b = Arc::clone(&b);
            let workload =
                std::sync::Mutex::new(Some(ca.workload("spiffe://cluster.local/ns/x/sa/b", &b)));
            Box::new(move || b.set_workload(workload.lock().unwrap().take().unwrap()))
        }),
        ("server trust domain", {
            let b = Arc::clone(&b);
            Box::new(move || {
                // Back to the default domain in two steps: two new
                // generations, sessions of neither resume.
                b.set_trust_domain("elsewhere.local");
                b.set_trust_domain("cluster.local");
            })
        }),
    ];
    assert_eq!(exchange(&tls, addr).await, FULL);
    for (what, change) in changes {
        assert_eq!(exchange(&tls, addr).await, RESUMED, "before: {what}");
        change();
        assert_eq!(exchange(&tls, addr).await, FULL, "after: {what}");
    }
    assert_eq!(exchange(&tls, addr).await, RESUMED);
}

#[tokio::test]
async fn sidecars_negotiate_aes_128_gcm_sha256() {
    assert_eq!(
        provider().cipher_suites[0].suite(),
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
    );
    let ca = Ca::new();
    let bundle = ca.cert.pem();
    let a = identity(&ca, "spiffe://cluster.local/ns/x/sa/a", &bundle);
    let b = identity(&ca, "spiffe://cluster.local/ns/x/sa/b", &bundle);
    let (addr, _seen) = server(&b).await;
    let tls = client(&a, addr);
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tls.connect(stream).await.unwrap();
    assert_eq!(
        stream
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
    );
}

#[tokio::test]
async fn a_session_is_not_resumed_past_the_peer_certificate_expiry() {
    let ca = Ca::new();
    let bundle = ca.cert.pem();
    let soon = Some(std::time::SystemTime::now() + std::time::Duration::from_secs(2));
    // A client whose certificate expires in 2 s, and a server whose does.
    let a = MeshIdentity::new();
    a.set_workload(ca.workload_until("spiffe://cluster.local/ns/x/sa/a", &a, soon));
    a.set_trust(trust_from_pem(&bundle, a.crypto()).unwrap());
    let b = identity(&ca, "spiffe://cluster.local/ns/x/sa/b", &bundle);
    let c = MeshIdentity::new();
    c.set_workload(ca.workload_until("spiffe://cluster.local/ns/x/sa/c", &c, soon));
    c.set_trust(trust_from_pem(&bundle, c.crypto()).unwrap());
    let (to_b, mut seen_b) = server(&b).await;
    let (to_c, _seen_c) = server(&c).await;
    let a_to_b = client(&a, to_b);
    let b_to_c = client(&b, to_c);
    assert_eq!(exchange(&a_to_b, to_b).await, FULL);
    assert_eq!(seen_b.recv().await, Some((FULL, 1, false)));
    assert_eq!(exchange(&b_to_c, to_c).await, FULL);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    // The server tells a resumed session of an expired client (a listener
    // then drops it)...
    let stream = tokio::net::TcpStream::connect(to_b).await.unwrap();
    let resumed = a_to_b.connect(stream).await.unwrap();
    assert_eq!(resumed.get_ref().1.handshake_kind(), RESUMED);
    assert_eq!(seen_b.recv().await, Some((RESUMED, 1, true)));
    // ...and the client refuses to resume with an expired server.
    let stream = tokio::net::TcpStream::connect(to_c).await.unwrap();
    let err = b_to_c.connect(stream).await.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}
