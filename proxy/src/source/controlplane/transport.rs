//! How the subscription reaches the control plane. A proxy bootstraps on
//! the configured URL with its bearer token; once it holds a workload
//! certificate and the trust bundle, and knows the control plane's TLS
//! endpoint (`--control-plane-tls-url`, or the `tls_endpoint` every update
//! names), it reconnects there over mutual TLS: it presents its current
//! certificate (a rotated one on the next connection) and verifies the
//! control plane's certificate against the trust bundle and the
//! endpoint's host name. When the TLS endpoint fails, the proxy falls back
//! to the bootstrap endpoint at once and tries TLS again after
//! [`TLS_RETRY`], so it is never stranded; when the bootstrap endpoint
//! fails too (the control plane is away), the failure is forgotten and the
//! next attempt tries TLS first.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use rustls::ClientConfig;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use wasp_controlplane_api::tls::ChannelConnector;

use crate::mesh::{MeshIdentity, WorkloadCert};

/// How long after a failure of the TLS endpoint the proxy stays on the
/// bootstrap endpoint before it tries TLS again.
pub const TLS_RETRY: Duration = Duration::from_secs(30);

/// Which endpoint a session uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Transport {
    /// The configured URL, with the bearer token.
    Bootstrap,
    /// The TLS endpoint at this `https://` URL, with the workload
    /// certificate.
    Mtls(String),
}

/// Where the TLS endpoint is and whether it works: kept across sessions.
#[derive(Debug)]
pub(super) struct TlsRoute {
    configured: Option<String>,
    learned: Option<String>,
    retry_at: Option<Instant>,
}

impl TlsRoute {
    /// A route with the `--control-plane-tls-url` value, if any.
    pub(super) fn new(configured: Option<String>) -> Self {
        Self {
            configured,
            learned: None,
            retry_at: None,
        }
    }

    /// Records the `tls_endpoint` of an update received over
    /// `bootstrap_url`.
    pub(super) fn learn(&mut self, endpoint: &str, bootstrap_url: &str) {
        let learned = resolve(endpoint, bootstrap_url);
        if learned != self.learned {
            if let Some(url) = &learned {
                tracing::info!(url, "the control plane serves TLS");
            }
            self.learned = learned;
        }
    }

    /// The TLS endpoint's URL, if known.
    fn url(&self) -> Option<&str> {
        self.configured.as_deref().or(self.learned.as_deref())
    }

    /// When a session on the bootstrap endpoint should give way to TLS:
    /// never without a URL, a certificate or a bundle; after
    /// [`TLS_RETRY`] once TLS failed; at once otherwise.
    pub(super) fn upgrade_at(&self, mesh: &MeshIdentity) -> Option<Instant> {
        self.url()?;
        mesh.workload()?;
        mesh.trust()?;
        Some(self.retry_at.unwrap_or_else(Instant::now))
    }

    /// The transport of the next session.
    pub(super) fn next(&self, mesh: &MeshIdentity) -> Transport {
        match (self.upgrade_at(mesh), self.url()) {
            (Some(at), Some(url)) if at <= Instant::now() => Transport::Mtls(url.to_owned()),
            _ => Transport::Bootstrap,
        }
    }

    /// The TLS endpoint failed: bootstrap sessions until [`TLS_RETRY`]
    /// has passed.
    pub(super) fn failed(&mut self) {
        self.retry_at = Some(Instant::now() + TLS_RETRY);
    }

    /// Forgets a failure of the TLS endpoint: a TLS session subscribed, or
    /// the bootstrap endpoint failed as well (the control plane was away
    /// rather than its TLS endpoint broken), so the next attempt may use
    /// TLS again.
    pub(super) fn reset(&mut self) {
        self.retry_at = None;
    }
}

/// The `https://` URL of an advertised `host:port`: an empty or
/// unspecified host is the bootstrap URL's host. `None` when nothing is
/// advertised or it makes no URL.
pub(super) fn resolve(endpoint: &str, bootstrap_url: &str) -> Option<String> {
    if endpoint.is_empty() {
        return None;
    }
    let (host, port) = endpoint.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let unspecified = bare.is_empty()
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
    let host = if unspecified {
        bootstrap_url.parse::<Uri>().ok()?.host()?.to_owned()
    } else {
        host.to_owned()
    };
    let url = format!("https://{host}:{port}");
    url.parse::<Uri>().ok()?;
    Some(url)
}

/// A channel to the TLS endpoint at `url` with `mesh`'s certificate and
/// bundle as they are now.
pub(super) async fn mtls_channel(
    url: &str,
    mesh: &Arc<MeshIdentity>,
    timeout: Duration,
) -> Result<Channel, String> {
    let trust = mesh.trust().ok_or("no trust bundle")?;
    let config = ClientConfig::builder_with_provider(Arc::clone(mesh.crypto()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(Arc::clone(&trust.roots))
        .with_client_cert_resolver(Arc::new(WorkloadCert(Arc::clone(mesh))));
    // The workload certificate as client certificate; the control plane's
    // certificate verified against the trust bundle and the URL's host.
    let connector = ChannelConnector::new(config);
    Endpoint::from_shared(url.to_owned())
        .map_err(|err| format!("{url}: {err}"))?
        .connect_timeout(timeout)
        .connect_with_connector(connector)
        .await
        .map_err(|err| format!("cannot connect: {err}: {}", source_text(&err)))
}

/// The sources of an error, joined.
pub(super) fn source_text(err: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(inner) = source {
        parts.push(inner.to_string());
        source = inner.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advertised_endpoint_without_a_usable_host_takes_the_bootstrap_host() {
        let boot = "http://cp.mesh.internal:7070";
        assert_eq!(
            resolve("127.0.0.1:7072", boot).as_deref(),
            Some("https://127.0.0.1:7072")
        );
        assert_eq!(
            resolve("0.0.0.0:7072", boot).as_deref(),
            Some("https://cp.mesh.internal:7072")
        );
        assert_eq!(
            resolve("[::]:7072", boot).as_deref(),
            Some("https://cp.mesh.internal:7072")
        );
        assert_eq!(
            resolve(":7072", boot).as_deref(),
            Some("https://cp.mesh.internal:7072")
        );
        assert_eq!(
            resolve("[::1]:7072", boot).as_deref(),
            Some("https://[::1]:7072")
        );
        assert_eq!(resolve("", boot), None);
        assert_eq!(resolve("cp:notaport", boot), None);
    }

    #[tokio::test(start_paused = true)]
    async fn tls_waits_for_a_certificate_and_a_bundle_and_backs_off_after_a_failure() {
        let mesh = MeshIdentity::new();
        let mut route = TlsRoute::new(None);
        route.learn("127.0.0.1:7072", "http://127.0.0.1:7070");
        // No certificate yet: bootstrap.
        assert_eq!(route.next(&mesh), Transport::Bootstrap);
        assert_eq!(route.upgrade_at(&mesh), None);
        install_identity(&mesh);
        assert_eq!(
            route.next(&mesh),
            Transport::Mtls("https://127.0.0.1:7072".into())
        );
        route.failed();
        assert_eq!(route.next(&mesh), Transport::Bootstrap);
        assert_eq!(route.upgrade_at(&mesh), Some(Instant::now() + TLS_RETRY));
        tokio::time::advance(TLS_RETRY).await;
        assert_eq!(
            route.next(&mesh),
            Transport::Mtls("https://127.0.0.1:7072".into())
        );
        // A failure forgotten (the bootstrap endpoint failed too): TLS
        // first again at once.
        route.failed();
        route.reset();
        assert_eq!(
            route.next(&mesh),
            Transport::Mtls("https://127.0.0.1:7072".into())
        );
        // A configured URL wins over the advertised one.
        let configured = TlsRoute::new(Some("https://cp.example:9443".into()));
        assert_eq!(
            configured.next(&mesh),
            Transport::Mtls("https://cp.example:9443".into())
        );
    }

    /// A self-signed SPIFFE certificate as workload and as bundle.
    fn install_identity(mesh: &MeshIdentity) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(
            "spiffe://cluster.local/ns/a/sa/b".try_into().unwrap(),
        )];
        let cert = params.self_signed(&key).unwrap();
        let der = rustls_pki_types::PrivateKeyDer::Pkcs8(
            rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
        );
        let workload =
            crate::mesh::workload_from_der(vec![cert.der().clone()], der, mesh.crypto()).unwrap();
        mesh.set_workload(workload);
        mesh.set_trust(crate::mesh::trust_from_pem(&cert.pem(), mesh.crypto()).unwrap());
    }
}
