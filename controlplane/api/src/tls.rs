//! TLS connections for a gRPC channel to wasp-cp's TLS endpoint: the
//! connector tonic calls for each new connection. It dials the URI's host
//! and port, verifies the server as the given client configuration says
//! (roots, client certificate, server name = the URI's host) and offers
//! ALPN `h2`. Shared by the proxy (mutual TLS with its workload
//! certificate), `waspctl` (server verification only) and the tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::codegen::http::Uri;

/// Opens TLS connections for a channel
/// (`Endpoint::connect_with_connector`).
#[derive(Clone)]
pub struct ChannelConnector {
    connector: TlsConnector,
}

impl ChannelConnector {
    /// A connector with `config`, which is made to offer ALPN `h2` (gRPC).
    pub fn new(mut config: ClientConfig) -> ChannelConnector {
        config.alpn_protocols = vec![b"h2".to_vec()];
        ChannelConnector {
            connector: TlsConnector::from(Arc::new(config)),
        }
    }
}

impl tonic::codegen::Service<Uri> for ChannelConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

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
