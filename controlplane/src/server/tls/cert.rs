//! The TLS endpoint's server certificate: issued by the control plane's own
//! CA for the configured names (`--tls-san`), so proxies verify it with the
//! trust bundle they already hold. It is issued again at half its lifetime
//! and as soon as another root signs (a root rotation's promotion); the
//! handshake that notices does the signing, later ones reuse the result.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ca::{Ca, CaError};

/// The certificate served now.
#[derive(Debug)]
struct Current {
    certified: Arc<CertifiedKey>,
    renew_at: Instant,
    signer_pem: String,
}

/// Serves (and renews) the control plane's server certificate.
#[derive(Debug)]
pub struct ServerCert {
    ca: Arc<Ca>,
    names: Vec<String>,
    provider: Arc<CryptoProvider>,
    current: Mutex<Current>,
}

impl ServerCert {
    /// Issues the first certificate for `names` (DNS names or IP
    /// addresses); an unusable name is an error now rather than at the
    /// first handshake.
    pub fn new(
        ca: Arc<Ca>,
        names: Vec<String>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, CaError> {
        let current = issue(&ca, &names, &provider)?;
        Ok(Self {
            ca,
            names,
            provider,
            current: Mutex::new(current),
        })
    }

    /// The certificate to serve, issued again first when due.
    pub fn get(&self) -> Arc<CertifiedKey> {
        let mut current = self.current.lock().expect("lock");
        if Instant::now() >= current.renew_at || current.signer_pem != self.ca.signer_pem() {
            match issue(&self.ca, &self.names, &self.provider) {
                Ok(next) => {
                    tracing::info!(names = ?self.names, "TLS endpoint certificate issued");
                    *current = next;
                }
                Err(err) => tracing::error!(error = %err, "TLS endpoint certificate not renewed"),
            }
        }
        Arc::clone(&current.certified)
    }
}

fn issue(ca: &Ca, names: &[String], provider: &CryptoProvider) -> Result<Current, CaError> {
    let material = |what: &str, reason: String| CaError::Material {
        what: what.to_owned(),
        reason,
    };
    let issued = ca.issue_server(names)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| material("server certificate", e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())
        .map_err(|e| material("server key", e.to_string()))?;
    let certified = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| material("server certificate", e.to_string()))?;
    Ok(Current {
        certified: Arc::new(certified),
        renew_at: Instant::now() + issued.lifetime / 2,
        signer_pem: issued.signer_pem,
    })
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls::client::danger::ServerCertVerifier;

    use super::*;
    use crate::ca::CaOptions;
    use crate::store::RedbStore;

    #[test]
    fn the_server_certificate_names_the_configured_hosts_and_chains_to_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(dir.path()).unwrap());
        let options = CaOptions {
            trust_domain: "mesh.test".into(),
            lifetime: Duration::from_secs(3600),
            supplied: None,
            rotate_root: None,
        };
        let ca = Arc::new(Ca::start(store, &options).unwrap());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let cert = ServerCert::new(Arc::clone(&ca), names, Arc::clone(&provider)).unwrap();
        let served = cert.get();
        // Not issued again while fresh.
        assert!(Arc::ptr_eq(&served, &cert.get()));

        let mut roots = rustls::RootCertStore::empty();
        for root in CertificateDer::pem_slice_iter(ca.bundle().as_bytes()) {
            roots.add(root.unwrap()).unwrap();
        }
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        let now = rustls_pki_types::UnixTime::now();
        for name in ["localhost", "127.0.0.1"] {
            let name = rustls_pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(&served.cert[0], &served.cert[1..], &name, &[], now)
                .unwrap();
        }
        let other = rustls_pki_types::ServerName::try_from("wasp-cp.example").unwrap();
        assert!(
            verifier
                .verify_server_cert(&served.cert[0], &served.cert[1..], &other, &[], now)
                .is_err()
        );
        assert!(
            ServerCert::new(
                ca,
                vec!["not a name!".into()],
                Arc::new(rustls::crypto::ring::default_provider())
            )
            .is_err()
        );
    }
}
