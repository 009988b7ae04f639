//! TLS to wasp-cp's TLS endpoint (`--server https://…`): the control
//! plane's certificate is verified against the roots of `--ca-file` and the
//! URL's host (rustls' WebPKI verifier, ring provider), ALPN `h2`. waspctl
//! presents no client certificate; the token authorises it as on the
//! plaintext endpoint.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use wasp_controlplane_api::tls::ChannelConnector;

/// A connector trusting the roots of `ca_file` (PEM).
pub fn connector(ca_file: &Path) -> Result<ChannelConnector, String> {
    let at = ca_file.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("--ca-file {at}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("--ca-file {at}: no certificate found"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("--ca-file {at}: root certificate rejected: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(ChannelConnector::new(config))
}

/// Why the control plane's certificate was refused, if that is why `err`
/// happened.
pub fn certificate_refused(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(err);
    while let Some(inner) = source {
        let tls = inner.downcast_ref::<rustls::Error>().or_else(|| {
            inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|e| e.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(reason)) = tls {
            return Some(explain(reason));
        }
        source = inner.source();
    }
    None
}

/// A certificate error in words, with rustls' own name for it.
fn explain(reason: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    let words = match reason {
        E::UnknownIssuer => "it is not issued by a root of that file",
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "it does not name the host of --server (see wasp-cp's --tls-san)"
        }
        E::Expired | E::ExpiredContext { .. } => "it has expired",
        E::NotValidYet | E::NotValidYetContext { .. } => "it is not valid yet",
        E::BadSignature => "its signature is invalid",
        _ => "it was refused",
    };
    format!("{words} ({reason})")
}
