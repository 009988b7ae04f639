//! The control plane's certificate authority. At first start it makes a
//! self-signed root (ECDSA P-256) and keeps it in the store, so a restarted
//! `wasp-cp` signs with the same root; or it signs with a CA certificate and
//! key the operator supplies (e.g. an intermediate of the organisation's
//! root). Proxies send certificate signing requests; the CA ignores the
//! names they ask for and issues a short-lived certificate whose only URI
//! SAN is the SPIFFE ID it derives from the node's labels:
//! `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.

use std::collections::BTreeMap;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::store::{Store, StoreError};

/// Store key of the root certificate (PEM).
const ROOT_CERT: &str = "ca/root.pem";
/// Store key of the root's private key (PEM, PKCS#8).
const ROOT_KEY: &str = "ca/root.key";
/// Issued certificates start this long before issuance (clock skew).
const BACKDATE: Duration = Duration::from_secs(60);
/// Label keys naming a proxy's namespace, in order of preference.
pub const NAMESPACE_LABELS: [&str; 2] = ["namespace", "ns"];
/// Label keys naming a proxy's service account, in order of preference.
pub const SERVICE_ACCOUNT_LABELS: [&str; 2] = ["service_account", "sa"];

/// Why the CA could not start or sign.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A supplied or stored CA file is unusable.
    #[error("CA {what}: {reason}")]
    Material {
        /// Which part.
        what: String,
        /// Why.
        reason: String,
    },
    /// A CSR was refused.
    #[error("certificate request refused: {0}")]
    Csr(String),
}

/// How to run the CA.
#[derive(Clone, Debug)]
pub struct CaOptions {
    /// The SPIFFE trust domain.
    pub trust_domain: String,
    /// Lifetime of issued certificates.
    pub lifetime: Duration,
    /// An operator-supplied CA instead of the stored root.
    pub supplied: Option<SuppliedCa>,
    /// Rotate the stored root: make a new one, trusted at once beside the
    /// old one; it signs after this overlap, and the old root leaves the
    /// bundle after another (at least the certificate lifetime).
    pub rotate_root: Option<Duration>,
}

/// A CA the operator supplies (files).
#[derive(Clone, Debug)]
pub struct SuppliedCa {
    /// PEM: the CA certificate first, then its chain up to the root; sent
    /// after the leaf in issued chains.
    pub cert_file: String,
    /// The CA's private key (PEM).
    pub key_file: String,
    /// The roots proxies trust (PEM); the certificate file when absent.
    pub bundle_file: Option<String>,
}

/// One signing CA.
struct Signer {
    issuer: Issuer<'static, KeyPair>,
    /// Certificates after the leaf in issued chains (PEM).
    chain_pem: String,
    /// The roots proxies trust while it signs alone (PEM).
    bundle_pem: String,
}

impl Signer {
    fn new(cert_pem: String, key_pem: &str, bundle_pem: String) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| material("key", e))?;
        let first = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .next()
            .ok_or_else(|| material("certificate", "no certificate"))?
            .map_err(|e| material("certificate", e))?;
        let issuer =
            Issuer::from_ca_cert_der(&first, key).map_err(|e| material("certificate", e))?;
        Ok(Self {
            issuer,
            chain_pem: cert_pem,
            bundle_pem,
        })
    }
}

/// A root rotation in progress: `next` is trusted from the start, signs
/// after `overlap`, and is the only root after twice `overlap`.
struct Rotation {
    next: Signer,
    next_key_pem: String,
    started: std::time::Instant,
    overlap: Duration,
    promoted: std::sync::atomic::AtomicBool,
}

/// The certificate authority.
pub struct Ca {
    current: Signer,
    rotation: Option<Rotation>,
    store: std::sync::Arc<dyn Store>,
    trust_domain: String,
    lifetime: Duration,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .finish()
    }
}

fn material(what: &str, reason: impl ToString) -> CaError {
    CaError::Material {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

impl Ca {
    /// The supplied CA, or the root kept in `store` (made and stored at
    /// first start).
    pub fn start(store: std::sync::Arc<dyn Store>, options: &CaOptions) -> Result<Ca, CaError> {
        wasp_config::check_trust_domain(&options.trust_domain)
            .map_err(|e| material("trust domain", e))?;
        let (cert_pem, key_pem, bundle_pem) = match &options.supplied {
            Some(supplied) => {
                let read = |what: &str, path: &str| {
                    std::fs::read_to_string(path)
                        .map_err(|e| material(&format!("{what} '{path}'"), e))
                };
                let cert = read("certificate", &supplied.cert_file)?;
                let key = read("key", &supplied.key_file)?;
                let bundle = match &supplied.bundle_file {
                    Some(path) => read("bundle", path)?,
                    None => cert.clone(),
                };
                (cert, key, bundle)
            }
            None => {
                let stored = (store.meta(ROOT_CERT)?, store.meta(ROOT_KEY)?);
                match stored {
                    (Some(cert), Some(key)) => {
                        let cert = String::from_utf8_lossy(&cert).into_owned();
                        let key = String::from_utf8_lossy(&key).into_owned();
                        (cert.clone(), key, cert)
                    }
                    _ => {
                        let (cert, key) = new_root(&options.trust_domain)?;
                        store.put_meta(ROOT_KEY, key.as_bytes())?;
                        store.put_meta(ROOT_CERT, cert.as_bytes())?;
                        tracing::info!(trust_domain = options.trust_domain, "CA root created");
                        (cert.clone(), key, cert)
                    }
                }
            }
        };
        let current = Signer::new(cert_pem, &key_pem, bundle_pem)?;
        let rotation = match options.rotate_root {
            Some(overlap) => {
                let (cert, key) = new_root(&options.trust_domain)?;
                tracing::info!(
                    ?overlap,
                    "CA root rotation started: the new root is trusted now and signs after the overlap"
                );
                Some(Rotation {
                    next: Signer::new(cert.clone(), &key, cert)?,
                    next_key_pem: key,
                    started: std::time::Instant::now(),
                    overlap,
                    promoted: std::sync::atomic::AtomicBool::new(false),
                })
            }
            None => None,
        };
        Ok(Ca {
            current,
            rotation,
            store,
            trust_domain: options.trust_domain.clone(),
            lifetime: options.lifetime,
        })
    }

    /// The signer now, and the bundle proxies trust now.
    fn phase(&self) -> (&Signer, String) {
        let Some(rotation) = &self.rotation else {
            return (&self.current, self.current.bundle_pem.clone());
        };
        let elapsed = rotation.started.elapsed();
        let both = format!("{}{}", self.current.bundle_pem, rotation.next.bundle_pem);
        if elapsed < rotation.overlap {
            return (&self.current, both);
        }
        if !rotation
            .promoted
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.promote(rotation);
        }
        if elapsed < rotation.overlap * 2 {
            (&rotation.next, both)
        } else {
            (&rotation.next, rotation.next.bundle_pem.clone())
        }
    }

    /// Keeps the new root in the store: a restart signs with it.
    fn promote(&self, rotation: &Rotation) {
        let stored = self
            .store
            .put_meta(ROOT_KEY, rotation.next_key_pem.as_bytes())
            .and_then(|()| {
                self.store
                    .put_meta(ROOT_CERT, rotation.next.chain_pem.as_bytes())
            });
        match stored {
            Ok(()) => tracing::info!("CA root rotation: the new root signs now"),
            Err(err) => {
                tracing::error!(error = %err, "CA root rotation: the new root could not be stored")
            }
        }
    }

    /// The trust bundle (PEM): during a root rotation both roots.
    pub fn bundle(&self) -> String {
        self.phase().1
    }

    /// The trust domain of issued identities.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The chain of the CA signing now (PEM).
    pub fn signer_pem(&self) -> String {
        self.phase().0.chain_pem.clone()
    }

    /// A certificate for the control plane's own TLS endpoint: a new key,
    /// the DNS names and IP addresses `names` as SANs, server
    /// authentication only, the CA's certificate lifetime.
    pub fn issue_server(&self, names: &[String]) -> Result<ServerCertificate, CaError> {
        let (signer, _) = self.phase();
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|n| server_san(n))
            .collect::<Result<_, _>>()?;
        params
            .distinguished_name
            .push(DnType::CommonName, "wasp-cp");
        let now = ::time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + self.lifetime;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| material("server key", e))?;
        let cert = params
            .signed_by(&key, &signer.issuer)
            .map_err(|e| material("server certificate", e))?;
        Ok(ServerCertificate {
            chain_pem: format!("{}{}", cert.pem(), signer.chain_pem),
            key_pem: key.serialize_pem(),
            lifetime: self.lifetime,
            signer_pem: signer.chain_pem.clone(),
        })
    }

    /// The SPIFFE ID of a proxy with `labels`.
    pub fn spiffe_id(&self, labels: &BTreeMap<String, String>) -> String {
        let pick = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()))
                .cloned()
                .unwrap_or_else(|| "default".to_owned())
        };
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain,
            pick(&NAMESPACE_LABELS),
            pick(&SERVICE_ACCOUNT_LABELS)
        )
    }

    /// Signs `csr_pem` for a proxy with `labels`: the chain (PEM, leaf
    /// first) and the SPIFFE ID it carries.
    pub fn sign(
        &self,
        csr_pem: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(String, String), CaError> {
        let (signer, _) = self.phase();
        let id = self.spiffe_id(labels);
        wasp_config::check_spiffe_id(&id).map_err(CaError::Csr)?;
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::Csr(e.to_string()))?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(
            id.as_str()
                .try_into()
                .map_err(|e: rcgen::Error| CaError::Csr(e.to_string()))?,
        )];
        let now = ::time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + self.lifetime;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        csr.params = params;
        let cert = csr
            .signed_by(&signer.issuer)
            .map_err(|e| CaError::Csr(e.to_string()))?;
        Ok((format!("{}{}", cert.pem(), signer.chain_pem), id))
    }
}

/// A server certificate the CA issued to the control plane itself.
#[derive(Clone, Debug)]
pub struct ServerCertificate {
    /// The chain, leaf first (PEM).
    pub chain_pem: String,
    /// The leaf's private key (PEM, PKCS#8).
    pub key_pem: String,
    /// The leaf's lifetime.
    pub lifetime: Duration,
    /// The chain of the CA that signed it (PEM), to tell when the signer
    /// changed (a root rotation's promotion).
    pub signer_pem: String,
}

/// A name the control plane's server certificate carries: an IP address
/// or a DNS name.
fn server_san(name: &str) -> Result<SanType, CaError> {
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    rustls_pki_types::DnsName::try_from(name)
        .map_err(|e| material(&format!("server name '{name}'"), e))?;
    name.try_into()
        .map(SanType::DnsName)
        .map_err(|e: rcgen::Error| material(&format!("server name '{name}'"), e))
}

/// A new self-signed root for `trust_domain`: certificate and key (PEM).
fn new_root(trust_domain: &str) -> Result<(String, String), CaError> {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain);
    params
        .distinguished_name
        .push(DnType::CommonName, "wasp-cp root CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = ::time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::from_secs(10 * 365 * 24 * 3600);
    let key = KeyPair::generate().map_err(|e| material("root key", e))?;
    let cert = params.self_signed(&key).map_err(|e| material("root", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RedbStore;

    fn options() -> CaOptions {
        CaOptions {
            trust_domain: "mesh.test".into(),
            lifetime: Duration::from_secs(3600),
            supplied: None,
            rotate_root: None,
        }
    }

    #[test]
    fn the_root_is_made_once_and_kept_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let store = std::sync::Arc::new(RedbStore::open(dir.path()).unwrap());
            Ca::start(store, &options()).unwrap().bundle()
        };
        let store = std::sync::Arc::new(RedbStore::open(dir.path()).unwrap());
        let again = Ca::start(store, &options()).unwrap();
        assert_eq!(again.bundle(), first);
    }

    #[test]
    fn issued_certificates_carry_only_the_spiffe_id_of_the_labels() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(RedbStore::open(dir.path()).unwrap());
        let ca = Ca::start(store, &options()).unwrap();
        let key = KeyPair::generate().unwrap();
        // The request asks for other names; they are ignored.
        let csr = CertificateParams::new(vec!["evil.example".to_owned()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let labels = BTreeMap::from([
            ("namespace".to_owned(), "shop".to_owned()),
            ("sa".to_owned(), "web".to_owned()),
        ]);
        let (chain, id) = ca.sign(&csr, &labels).unwrap();
        assert_eq!(id, "spiffe://mesh.test/ns/shop/sa/web");
        let leaf = CertificateDer::pem_slice_iter(chain.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        let names = &cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names;
        assert_eq!(
            names,
            &vec![x509_parser::extensions::GeneralName::URI(id.as_str())]
        );
        assert!(ca.sign("not a CSR", &labels).is_err());
        assert_eq!(
            ca.spiffe_id(&BTreeMap::new()),
            "spiffe://mesh.test/ns/default/sa/default"
        );
    }
}
