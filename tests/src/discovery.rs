//! A hand-driven client of the control plane's `Discovery` service, for
//! checks of what its endpoints accept: [`bootstrap_certificate`] gets a
//! workload certificate over the plaintext endpoint with the token (as a
//! proxy does), [`subscribe_tls`] subscribes on the TLS endpoint presenting
//! any client certificate and claiming any labels.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Channel, Endpoint};
use wasp_controlplane_api as api;
use wasp_controlplane_api::discovery_client::DiscoveryClient;
use wasp_controlplane_api::subscribe_request::Kind;

use crate::controlplane::TOKEN;

/// How long one exchange with the control plane may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A workload certificate the control plane issued, with its key and the
/// trust bundle that came with it.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The chain, leaf first (PEM).
    pub chain_pem: String,
    /// The private key (PEM).
    pub key_pem: String,
    /// The trust bundle (PEM).
    pub bundle_pem: String,
    /// The leaf's SPIFFE ID.
    pub spiffe_id: String,
}

fn hello(node: &str, labels: &[(&str, &str)]) -> api::SubscribeRequest {
    api::SubscribeRequest {
        kind: Some(Kind::Hello(api::Hello {
            node_id: node.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            running_version: 0,
        })),
    }
}

/// Subscribes on the plaintext endpoint `url` with the token as node
/// `node` with `labels`, sends a CSR and returns the certificate issued.
pub async fn bootstrap_certificate(url: &str, node: &str, labels: &[(&str, &str)]) -> Issued {
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .expect("CSR");
    let channel = Endpoint::from_shared(url.to_owned())
        .expect("URL")
        .connect()
        .await
        .expect("connecting to the bootstrap endpoint");
    let token: tonic::metadata::MetadataValue<_> =
        format!("Bearer {TOKEN}").parse().expect("token");
    let mut client = DiscoveryClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
        r.metadata_mut().insert("authorization", token.clone());
        Ok::<_, tonic::Status>(r)
    });
    let messages = vec![
        hello(node, labels),
        api::SubscribeRequest {
            kind: Some(Kind::Csr(api::CertificateRequest { csr_pem: csr })),
        },
    ];
    // The stream stays open until the certificate came.
    let outbound = futures_util::stream::iter(messages).chain(futures_util::stream::pending());
    let mut inbound = client
        .subscribe(outbound)
        .await
        .expect("subscribing on the bootstrap endpoint")
        .into_inner();
    let issued = tokio::time::timeout(TIMEOUT, async {
        loop {
            let update = inbound
                .message()
                .await
                .expect("subscription")
                .expect("an update");
            if let Some(cert) = update.certificate {
                return (cert, update.trust_bundle_pem);
            }
        }
    })
    .await
    .expect("a certificate in time");
    Issued {
        chain_pem: issued.0.chain_pem,
        key_pem: key.serialize_pem(),
        bundle_pem: issued.1,
        spiffe_id: issued.0.spiffe_id,
    }
}

/// A client certificate to present: chain and key (PEM).
pub struct ClientCert<'a> {
    /// The chain, leaf first.
    pub chain_pem: &'a str,
    /// The key.
    pub key_pem: &'a str,
}

/// Subscribes on the TLS endpoint at `addr` (its certificate verified
/// against `bundle_pem` for the name `127.0.0.1`), presenting `cert`, as
/// node `node` with `labels`. Returns the first update, or why there was
/// none (a refused handshake or subscription).
pub async fn subscribe_tls(
    addr: SocketAddr,
    bundle_pem: &str,
    cert: Option<ClientCert<'_>>,
    node: &str,
    labels: &[(&str, &str)],
) -> Result<api::ConfigUpdate, String> {
    let mut roots = rustls::RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()) {
        roots.add(root.expect("bundle PEM")).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots);
    let config = match cert {
        Some(cert) => {
            let chain = CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("chain PEM");
            let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key PEM");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client certificate")
        }
        None => builder.with_no_client_auth(),
    };
    let connector = api::tls::ChannelConnector::new(config);
    let channel: Channel = Endpoint::from_shared(format!("https://{addr}"))
        .expect("URL")
        .connect_timeout(TIMEOUT)
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("connect: {e}: {:?}", std::error::Error::source(&e)))?;
    let mut client = DiscoveryClient::new(channel);
    let outbound = futures_util::stream::iter(vec![hello(node, labels)])
        .chain(futures_util::stream::pending());
    let result = tokio::time::timeout(TIMEOUT, async {
        let mut inbound = client
            .subscribe(outbound)
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        inbound
            .message()
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            .ok_or_else(|| "the subscription ended at once".to_owned())
    })
    .await;
    result.unwrap_or_else(|_| Err("no answer in time".to_owned()))
}
