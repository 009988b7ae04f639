//! Certificates for mesh tests, made with rcgen at run time: a CA, workload
//! certificates with SPIFFE URI SANs (valid, expired, with several URIs),
//! written to files a configuration names, and rustls client settings that
//! present them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The root certificate as PEM.
    pub pem: String,
    der: CertificateDer<'static>,
}

/// A workload certificate and its key.
pub struct Leaf {
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Private key (PEM, PKCS#8).
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// Validity of a leaf.
#[derive(Clone, Copy)]
pub enum Validity {
    /// From 2020 to 4096.
    Current,
    /// Expired in 2001.
    Expired,
}

impl TestCa {
    /// A new self-signed root named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed root");
        TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf with these URI SANs (and the DNS name `localhost`).
    pub fn leaf(&self, uris: &[&str], validity: Validity) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        for uri in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*uri).try_into().expect("an IA5 URI")));
        }
        params
            .distinguished_name
            .push(DnType::CommonName, uris.first().copied().unwrap_or("none"));
        match validity {
            Validity::Current => {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(4096, 1, 1);
            }
            Validity::Expired => {
                params.not_before = rcgen::date_time_ymd(2000, 1, 1);
                params.not_after = rcgen::date_time_ymd(2001, 1, 1);
            }
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// Writes the root to `dir/<name>`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).expect("writing the bundle");
        path
    }

    /// A root store trusting this CA.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("root");
        roots
    }
}

impl Leaf {
    /// Writes `dir/<name>.crt` and `dir/<name>.key`.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("writing the certificate");
        std::fs::write(&key, &self.key_pem).expect("writing the key");
        (cert, key)
    }

    /// Client settings presenting this certificate and trusting `ca` for
    /// the server (named `localhost`), offering `http/1.1`.
    pub fn client_config(&self, ca: &TestCa) -> rustls::ClientConfig {
        let mut config = client_builder(ca)
            .with_client_auth_cert(
                vec![self.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .expect("client certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

/// Client settings without a certificate, trusting `ca`.
pub fn anonymous_client_config(ca: &TestCa) -> rustls::ClientConfig {
    let mut config = client_builder(ca).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

fn client_builder(
    ca: &TestCa,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(ca.roots())
}

/// `spiffe://cluster.local/ns/<ns>/sa/<sa>`.
pub fn spiffe(ns: &str, sa: &str) -> String {
    format!("spiffe://cluster.local/ns/{ns}/sa/{sa}")
}

/// A TLS server presenting a given certificate that answers every request
/// `200 ok` over HTTP/1.1 (for checks of what a proxy accepts upstream).
pub struct TlsPeer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsPeer {
    /// Starts serving `leaf`'s certificate on a free loopback port.
    pub async fn start(leaf: &Leaf) -> TlsPeer {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone())),
        )
        .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TlsPeer { addr, task }
    }
}

impl Drop for TlsPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
