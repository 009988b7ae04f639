//! Mesh security: the workload identity (certificate and key) and the trust
//! bundle, swapped atomically when they rotate, and what is built on them —
//! mutual TLS on listeners ([`inbound`]), TLS origination to clusters
//! ([`outbound`]), the SPIFFE checks ([`spiffe`]) and TLS session
//! resumption ([`sessions`]).
//!
//! Handshakes read the identity through [`MeshIdentity`] each time, so a
//! rotated certificate or bundle applies to the next handshake while open
//! connections keep theirs; a change also ends every resumable session, so
//! none is resumed past the identity that verified it.

pub mod inbound;
pub mod outbound;
pub mod sessions;
pub mod spiffe;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use wasp_config::MeshConfig;

/// Why mesh certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// A PEM file could not be read or held nothing usable.
    #[error("{field} '{path}': {reason}")]
    File {
        /// The configuration field.
        field: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The workload certificate does not carry one valid SPIFFE ID.
    #[error("workload certificate: {0}")]
    Identity(#[from] spiffe::SpiffeError),
    /// rustls refused the material (key mismatch, bad root).
    #[error("{0}")]
    Tls(String),
}

/// The workload's certificate and its SPIFFE ID.
#[derive(Debug)]
pub struct Workload {
    /// Chain and signing key, as handshakes use them.
    pub certified: Arc<CertifiedKey>,
    /// The SPIFFE ID of the leaf.
    pub spiffe_id: String,
    /// Expiry of the leaf, seconds since the Unix epoch.
    pub not_after: i64,
    /// Start of validity of the leaf, seconds since the Unix epoch.
    pub not_before: i64,
}

/// The trusted roots and the verifier built on them.
#[derive(Debug)]
pub struct Trust {
    /// The roots.
    pub roots: Arc<RootCertStore>,
    /// rustls' WebPKI client verifier over `roots` (chain and validity).
    pub client_verifier: Arc<dyn ClientCertVerifier>,
    /// The roots as PEM, as configured or pushed.
    pub pem: String,
}

/// The proxy's current mesh identity, shared by every listener and cluster.
#[derive(Debug)]
pub struct MeshIdentity {
    workload: ArcSwapOption<Workload>,
    trust: ArcSwapOption<Trust>,
    trust_domain: ArcSwap<String>,
    provider: Arc<CryptoProvider>,
    sessions: Arc<sessions::Sessions>,
}

impl Default for MeshIdentity {
    fn default() -> Self {
        Self {
            workload: ArcSwapOption::empty(),
            trust: ArcSwapOption::empty(),
            trust_domain: ArcSwap::from_pointee(wasp_config::DEFAULT_TRUST_DOMAIN.to_owned()),
            provider: provider(),
            sessions: Arc::default(),
        }
    }
}

/// The crypto provider every mesh TLS configuration uses: ring, preferring
/// TLS 1.3's AES-128-GCM-SHA256 (as BoringSSL, hence Envoy, does): its key
/// schedule hashes with SHA-256, which processors accelerate, where the
/// default first suite's SHA-384 runs in software — a sizeable share of a
/// handshake, resumed ones above all. The other suites follow in ring's
/// order.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

impl MeshIdentity {
    /// An empty identity (no certificate, no bundle).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The current workload certificate.
    pub fn workload(&self) -> Option<Arc<Workload>> {
        self.workload.load_full()
    }

    /// The current trust bundle.
    pub fn trust(&self) -> Option<Arc<Trust>> {
        self.trust.load_full()
    }

    /// The trust domain peers must belong to.
    pub fn trust_domain(&self) -> Arc<String> {
        self.trust_domain.load_full()
    }

    /// The crypto provider.
    pub fn crypto(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// The TLS sessions of the current identity (see [`sessions`]).
    pub fn sessions(&self) -> &Arc<sessions::Sessions> {
        &self.sessions
    }

    /// Installs a new workload certificate for the next handshakes and ends
    /// the resumable sessions. The same certificate again changes nothing.
    pub fn set_workload(&self, workload: Workload) {
        if self
            .workload()
            .is_some_and(|current| current.certified.cert == workload.certified.cert)
        {
            return;
        }
        tracing::info!(spiffe_id = %workload.spiffe_id, not_after = workload.not_after, "workload certificate installed");
        self.workload.store(Some(Arc::new(workload)));
        self.sessions.rotate();
    }

    /// Installs a new trust bundle for the next handshakes and ends the
    /// resumable sessions. The same bundle again changes nothing.
    pub fn set_trust(&self, trust: Trust) {
        if self.trust().is_some_and(|current| current.pem == trust.pem) {
            return;
        }
        self.trust.store(Some(Arc::new(trust)));
        self.sessions.rotate();
    }

    /// Sets the trust domain; a change ends the resumable sessions.
    pub fn set_trust_domain(&self, domain: &str) {
        if **self.trust_domain.load() != domain {
            self.trust_domain.store(Arc::new(domain.to_owned()));
            self.sessions.rotate();
        }
    }

    /// Loads what `config` names from files: the certificate and key, the
    /// bundle. Parts it does not name are left as they are (the control
    /// plane supplies them).
    pub fn load_files(&self, config: &MeshConfig) -> Result<Staged, MeshError> {
        let workload = match (&config.cert_file, &config.key_file) {
            (Some(cert), Some(key)) => Some(workload_from_files(cert, key, &self.provider)?),
            _ => None,
        };
        let trust = match &config.trust_bundle {
            Some(path) => {
                let pem = std::fs::read_to_string(path).map_err(|e| MeshError::File {
                    field: "trust_bundle",
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                Some(
                    trust_from_pem(&pem, &self.provider).map_err(|reason| MeshError::File {
                        field: "trust_bundle",
                        path: path.clone(),
                        reason,
                    })?,
                )
            }
            None => None,
        };
        Ok(Staged {
            trust_domain: config.trust_domain.clone(),
            workload,
            trust,
        })
    }
}

/// Identity material loaded for a snapshot, installed once it is committed.
#[derive(Debug, Default)]
pub struct Staged {
    trust_domain: String,
    workload: Option<Workload>,
    trust: Option<Trust>,
}

impl Staged {
    /// Installs the material into `mesh`.
    pub fn install(self, mesh: &MeshIdentity) {
        if !self.trust_domain.is_empty() {
            mesh.set_trust_domain(&self.trust_domain);
        }
        if let Some(workload) = self.workload {
            mesh.set_workload(workload);
        }
        if let Some(trust) = self.trust {
            mesh.set_trust(trust);
        }
    }
}

fn workload_from_files(
    cert_file: &str,
    key_file: &str,
    provider: &CryptoProvider,
) -> Result<Workload, MeshError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| MeshError::File {
            field: "cert_file",
            path: cert_file.to_owned(),
            reason: e.to_string(),
        })?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| MeshError::File {
        field: "key_file",
        path: key_file.to_owned(),
        reason: e.to_string(),
    })?;
    workload_from_der(chain, key, provider).map_err(|e| match e {
        MeshError::Tls(reason) => MeshError::File {
            field: "cert_file",
            path: cert_file.to_owned(),
            reason,
        },
        other => other,
    })
}

/// A workload from a DER chain (leaf first) and its key.
pub fn workload_from_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<Workload, MeshError> {
    let leaf = chain
        .first()
        .ok_or_else(|| MeshError::Tls("no certificate found".into()))?;
    let spiffe_id = spiffe::spiffe_id(leaf)?;
    let facts = spiffe::cert_facts(leaf)?;
    let certified = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| MeshError::Tls(format!("certificate and key rejected: {e}")))?;
    Ok(Workload {
        certified: Arc::new(certified),
        spiffe_id,
        not_after: facts.not_after,
        not_before: facts.not_before,
    })
}

/// A trust bundle from PEM text holding one or more root certificates.
pub fn trust_from_pem(pem: &str, provider: &Arc<CryptoProvider>) -> Result<Trust, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate found".into());
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("root certificate rejected: {e}"))?;
    }
    let roots = Arc::new(roots);
    let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::clone(&roots),
        Arc::clone(provider),
    )
    .build()
    .map_err(|e| e.to_string())?;
    Ok(Trust {
        roots,
        client_verifier,
        pem: pem.to_owned(),
    })
}

/// Serves the current workload certificate (server side of mutual TLS).
#[derive(Debug)]
pub struct WorkloadCert(pub Arc<MeshIdentity>);

impl rustls::server::ResolvesServerCert for WorkloadCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.workload().map(|w| Arc::clone(&w.certified))
    }
}

impl rustls::client::ResolvesClientCert for WorkloadCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.workload().map(|w| Arc::clone(&w.certified))
    }

    fn has_certs(&self) -> bool {
        true
    }
}
