//! TLS origination to a cluster's endpoints: ISTIO_MUTUAL presents the
//! workload certificate and accepts only a peer chaining to the mesh bundle
//! with an expected SPIFFE ID ([`SpiffeServerVerifier`]); SIMPLE verifies the
//! server by name against `ca_file` or the mesh bundle. ALPN offers the
//! protocol the cluster speaks. Each endpoint of a cluster keeps its TLS
//! sessions ([`EndpointSessions`]) so that re-opened connections resume
//! them; handshakes are counted by kind (full or resumed).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use prometheus::{IntCounter, IntCounterVec};
use rustls::ClientConfig;
use rustls::HandshakeKind;
use rustls::client::Resumption;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::sessions::{EndpointSessions, Sessions, resumed_past_expiry};
use super::spiffe::SpiffeServerVerifier;
use super::{MeshIdentity, WorkloadCert, trust_from_pem};
use wasp_config::{ClusterConfig, UpstreamProtocol, UpstreamTlsMode};

/// Endpoints whose sessions a cluster keeps; beyond this (a cluster whose
/// DNS answers keep changing) it starts again with none.
const MAX_ENDPOINTS: usize = 1024;

/// How one cluster originates TLS.
pub struct UpstreamTls {
    /// The cluster's client configuration; each endpoint's connector is a
    /// copy with its own session store (same verifier and certificate
    /// resolver, as resumption requires).
    client: ClientConfig,
    sessions: Arc<Sessions>,
    /// One connector per endpoint address and the generation it belongs
    /// to, made at the endpoint's first connection of each generation.
    endpoints: Mutex<HashMap<SocketAddr, (u64, TlsConnector)>>,
    server_name: ServerName<'static>,
    /// `wasp_upstream_tls_failures_total{cluster,reason}` for this cluster.
    pub failures: IntCounterVec,
    /// `wasp_upstream_tls_handshakes_total{cluster,resumed}`: full, resumed.
    handshakes: [IntCounter; 2],
    cluster: Arc<str>,
}

/// The metrics a cluster's TLS counts in.
#[derive(Clone, Debug)]
pub struct UpstreamTlsMetrics {
    /// `wasp_upstream_tls_failures_total{cluster,reason}`.
    pub failures: IntCounterVec,
    /// `wasp_upstream_tls_handshakes_total{cluster,resumed}`.
    pub handshakes: IntCounterVec,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl UpstreamTls {
    /// The TLS settings of `config`, `None` for plain text.
    pub fn new(
        config: &ClusterConfig,
        mesh: &Arc<MeshIdentity>,
        metrics: UpstreamTlsMetrics,
    ) -> Result<Option<Self>, String> {
        let Some(tls) = &config.tls else {
            return Ok(None);
        };
        let provider = Arc::clone(mesh.crypto());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let mut client = match tls.mode {
            UpstreamTlsMode::Disable => return Ok(None),
            UpstreamTlsMode::IstioMutual => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::new(
                    Arc::clone(mesh),
                    provider,
                    tls.expected_identities.clone(),
                )))
                .with_client_cert_resolver(Arc::new(WorkloadCert(Arc::clone(mesh)))),
            UpstreamTlsMode::Simple => {
                let pem = match &tls.ca_file {
                    Some(path) => std::fs::read_to_string(path)
                        .map_err(|e| format!("ca_file '{path}': {e}"))?,
                    None => mesh
                        .trust()
                        .map(|t| t.pem.clone())
                        .ok_or("no mesh trust bundle to verify the server with")?,
                };
                let trust = trust_from_pem(&pem, &provider)?;
                builder
                    .with_root_certificates(Arc::clone(&trust.roots))
                    .with_no_client_auth()
            }
        };
        client.alpn_protocols = vec![match config.protocol {
            UpstreamProtocol::Http1 => b"http/1.1".to_vec(),
            UpstreamProtocol::Http2 => b"h2".to_vec(),
        }];
        let name = match &tls.sni {
            Some(sni) => sni.clone(),
            None => default_server_name(config),
        };
        let server_name =
            ServerName::try_from(name.clone()).map_err(|e| format!("server name '{name}': {e}"))?;
        Ok(Some(Self {
            client,
            sessions: Arc::clone(mesh.sessions()),
            endpoints: Mutex::new(HashMap::new()),
            server_name,
            handshakes: ["false", "true"].map(|resumed| {
                metrics
                    .handshakes
                    .with_label_values(&[&config.name, resumed])
            }),
            failures: metrics.failures,
            cluster: config.name.as_str().into(),
        }))
    }

    /// Runs the TLS handshake on a connected socket; handshakes are counted
    /// by kind, failures by reason.
    pub async fn connect(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        let connector = self.connector(stream.peer_addr()?);
        match connector.connect(self.server_name.clone(), stream).await {
            Ok(stream) => {
                let session = stream.get_ref().1;
                if resumed_past_expiry(session) {
                    self.failures
                        .with_label_values(&[&*self.cluster, "expired"])
                        .inc();
                    tracing::debug!(cluster = %self.cluster, "resumed TLS session of an expired server certificate dropped");
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "resumed TLS session: the server's certificate has expired",
                    ));
                }
                let resumed = session.handshake_kind() == Some(HandshakeKind::Resumed);
                self.handshakes[usize::from(resumed)].inc();
                Ok(stream)
            }
            Err(err) => {
                let reason = super::spiffe::failure_reason(&err);
                self.failures
                    .with_label_values(&[&*self.cluster, reason])
                    .inc();
                tracing::debug!(cluster = %self.cluster, error = %err, reason, "upstream TLS handshake failed");
                Err(err)
            }
        }
    }
}

impl UpstreamTls {
    /// The connector of the endpoint at `addr` for the current generation
    /// of the mesh identity: a connection keeps the session store of the
    /// generation it started in, so its tickets never reach a later one.
    fn connector(&self, addr: SocketAddr) -> TlsConnector {
        let generation = self.sessions.generation();
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, connector)) = endpoints.get(&addr)
            && *known == generation
        {
            return connector.clone();
        }
        if endpoints.len() >= MAX_ENDPOINTS && !endpoints.contains_key(&addr) {
            endpoints.clear();
        }
        let mut client = self.client.clone();
        client.resumption = Resumption::store(Arc::new(EndpointSessions::default()));
        let connector = TlsConnector::from(Arc::new(client));
        endpoints.insert(addr, (generation, connector.clone()));
        connector
    }
}

/// The host of the cluster's first endpoint (its SNI when `sni` is unset).
fn default_server_name(config: &ClusterConfig) -> String {
    let address = config
        .endpoints
        .first()
        .map(|e| e.address.as_str())
        .unwrap_or("localhost");
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}
