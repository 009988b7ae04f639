//! Serving one accepted connection: optional TLS handshake, then HTTP/1.1
//! or HTTP/2 (h2c prior knowledge, or ALPN on TLS) with hyper, until the peer
//! closes or a graceful shutdown lets in-flight requests finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::conn::ConnInfo;
use crate::http::body::ProxyBody;
use crate::http::handle;
use crate::mesh::sessions::resumed_past_expiry;
use crate::mesh::{inbound, spiffe};
use crate::state::ProxyState;

/// Time a client gets to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves a connection to its end.
///
/// The connection keeps only what is fixed at accept from its listener: the
/// name, the TLS acceptor (for the handshake), the HTTP settings (hyper's
/// limits) and the idle timeout. Each
/// request looks up the current snapshot's listener itself, so a connection
/// never pins a snapshot's routes, filter chains or VMs. When `removed`
/// fires (a reload removed the listener) or the proxy shuts down, the
/// connection finishes its in-flight requests and closes.
pub async fn serve(
    state: Arc<ProxyState>,
    address: SocketAddr,
    stream: TcpStream,
    client: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    removed: CancellationToken,
) {
    let (listener, tls, mtls, mesh, idle_timeout, builder) = {
        let snapshot = state.snapshot.load();
        let Some(runtime) = snapshot.by_address.get(&address) else {
            return;
        };
        (
            Arc::clone(&runtime.name),
            runtime.tls.clone(),
            runtime.mtls.clone(),
            Arc::clone(&snapshot.mesh),
            runtime.idle_timeout,
            Arc::clone(&runtime.http),
        )
    };
    // Mutual TLS replaces the listener's TLS; PERMISSIVE serves plain text
    // too, told apart by the client's first byte.
    let tls = match &mtls {
        None => tls,
        Some(m) => {
            let use_tls = !m.permissive
                || match inbound::starts_with_tls(&stream, TLS_HANDSHAKE_TIMEOUT).await {
                    Some(tls) => tls,
                    None => return,
                };
            if !use_tls {
                m.connections
                    .with_label_values(&[&*listener, "plaintext"])
                    .inc();
            }
            use_tls.then(|| m.acceptor.current())
        }
    };
    let _ = stream.set_nodelay(true);
    let client_ip: Arc<str> = client.ip().to_string().into();
    let client_ip_header =
        http::HeaderValue::from_str(&client_ip).expect("an IP address is a valid header value");
    let gauge = state
        .metrics
        .downstream_cx_active
        .with_label_values(&[&*listener]);
    state
        .metrics
        .downstream_cx_total
        .with_label_values(&[&*listener])
        .inc();
    gauge.inc();
    let info = Arc::new(ConnInfo {
        address,
        client,
        client_ip,
        client_ip_header,
        scheme: if tls.is_some() { "https" } else { "http" },
        accepted: std::time::Instant::now(),
        in_flight: std::sync::atomic::AtomicUsize::new(0),
        last_active_ms: std::sync::atomic::AtomicU64::new(0),
        id: NEXT_CONNECTION_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        tls: std::sync::OnceLock::new(),
    });
    let idle = Idle {
        info: Arc::clone(&info),
        timeout: idle_timeout,
        closed: state
            .metrics
            .downstream_cx_idle_timeout
            .with_label_values(&[&*listener]),
    };
    let conn_info = Arc::clone(&info);
    let service = {
        let state = Arc::clone(&state);
        let listener = Arc::clone(&listener);
        service_fn(move |req| {
            handle(
                Arc::clone(&state),
                Arc::clone(&info),
                Arc::clone(&listener),
                req,
            )
        })
    };
    let stop = Stop {
        shutdown: &mut shutdown,
        removed,
    };
    match tls {
        None => drive(&builder, TokioIo::new(stream), service, stop, idle).await,
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => {
                    drop(acceptor);
                    let session = tls_stream.get_ref().1;
                    if let Some(m) = mtls.as_ref().filter(|_| resumed_past_expiry(session)) {
                        m.failures.with_label_values(&[&*listener, "expired"]).inc();
                        tracing::debug!(%client, "resumed TLS session of an expired client certificate dropped");
                        gauge.dec();
                        return;
                    }
                    let facts = inbound::session_facts(session, mtls.is_some().then_some(&*mesh));
                    if let Some(m) = &mtls {
                        m.connections.with_label_values(&[&*listener, "mtls"]).inc();
                        let resumed =
                            session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                        m.handshakes
                            .with_label_values(&[
                                &*listener,
                                if resumed { "true" } else { "false" },
                            ])
                            .inc();
                    }
                    let _ = conn_info.tls.set(facts);
                    drive(&builder, TokioIo::new(tls_stream), service, stop, idle).await
                }
                Ok(Err(err)) => {
                    let reason = spiffe::failure_reason(&err);
                    if let Some(m) = &mtls {
                        m.failures.with_label_values(&[&*listener, reason]).inc();
                    }
                    tracing::debug!(%client, error = %err, reason, "TLS handshake failed");
                }
                Err(_) => {
                    if let Some(m) = &mtls {
                        m.failures.with_label_values(&[&*listener, "timeout"]).inc();
                    }
                    tracing::debug!(%client, "TLS handshake timed out");
                }
            }
        }
    }
    gauge.dec();
}

/// Source of [`ConnInfo::id`].
static NEXT_CONNECTION_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Closes a connection with no request in flight for `timeout`; zero: never.
struct Idle {
    info: Arc<ConnInfo>,
    timeout: Duration,
    closed: prometheus::IntCounter,
}

impl Idle {
    async fn expired(&self) {
        if self.timeout.is_zero() {
            return std::future::pending().await;
        }
        loop {
            let idle_for = self.info.idle_for();
            if idle_for >= self.timeout
                && self
                    .info
                    .in_flight
                    .load(std::sync::atomic::Ordering::Relaxed)
                    == 0
            {
                return;
            }
            tokio::time::sleep(
                self.timeout
                    .saturating_sub(idle_for)
                    .max(Duration::from_millis(100)),
            )
            .await;
        }
    }
}

/// What ends a connection gracefully besides its idle timeout: the proxy's
/// shutdown, or a reload removing its listener.
struct Stop<'a> {
    shutdown: &'a mut watch::Receiver<bool>,
    removed: CancellationToken,
}

impl Stop<'_> {
    async fn fired(self) {
        tokio::select! {
            _ = self.shutdown.wait_for(|draining| *draining) => {}
            () = self.removed.cancelled() => {}
        }
    }
}

async fn drive<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    stop: Stop<'_>,
    idle: Idle,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<ProxyBody>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let draining = stop.fired();
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = draining => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        () = idle.expired() => {
            idle.closed.inc();
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "connection closed with error");
    }
}
