//! Mutual TLS on listeners: the server configuration (the workload
//! certificate, client certificates verified by [`SpiffeClientVerifier`]),
//! telling TLS from plain text on PERMISSIVE ports by the first byte, and
//! the peer facts filters read (`source.principal`, `connection.mtls`, …).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::IntCounterVec;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::sessions::{TICKETS_PER_HANDSHAKE, TicketGeneration};
use super::spiffe::{self, SpiffeClientVerifier};
use super::{MeshIdentity, WorkloadCert};

/// The first byte of a TLS handshake record (ContentType handshake).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A listener's mutual-TLS settings at run time.
pub struct MtlsListener {
    /// Handshakes with the workload certificate, client certificate required.
    pub acceptor: MtlsAcceptor,
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

/// TLS acceptors presenting the workload certificate and requiring a
/// client certificate with a SPIFFE ID of the trust domain, ALPN `h2` and
/// `http/1.1`: one per generation of the mesh identity, sealing session
/// tickets with that generation's ticketer (see [`super::sessions`]).
pub struct MtlsAcceptor {
    base: ServerConfig,
    mesh: Arc<MeshIdentity>,
    current: ArcSwap<(u64, TlsAcceptor)>,
}

impl MtlsAcceptor {
    /// The acceptor of the current generation (made at its first use).
    pub fn current(&self) -> TlsAcceptor {
        let generation = self.mesh.sessions().current();
        let current = self.current.load();
        if current.0 == generation.number {
            return current.1.clone();
        }
        let acceptor = with_ticketer(&self.base, &generation);
        self.current
            .store(Arc::new((generation.number, acceptor.clone())));
        acceptor
    }
}

/// `base` sealing tickets with `generation`'s ticketer.
fn with_ticketer(base: &ServerConfig, generation: &TicketGeneration) -> TlsAcceptor {
    let mut config = base.clone();
    config.ticketer = Arc::clone(&generation.ticketer);
    TlsAcceptor::from(Arc::new(config))
}

/// The mutual-TLS acceptors of `mesh`'s identity.
pub fn acceptor(mesh: &Arc<MeshIdentity>) -> Result<MtlsAcceptor, rustls::Error> {
    let provider = Arc::clone(mesh.crypto());
    let verifier = SpiffeClientVerifier::new(Arc::clone(mesh), Arc::clone(&provider));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(WorkloadCert(Arc::clone(mesh))));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.send_tls13_tickets = TICKETS_PER_HANDSHAKE;
    // Stateless tickets only: no per-listener cache that a reload would lose.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    let generation = mesh.sessions().current();
    let first = with_ticketer(&config, &generation);
    Ok(MtlsAcceptor {
        base: config,
        mesh: Arc::clone(mesh),
        current: ArcSwap::from_pointee((generation.number, first)),
    })
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
