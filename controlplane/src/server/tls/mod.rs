//! The TLS endpoint (`--tls-listen`): the same gRPC services as the
//! plaintext bootstrap endpoint, over TLS with a server certificate from
//! the control plane's own CA ([`cert`]). Client certificates are asked
//! for but optional ([`verify`]): a proxy presents its workload
//! certificate and is authenticated by it; any other client (waspctl, a
//! proxy without a certificate yet) uses the bearer token as on the
//! bootstrap endpoint. Each accepted connection carries its [`Peer`] —
//! address and verified SPIFFE ID — into every request's extensions.

pub mod cert;
pub mod verify;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::auth::Peer;
use crate::ca::{Ca, CaError};
use crate::metrics::Counters;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the gRPC server to take them.
const ACCEPT_QUEUE: usize = 64;

/// How to serve the TLS endpoint.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The DNS names and IP addresses of the server certificate.
    pub names: Vec<String>,
    /// The `host:port` proxies are told to reconnect to; the bound address
    /// when absent (an unspecified host there means "the host you reached
    /// the bootstrap endpoint at").
    pub advertise: Option<String>,
}

/// The rustls configuration of the endpoint: the CA-issued server
/// certificate, optional client certificates verified against the CA's
/// bundle, HTTP/2 only.
pub fn server_config(ca: &Arc<Ca>, names: Vec<String>) -> Result<Arc<ServerConfig>, CaError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = cert::ServerCert::new(Arc::clone(ca), names, Arc::clone(&provider))?;
    let verifier = verify::BundleVerifier::new(Arc::clone(ca), Arc::clone(&provider));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError::Material {
            what: "TLS endpoint".into(),
            reason: e.to_string(),
        })?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS connection and who is on the other side.
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    peer: Peer,
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// One handshake; failures are logged and counted by reason.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    addr: SocketAddr,
    trust_domain: String,
    counters: Arc<Counters>,
) -> Option<TlsConn> {
    let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
    let stream = match result {
        Ok(stream) => stream,
        Err(err) => {
            let reason = verify::failure_reason(&err);
            counters.handshake_failed(reason);
            tracing::warn!(peer = %addr, reason, error = %err, "TLS handshake refused");
            return None;
        }
    };
    let identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| verify::spiffe_id_in(leaf, &trust_domain).ok());
    Some(TlsConn {
        stream,
        peer: Peer {
            addr: Some(addr),
            tls: true,
            identity,
        },
    })
}

/// Accepts on `listener` and hands each connection whose handshake
/// succeeded to the stream it returns (handshakes run concurrently, so a
/// slow client delays nobody).
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    trust_domain: String,
    counters: Arc<Counters>,
) -> impl futures_util::Stream<Item = Result<TlsConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "TLS endpoint accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (ready, acceptor) = (tx.clone(), acceptor.clone());
            let (trust_domain, counters) = (trust_domain.clone(), Arc::clone(&counters));
            tokio::spawn(async move {
                if let Some(conn) = handshake(acceptor, stream, addr, trust_domain, counters).await
                {
                    let _ = ready.send(Ok(conn)).await;
                }
            });
            if tx.is_closed() {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|conn| (conn, rx))
    })
}
