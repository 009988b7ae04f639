//! The control plane's certificate authority. At first start it makes a
//! self-signed root (ECDSA P-256) and keeps it in the store, so a restarted
//! `wasp-cp` signs with the same root; or it signs with a CA certificate and
//! key the operator supplies (e.g. an intermediate of the organisation's
//! root). Proxies send certificate signing requests; the CA ignores the
//! names they ask for and issues a short-lived certificate whose only URI
//! SAN is the SPIFFE ID it derives from the node's labels:
//! `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
//! A root rotation (module `rotation`) is kept in the store too and resumes
//! where it stood when `wasp-cp` restarts.

mod rotation;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use rotation::{Phase, Rotation, RotationRecord};

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
        finish_rotation_over(&*store)?;
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
        let rotation = match RotationRecord::load(&*store)? {
            Some(record) => {
                if let Some(requested) = options.rotate_root {
                    tracing::warn!(
                        ?requested,
                        "--rotate-root ignored: a root rotation is in progress (it resumes)"
                    );
                }
                tracing::info!(
                    started = %humantime::format_rfc3339_millis(record.started()),
                    overlap = ?record.overlap(),
                    "CA root rotation resumed"
                );
                let promoted = record.next_cert_pem == current.chain_pem;
                Some(Rotation::from_record(record, promoted)?)
            }
            None => match options.rotate_root {
                Some(overlap) => {
                    let (cert, key) = new_root(&options.trust_domain)?;
                    let record = RotationRecord {
                        previous_bundle_pem: current.bundle_pem.clone(),
                        next_cert_pem: cert,
                        next_key_pem: key,
                        started_unix_ms: crate::time::now_ms(),
                        overlap_ms: u64::try_from(overlap.as_millis()).unwrap_or(u64::MAX),
                    };
                    record.save(&*store)?;
                    tracing::info!(
                        ?overlap,
                        "CA root rotation started: the new root is trusted now and signs after the overlap"
                    );
                    Some(Rotation::from_record(record, false)?)
                }
                None => None,
            },
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
        let phase = rotation.phase(SystemTime::now());
        if phase == Phase::OldSigns {
            return (&self.current, rotation.both());
        }
        if !rotation.promoted.swap(true, Ordering::SeqCst) {
            self.promote(rotation);
        }
        if phase == Phase::NewSigns {
            return (&rotation.next, rotation.both());
        }
        if !rotation.finished.swap(true, Ordering::SeqCst) {
            match RotationRecord::clear(&*self.store) {
                Ok(()) => tracing::info!("CA root rotation over: the old root left the bundle"),
                Err(err) => tracing::error!(error = %err, "CA root rotation: could not clear it"),
            }
        }
        (&rotation.next, rotation.next.bundle_pem.clone())
    }

    /// Keeps the new root in the store: a restart signs with it.
    fn promote(&self, rotation: &Rotation) {
        match store_root(&*self.store, &rotation.record) {
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
        self.leaf(&mut params, vec![ExtendedKeyUsagePurpose::ServerAuth]);
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

    /// Makes `params` a leaf certificate of this CA: valid from a little
    /// before now for the CA's certificate lifetime, for signatures and key
    /// encipherment, with the extended key usages `purposes`.
    fn leaf(&self, params: &mut CertificateParams, purposes: Vec<ExtendedKeyUsagePurpose>) {
        let now = ::time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + self.lifetime;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = purposes;
        params.use_authority_key_identifier_extension = true;
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
        self.leaf(
            &mut params,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        csr.params = params;
        let cert = csr
            .signed_by(&signer.issuer)
            .map_err(|e| CaError::Csr(e.to_string()))?;
        Ok((format!("{}{}", cert.pem(), signer.chain_pem), id))
    }
}

/// Makes the new root of `record` the stored root.
fn store_root(store: &dyn Store, record: &RotationRecord) -> Result<(), StoreError> {
    store.put_meta(ROOT_KEY, record.next_key_pem.as_bytes())?;
    store.put_meta(ROOT_CERT, record.next_cert_pem.as_bytes())
}

/// Ends a stored rotation that finished while `wasp-cp` was stopped: its
/// new root becomes the stored root (if it was not promoted yet) and the
/// rotation is forgotten.
fn finish_rotation_over(store: &dyn Store) -> Result<(), CaError> {
    let Some(record) = RotationRecord::load(store)? else {
        return Ok(());
    };
    if !record.is_over(SystemTime::now()) {
        return Ok(());
    }
    store_root(store, &record)?;
    RotationRecord::clear(store)?;
    tracing::info!("CA root rotation over while stopped: the new root is the root");
    Ok(())
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

    /// The certificates of a PEM bundle.
    fn count(pem: &str) -> usize {
        CertificateDer::pem_slice_iter(pem.as_bytes()).count()
    }

    fn open(dir: &std::path::Path) -> std::sync::Arc<dyn Store> {
        std::sync::Arc::new(RedbStore::open(dir).unwrap())
    }

    fn rotating(overlap: Duration) -> CaOptions {
        CaOptions {
            rotate_root: Some(overlap),
            ..options()
        }
    }

    #[test]
    fn a_root_rotation_resumes_after_a_restart_instead_of_starting_again() {
        let dir = tempfile::tempdir().unwrap();
        let old_root = Ca::start(open(dir.path()), &options()).unwrap().bundle();
        let (both, next) = {
            let ca = Ca::start(open(dir.path()), &rotating(Duration::from_secs(3600))).unwrap();
            assert_eq!(ca.signer_pem(), old_root, "the old root signs first");
            let record = RotationRecord::load(&*ca.store).unwrap().unwrap();
            (ca.bundle(), record.next_cert_pem)
        };
        assert_eq!(count(&both), 2);
        assert_eq!(both, format!("{old_root}{next}"));
        // Restarted with or without --rotate-root: the same rotation, the
        // same two roots, the old root still signing.
        for options in [options(), rotating(Duration::from_secs(60))] {
            let ca = Ca::start(open(dir.path()), &options).unwrap();
            assert_eq!(ca.bundle(), both);
            assert_eq!(ca.signer_pem(), old_root);
        }
    }

    /// Stores a rotation from `old_root` that started `ago` with `overlap`.
    fn stored_rotation(
        store: &dyn Store,
        old_root: &str,
        ago: Duration,
        overlap: Duration,
    ) -> String {
        let (cert, key) = new_root("mesh.test").unwrap();
        RotationRecord {
            previous_bundle_pem: old_root.to_owned(),
            next_cert_pem: cert.clone(),
            next_key_pem: key,
            started_unix_ms: crate::time::now_ms() - ago.as_millis() as u64,
            overlap_ms: overlap.as_millis() as u64,
        }
        .save(store)
        .unwrap();
        cert
    }

    #[test]
    fn a_resumed_rotation_past_its_overlap_signs_with_the_new_root_and_trusts_both() {
        let dir = tempfile::tempdir().unwrap();
        let old_root = Ca::start(open(dir.path()), &options()).unwrap().bundle();
        let hour = Duration::from_secs(3600);
        let next = stored_rotation(&*open(dir.path()), &old_root, hour * 3 / 2, hour);
        let ca = Ca::start(open(dir.path()), &options()).unwrap();
        assert_eq!(ca.signer_pem(), next);
        assert_eq!(ca.bundle(), format!("{old_root}{next}"));
        drop(ca);
        // Promoted: the stored root is the new one, and a second restart
        // is still in the same phase.
        let again = Ca::start(open(dir.path()), &options()).unwrap();
        assert_eq!(again.current.chain_pem, next);
        assert_eq!(again.bundle(), format!("{old_root}{next}"));
    }

    #[test]
    fn a_rotation_that_ended_while_stopped_leaves_only_the_new_root() {
        let dir = tempfile::tempdir().unwrap();
        let old_root = Ca::start(open(dir.path()), &options()).unwrap().bundle();
        let hour = Duration::from_secs(3600);
        let next = stored_rotation(&*open(dir.path()), &old_root, hour * 3, hour);
        let ca = Ca::start(open(dir.path()), &options()).unwrap();
        assert_eq!(ca.bundle(), next);
        assert_eq!(ca.signer_pem(), next);
        assert!(RotationRecord::load(&*ca.store).unwrap().is_none());
    }
}
