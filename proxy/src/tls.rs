//! TLS termination for listeners: certificate chain and key from PEM files,
//! ALPN offering `h2` and `http/1.1` (rustls, ring provider).

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use wasp_config::ListenerTls;

/// Why a listener's TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or parsed.
    #[error("cert_file '{path}': {reason}")]
    Cert {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key file could not be read or parsed.
    #[error("key_file '{path}': {reason}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls rejected the pair (e.g. the key does not match the certificate).
    #[error("certificate and key rejected: {0}")]
    Config(#[from] rustls::Error),
}

/// Builds a TLS acceptor from a listener's settings.
pub fn acceptor(settings: &ListenerTls) -> Result<TlsAcceptor, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.cert_file)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|err| TlsError::Cert {
            path: settings.cert_file.clone(),
            reason: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: settings.cert_file.clone(),
            reason: "no certificate found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&settings.key_file).map_err(|err| TlsError::Key {
        path: settings.key_file.clone(),
        reason: err.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
