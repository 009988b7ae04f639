//! Client certificates on the TLS endpoint. They are optional (a client
//! without one authenticates with the bearer token); one that is presented
//! must chain to a root of the CA's trust bundle now — both roots during a
//! root rotation — and carry exactly one SPIFFE ID, of the CA's trust
//! domain. Anything else fails the handshake. The WebPKI verifier is
//! rebuilt whenever the bundle changes.

use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, RootCertStore,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::extensions::GeneralName;

use crate::ca::Ca;

/// Why a verified chain's leaf is not a mesh identity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// The certificate could not be parsed.
    #[error("unparsable certificate: {0}")]
    Parse(String),
    /// Not exactly one URI SAN.
    #[error("the certificate carries {0} URI SANs, not one SPIFFE ID")]
    UriSanCount(usize),
    /// The URI SAN is no SPIFFE ID.
    #[error("{0}")]
    NotSpiffe(String),
    /// A SPIFFE ID of another trust domain.
    #[error("{id} is not in the trust domain {expected}")]
    TrustDomain {
        /// The certificate's SPIFFE ID.
        id: String,
        /// The CA's trust domain.
        expected: String,
    },
}

/// The one SPIFFE ID of the certificate `der`, which must be of
/// `trust_domain`.
pub fn spiffe_id_in(der: &[u8], trust_domain: &str) -> Result<String, IdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| IdentityError::Parse(e.to_string()))?;
    let uris: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some((*uri).to_owned()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(IdentityError::Parse(e.to_string())),
    };
    let [id] = <[String; 1]>::try_from(uris).map_err(|v| IdentityError::UriSanCount(v.len()))?;
    wasp_config::check_spiffe_id(&id).map_err(IdentityError::NotSpiffe)?;
    let domain = id
        .trim_start_matches("spiffe://")
        .split('/')
        .next()
        .unwrap_or_default();
    if domain != trust_domain {
        return Err(IdentityError::TrustDomain {
            id,
            expected: trust_domain.to_owned(),
        });
    }
    Ok(id)
}

/// A short metric label for a failed server-side handshake.
pub fn failure_reason(err: &std::io::Error) -> &'static str {
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return match err.kind() {
            std::io::ErrorKind::UnexpectedEof => "eof",
            std::io::ErrorKind::TimedOut => "timeout",
            _ => "protocol",
        };
    };
    match tls {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => "unknown_ca",
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "expired",
        Error::InvalidCertificate(CertificateError::Other(other))
            if other.0.downcast_ref::<IdentityError>().is_some() =>
        {
            "not_a_mesh_identity"
        }
        Error::InvalidCertificate(_) => "bad_certificate",
        Error::AlertReceived(_) => "alert_received",
        _ => "protocol",
    }
}

/// The client verifier over the CA's current trust bundle.
#[derive(Debug)]
pub struct BundleVerifier {
    ca: Arc<Ca>,
    provider: Arc<CryptoProvider>,
    /// The bundle the verifier was built from, and the verifier.
    built: Mutex<Option<(String, Arc<dyn ClientCertVerifier>)>>,
}

impl BundleVerifier {
    /// A verifier reading `ca`'s bundle at each handshake.
    pub fn new(ca: Arc<Ca>, provider: Arc<CryptoProvider>) -> Self {
        Self {
            ca,
            provider,
            built: Mutex::new(None),
        }
    }

    /// The WebPKI verifier of the bundle now.
    fn current(&self) -> Result<Arc<dyn ClientCertVerifier>, Error> {
        let bundle = self.ca.bundle();
        let mut built = self.built.lock().expect("lock");
        if let Some((pem, verifier)) = built.as_ref() {
            if *pem == bundle {
                return Ok(Arc::clone(verifier));
            }
        }
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(bundle.as_bytes()) {
            let cert = cert.map_err(|e| Error::General(format!("trust bundle: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::General(format!("trust bundle: {e}")))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&self.provider),
        )
        .build()
        .map_err(|e| Error::General(format!("trust bundle: {e}")))?;
        *built = Some((bundle, Arc::clone(&verifier)));
        Ok(verifier)
    }
}

impl ClientCertVerifier for BundleVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.current()?
            .verify_client_cert(end_entity, intermediates, now)?;
        spiffe_id_in(end_entity, self.ca.trust_domain()).map_err(|err| {
            Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use rcgen::{
        BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    };

    use super::*;
    use crate::ca::CaOptions;
    use crate::store::RedbStore;

    fn ca(dir: &std::path::Path, rotate_root: Option<Duration>) -> Arc<Ca> {
        let store = Arc::new(RedbStore::open(dir).unwrap());
        let options = CaOptions {
            trust_domain: "mesh.test".into(),
            lifetime: Duration::from_secs(3600),
            supplied: None,
            rotate_root,
        };
        Arc::new(Ca::start(store, &options).unwrap())
    }

    /// A leaf issued by `ca` for namespace `ns`, service account `sa`.
    fn issued(ca: &Ca, ns: &str, sa: &str) -> Vec<CertificateDer<'static>> {
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let labels = BTreeMap::from([
            ("ns".to_owned(), ns.to_owned()),
            ("sa".to_owned(), sa.to_owned()),
        ]);
        let (chain, _) = ca.sign(&csr, &labels).unwrap();
        CertificateDer::pem_slice_iter(chain.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A leaf with `uri` as its only SAN, from a CA of its own.
    fn foreign(uri: &str) -> Vec<CertificateDer<'static>> {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        let key = KeyPair::generate().unwrap();
        let leaf = params.signed_by(&key, &issuer).unwrap();
        vec![leaf.der().clone(), ca_cert.der().clone()]
    }

    fn verify(verifier: &BundleVerifier, chain: &[CertificateDer<'static>]) -> Result<(), Error> {
        verifier
            .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
            .map(|_| ())
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    #[test]
    fn a_certificate_from_the_mesh_ca_passes_and_names_its_spiffe_id() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca(dir.path(), None);
        let verifier = BundleVerifier::new(Arc::clone(&ca), provider());
        assert!(!verifier.client_auth_mandatory());
        let chain = issued(&ca, "shop", "web");
        assert_eq!(verify(&verifier, &chain), Ok(()));
        assert_eq!(
            spiffe_id_in(&chain[0], "mesh.test").unwrap(),
            "spiffe://mesh.test/ns/shop/sa/web"
        );
    }

    #[test]
    fn a_certificate_from_a_foreign_ca_is_refused_as_an_unknown_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let verifier = BundleVerifier::new(ca(dir.path(), None), provider());
        let chain = foreign("spiffe://mesh.test/ns/shop/sa/web");
        assert_eq!(
            verify(&verifier, &chain),
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        );
    }

    #[test]
    fn a_leaf_without_one_spiffe_id_of_the_trust_domain_is_not_a_mesh_identity() {
        let chain = foreign("spiffe://other.test/ns/shop/sa/web");
        assert_eq!(
            spiffe_id_in(&chain[0], "mesh.test"),
            Err(IdentityError::TrustDomain {
                id: "spiffe://other.test/ns/shop/sa/web".into(),
                expected: "mesh.test".into(),
            })
        );
        let chain = foreign("https://example.test/web");
        assert!(matches!(
            spiffe_id_in(&chain[0], "mesh.test"),
            Err(IdentityError::NotSpiffe(_))
        ));
    }

    #[test]
    fn during_a_root_rotation_certificates_of_both_roots_pass() {
        let dir = tempfile::tempdir().unwrap();
        let old = {
            let ca = ca(dir.path(), None);
            issued(&ca, "shop", "web")
        };
        // The rotating CA signs with the old root during the overlap; the
        // new root is in the bundle already.
        let ca = ca(dir.path(), Some(Duration::from_secs(3600)));
        let verifier = BundleVerifier::new(Arc::clone(&ca), provider());
        assert_eq!(verify(&verifier, &old), Ok(()));
        let bundle_roots = CertificateDer::pem_slice_iter(ca.bundle().as_bytes()).count();
        assert_eq!(bundle_roots, 2);
    }
}
