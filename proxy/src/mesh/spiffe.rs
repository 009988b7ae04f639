//! SPIFFE identities in X.509 certificates: reading a certificate's URI SANs
//! and subject (x509-parser), and the rustls verifiers that check a peer
//! chains to the mesh trust bundle and carries exactly one acceptable SPIFFE
//! ID.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::extensions::GeneralName;

use super::MeshIdentity;

/// Why a peer's identity was refused after its chain verified.
#[derive(Debug, thiserror::Error)]
pub enum SpiffeError {
    /// The certificate could not be parsed.
    #[error("certificate cannot be parsed: {0}")]
    Parse(String),
    /// Not exactly one URI SAN.
    #[error("certificate has {0} URI SANs, exactly one SPIFFE ID is required")]
    UriSanCount(usize),
    /// The URI SAN is not a valid SPIFFE ID.
    #[error("{0}")]
    NotSpiffe(String),
    /// The ID belongs to another trust domain.
    #[error("SPIFFE ID '{id}' is not in trust domain '{expected}'")]
    TrustDomain {
        /// The peer's ID.
        id: String,
        /// The mesh's trust domain.
        expected: String,
    },
    /// The ID is not one of the expected identities.
    #[error("SPIFFE ID '{0}' is not an expected identity")]
    Unexpected(String),
}

impl SpiffeError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Parse(_) => "bad_certificate",
            Self::UriSanCount(_) => "uri_san_count",
            Self::NotSpiffe(_) | Self::TrustDomain { .. } | Self::Unexpected(_) => "spiffe_id",
        }
    }

    fn into_rustls(self) -> Error {
        Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(self))))
    }
}

/// What a certificate says about its holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertFacts {
    /// URI SANs in order.
    pub uri_sans: Vec<String>,
    /// The subject as an RFC 4514 string.
    pub subject: String,
    /// Expiry, seconds since the Unix epoch.
    pub not_after: i64,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
}

/// Reads a DER certificate's URI SANs, subject and validity.
pub fn cert_facts(der: &[u8]) -> Result<CertFacts, SpiffeError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| SpiffeError::Parse(e.to_string()))?;
    let mut uri_sans = Vec::new();
    if let Some(san) = cert
        .subject_alternative_name()
        .map_err(|e| SpiffeError::Parse(e.to_string()))?
    {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name {
                uri_sans.push((*uri).to_owned());
            }
        }
    }
    Ok(CertFacts {
        uri_sans,
        subject: cert.subject().to_string(),
        not_after: cert.validity().not_after.timestamp(),
        not_before: cert.validity().not_before.timestamp(),
    })
}

/// The one SPIFFE ID of a certificate.
pub fn spiffe_id(der: &[u8]) -> Result<String, SpiffeError> {
    let facts = cert_facts(der)?;
    if facts.uri_sans.len() != 1 {
        return Err(SpiffeError::UriSanCount(facts.uri_sans.len()));
    }
    let id = facts.uri_sans.into_iter().next().unwrap_or_default();
    wasp_config::check_spiffe_id(&id).map_err(SpiffeError::NotSpiffe)?;
    Ok(id)
}

/// The trust domain of a valid SPIFFE ID.
pub fn trust_domain_of(id: &str) -> &str {
    id.trim_start_matches("spiffe://")
        .split('/')
        .next()
        .unwrap_or_default()
}

/// Checks a peer certificate's SPIFFE ID: in `expected` when that is not
/// empty, else in the mesh's trust domain.
fn check_peer(der: &[u8], mesh: &MeshIdentity, expected: &[String]) -> Result<(), Error> {
    let id = spiffe_id(der).map_err(SpiffeError::into_rustls)?;
    if expected.is_empty() {
        let domain = mesh.trust_domain();
        if trust_domain_of(&id) != *domain {
            return Err(SpiffeError::TrustDomain {
                id,
                expected: domain.to_string(),
            }
            .into_rustls());
        }
    } else if !expected.contains(&id) {
        return Err(SpiffeError::Unexpected(id).into_rustls());
    }
    Ok(())
}

fn algorithms(provider: &CryptoProvider) -> WebPkiSupportedAlgorithms {
    provider.signature_verification_algorithms
}

/// Verifies client certificates on mutual-TLS listeners: the chain against
/// the current trust bundle (rustls' WebPKI verifier), then the SPIFFE ID.
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    mesh: Arc<MeshIdentity>,
    provider: Arc<CryptoProvider>,
}

impl SpiffeClientVerifier {
    /// A verifier reading the trust bundle of `mesh` at each handshake.
    pub fn new(mesh: Arc<MeshIdentity>, provider: Arc<CryptoProvider>) -> Self {
        Self { mesh, provider }
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let trust = self
            .mesh
            .trust()
            .ok_or_else(|| Error::General("no mesh trust bundle yet".into()))?;
        trust
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)?;
        check_peer(end_entity, &self.mesh, &[])?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms(&self.provider))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms(&self.provider))
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        algorithms(&self.provider).supported_schemes()
    }
}

/// Verifies an upstream's certificate for ISTIO_MUTUAL: the chain against the
/// current trust bundle (no host name check: SPIFFE certificates name no
/// host), then exactly one SPIFFE ID among the expected ones.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    mesh: Arc<MeshIdentity>,
    provider: Arc<CryptoProvider>,
    expected: Vec<String>,
}

impl SpiffeServerVerifier {
    /// A verifier accepting `expected` IDs (any ID of the mesh's trust
    /// domain when empty).
    pub fn new(
        mesh: Arc<MeshIdentity>,
        provider: Arc<CryptoProvider>,
        expected: Vec<String>,
    ) -> Self {
        Self {
            mesh,
            provider,
            expected,
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let trust = self
            .mesh
            .trust()
            .ok_or_else(|| Error::General("no mesh trust bundle yet".into()))?;
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &trust.roots,
            intermediates,
            now,
            algorithms(&self.provider).all,
        )?;
        check_peer(end_entity, &self.mesh, &self.expected)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms(&self.provider))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms(&self.provider))
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        algorithms(&self.provider).supported_schemes()
    }
}

/// A short metric label for a failed handshake's error.
pub fn failure_reason(err: &std::io::Error) -> &'static str {
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return match err.kind() {
            std::io::ErrorKind::UnexpectedEof => "eof",
            std::io::ErrorKind::InvalidData => "protocol",
            _ => "io",
        };
    };
    rustls_reason(tls)
}

/// A short metric label for a rustls error.
pub fn rustls_reason(err: &Error) -> &'static str {
    match err {
        Error::NoCertificatesPresented => "no_client_cert",
        Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "unknown_ca",
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::BadSignature => "bad_signature",
            CertificateError::Other(other) => other
                .0
                .downcast_ref::<SpiffeError>()
                .map_or("bad_certificate", SpiffeError::reason),
            _ => "bad_certificate",
        },
        Error::AlertReceived(_) => "alert_received",
        Error::NoApplicationProtocol => "alpn",
        _ => "protocol",
    }
}
