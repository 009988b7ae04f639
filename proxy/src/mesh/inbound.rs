//! Mutual TLS on listeners: the server configuration (the workload
//! certificate, client certificates verified by [`SpiffeClientVerifier`]),
//! telling TLS from plain text on PERMISSIVE ports by the first byte, and
//! the peer facts filters read (`source.principal`, `connection.mtls`, …).

use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::sessions::{MeshTickets, TICKETS_PER_HANDSHAKE};
use super::spiffe::{self, SpiffeClientVerifier};
use super::{MeshIdentity, WorkloadCert};

/// The first byte of a TLS handshake record (ContentType handshake).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A listener's mutual-TLS settings at run time.
pub struct MtlsListener {
    /// Handshakes with the workload certificate, client certificate required.
    pub acceptor: TlsAcceptor,
    /// Plain text is accepted too (PERMISSIVE).
    pub permissive: bool,
    /// `wasp_mtls_handshake_failures_total{listener,reason}`.
    pub failures: IntCounterVec,
    /// `wasp_mtls_connections_total{listener,transport}`.
    pub connections: IntCounterVec,
    /// `wasp_mtls_handshakes_total{listener,resumed}`.
    pub handshakes: IntCounterVec,
}

impl std::fmt::Debug for MtlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsListener")
            .field("permissive", &self.permissive)
            .finish()
    }
}

/// A TLS acceptor presenting the workload certificate and requiring a
/// client certificate with a SPIFFE ID of the trust domain. ALPN offers
/// `h2` and `http/1.1`. Sessions resume with the mesh's session tickets
/// (shared by every listener, renewed with the identity: see
/// [`super::sessions`]).
pub fn acceptor(mesh: &Arc<MeshIdentity>) -> Result<TlsAcceptor, rustls::Error> {
    let provider = Arc::clone(mesh.crypto());
    let verifier = SpiffeClientVerifier::new(Arc::clone(mesh), Arc::clone(&provider));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(WorkloadCert(Arc::clone(mesh))));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer = Arc::new(MeshTickets(Arc::clone(mesh.sessions())));
    config.send_tls13_tickets = TICKETS_PER_HANDSHAKE;
    // Stateless tickets only: no per-listener cache that a reload would lose.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Waits for the client's first byte (up to `timeout`) and tells whether it
/// starts a TLS handshake. `None`: the client closed or stayed silent.
pub async fn starts_with_tls(stream: &TcpStream, timeout: Duration) -> Option<bool> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) => Some(first[0] == TLS_HANDSHAKE_RECORD),
        _ => None,
    }
}

/// The TLS facts of an established server-side session.
pub fn session_facts(
    session: &rustls::ServerConnection,
    mesh: Option<&MeshIdentity>,
) -> wasp_filter_host::TlsInfo {
    let mut info = wasp_filter_host::TlsInfo {
        server_name: session.server_name().map(str::to_owned),
        version: session
            .protocol_version()
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        ..Default::default()
    };
    if let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) {
        if let Ok(facts) = spiffe::cert_facts(leaf) {
            info.peer_uri_sans = facts.uri_sans;
            info.peer_subject = Some(facts.subject);
        }
        info.peer_cert_sha256 = Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            leaf.as_ref(),
        )));
    }
    if let Some(workload) = mesh.and_then(MeshIdentity::workload) {
        info.local_uri_sans = vec![workload.spiffe_id.clone()];
    }
    info
}
