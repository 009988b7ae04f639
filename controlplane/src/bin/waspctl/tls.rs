//! TLS to wasp-cp's TLS endpoint (`--server https://…`): the control
//! plane's certificate is verified against the roots of `--ca-file` and the
//! URL's host (rustls' WebPKI verifier, ring provider), ALPN `h2`. waspctl
//! presents no client certificate; the token authorises it as on the
//! plaintext endpoint.

use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::codegen::http::Uri;

/// Opens TLS connections for the gRPC channel.
#[derive(Clone)]
pub struct Connector {
    connector: TlsConnector,
}

/// A connector trusting the roots of `ca_file` (PEM).
pub fn connector(ca_file: &Path) -> Result<Connector, String> {
    let at = ca_file.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("--ca-file {at}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("--ca-file {at}: no certificate found"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("--ca-file {at}: root certificate rejected: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Connector {
        connector: TlsConnector::from(Arc::new(config)),
    })
}

impl tonic::codegen::Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.connector.clone();
        Box::pin(async move {
            let invalid =
                |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
            let host = uri
                .host()
                .ok_or_else(|| invalid(format!("{uri}: no host")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(host.clone())
                .map_err(|e| invalid(format!("server name '{host}': {e}")))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            Ok(TokioIo::new(connector.connect(name, tcp).await?))
        })
    }
}

/// Why the control plane's certificate was refused, if that is why `err`
/// happened.
pub fn certificate_refused(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(err);
    while let Some(inner) = source {
        let tls = inner.downcast_ref::<rustls::Error>().or_else(|| {
            inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|e| e.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(reason)) = tls {
            return Some(explain(reason));
        }
        source = inner.source();
    }
    None
}

/// A certificate error in words, with rustls' own name for it.
fn explain(reason: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    let words = match reason {
        E::UnknownIssuer => "it is not issued by a root of that file",
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "it does not name the host of --server (see wasp-cp's --tls-san)"
        }
        E::Expired | E::ExpiredContext { .. } => "it has expired",
        E::NotValidYet | E::NotValidYetContext { .. } => "it is not valid yet",
        E::BadSignature => "its signature is invalid",
        _ => "it was refused",
    };
    format!("{words} ({reason})")
}
