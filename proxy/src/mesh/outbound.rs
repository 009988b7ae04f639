//! TLS origination to a cluster's endpoints: ISTIO_MUTUAL presents the
//! workload certificate and accepts only a peer chaining to the mesh bundle
//! with an expected SPIFFE ID ([`SpiffeServerVerifier`]); SIMPLE verifies the
//! server by name against `ca_file` or the mesh bundle. ALPN offers the
//! protocol the cluster speaks. One client configuration per cluster keeps
//! TLS sessions for resumption when pooled connections are re-opened.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::spiffe::SpiffeServerVerifier;
use super::{MeshIdentity, WorkloadCert, trust_from_pem};
use wasp_config::{ClusterConfig, UpstreamProtocol, UpstreamTlsMode};

/// How one cluster originates TLS.
pub struct UpstreamTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    /// `wasp_upstream_tls_failures_total{cluster,reason}` for this cluster.
    pub failures: prometheus::IntCounterVec,
    cluster: Arc<str>,
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
        failures: prometheus::IntCounterVec,
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
            connector: TlsConnector::from(Arc::new(client)),
            server_name,
            failures,
            cluster: config.name.as_str().into(),
        }))
    }

    /// Runs the TLS handshake on a connected socket; failures are counted
    /// by reason.
    pub async fn connect(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        match self
            .connector
            .connect(self.server_name.clone(), stream)
            .await
        {
            Ok(stream) => Ok(stream),
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
