//! Opening upstream connections: TCP with a connect timeout, TLS when the
//! cluster originates it, then the HTTP/1.1 or HTTP/2 handshake, with the
//! connection's task spawned and counted.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus::{IntCounter, IntGauge};
use tokio::net::TcpStream;
use tokio_util::either::Either;

use crate::mesh::outbound::UpstreamTls;

use super::UpstreamError;
use super::breaker::Permit;
use crate::body::UpstreamBody;

/// Per-cluster connection metrics.
#[derive(Clone, Debug)]
pub struct ConnMetrics {
    /// Open connections.
    pub active: IntGauge,
    /// Connections established.
    pub total: IntCounter,
    /// Failed connection attempts.
    pub connect_fail: IntCounter,
}

async fn tcp(
    addr: SocketAddr,
    timeout: Duration,
    metrics: &ConnMetrics,
) -> Result<TcpStream, UpstreamError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => {
            metrics.connect_fail.inc();
            return Err(UpstreamError::Connect { addr, source });
        }
        Err(_) => {
            metrics.connect_fail.inc();
            return Err(UpstreamError::ConnectTimeout { addr, timeout });
        }
    };
    let _ = stream.set_nodelay(true);
    metrics.total.inc();
    Ok(stream)
}

/// A connected socket, wrapped in TLS when the cluster originates it.
type Stream = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

async fn open(
    addr: SocketAddr,
    timeout: Duration,
    metrics: &ConnMetrics,
    tls: Option<&UpstreamTls>,
) -> Result<(Stream, LocalAddr), UpstreamError> {
    let stream = tcp(addr, timeout, metrics).await?;
    let local = LocalAddr(local_addr(&stream));
    let stream = match tls {
        None => Either::Left(stream),
        Some(tls) => {
            let handshake = tokio::time::timeout(timeout, tls.connect(stream));
            match handshake.await {
                Ok(Ok(stream)) => Either::Right(stream),
                Ok(Err(source)) => {
                    metrics.connect_fail.inc();
                    return Err(UpstreamError::Tls { addr, source });
                }
                Err(_) => {
                    metrics.connect_fail.inc();
                    return Err(UpstreamError::ConnectTimeout { addr, timeout });
                }
            }
        }
    };
    Ok((stream, local))
}

/// The local address of the connection a response came on, in the
/// response's extensions (`upstream.local_address` for filters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalAddr(pub SocketAddr);

/// The local address of `stream`, or the unspecified one if the OS won't say.
fn local_addr(stream: &TcpStream) -> SocketAddr {
    stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Opens an HTTP/1.1 connection; it holds its `max_connections` slot until
/// it closes. `upgrades` keeps the connection usable for
/// `Upgrade` (WebSocket) exchanges. Returns the sender and the connection's
/// local address.
pub async fn http1(
    addr: SocketAddr,
    timeout: Duration,
    metrics: &ConnMetrics,
    permit: Permit,
    upgrades: bool,
    tls: Option<&UpstreamTls>,
) -> Result<(http1::SendRequest<UpstreamBody>, LocalAddr), UpstreamError> {
    let (stream, local) = open(addr, timeout, metrics, tls).await?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| UpstreamError::Handshake { addr, source })?;
    let active = metrics.active.clone();
    active.inc();
    tokio::spawn(async move {
        let result = if upgrades {
            conn.with_upgrades().await
        } else {
            conn.await
        };
        if let Err(err) = result {
            tracing::debug!(%addr, error = %err, "upstream HTTP/1.1 connection closed with error");
        }
        active.dec();
        drop(permit);
    });
    Ok((sender, local))
}

/// Opens an HTTP/2 (prior knowledge) connection. Returns the sender and the
/// connection's local address.
pub async fn http2(
    addr: SocketAddr,
    timeout: Duration,
    metrics: &ConnMetrics,
    permit: Permit,
    tls: Option<&UpstreamTls>,
) -> Result<(http2::SendRequest<UpstreamBody>, LocalAddr), UpstreamError> {
    let (stream, local) = open(addr, timeout, metrics, tls).await?;
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .adaptive_window(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| UpstreamError::Handshake { addr, source })?;
    let active = metrics.active.clone();
    active.inc();
    tokio::spawn(async move {
        if let Err(err) = conn.await {
            tracing::debug!(%addr, error = %err, "upstream HTTP/2 connection closed with error");
        }
        active.dec();
        drop(permit);
    });
    Ok((sender, local))
}
