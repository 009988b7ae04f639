//! A self-signed certificate for TLS listeners (rcgen), written to files
//! the configuration can name, and the root store a client trusts it with.

use std::path::{Path, PathBuf};

/// A certificate and key on disk.
pub struct TestCert {
    /// PEM certificate file.
    pub cert_file: PathBuf,
    /// PEM private key file.
    pub key_file: PathBuf,
    der: rustls_pki_types::CertificateDer<'static>,
}

impl TestCert {
    /// Generates a self-signed certificate for `names`, written into `dir`.
    pub fn generate(dir: &Path, names: &[&str]) -> TestCert {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified =
            rcgen::generate_simple_self_signed(names).expect("generating a certificate");
        let cert_file = dir.join("cert.pem");
        let key_file = dir.join("key.pem");
        std::fs::write(&cert_file, certified.cert.pem()).expect("writing the certificate");
        std::fs::write(&key_file, certified.signing_key.serialize_pem()).expect("writing the key");
        TestCert {
            cert_file,
            key_file,
            der: certified.cert.der().clone(),
        }
    }

    /// A root store trusting only this certificate.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("adding the root");
        roots
    }
}
