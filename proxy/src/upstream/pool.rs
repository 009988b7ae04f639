//! Per-endpoint connection pools: reused keep-alive HTTP/1.1 connections, and
//! one multiplexed HTTP/2 connection re-opened when it closes.
//!
//! Getting a connection ([`Pool::acquire`]) is separate from sending on it
//! ([`Connection::send`]), so a request whose connection could not be opened
//! still has its body and can be retried elsewhere. New connections take a
//! slot under the cluster's `max_connections`; when none is free, the request
//! waits as *pending* (under `max_pending_requests`) for one to come back.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};

use super::UpstreamError;
use super::breaker::Breakers;
use super::connect::{self, ConnMetrics, LocalAddr};
use crate::body::UpstreamBody;

/// Connections to one endpoint.
pub enum Pool {
    /// Keep-alive HTTP/1.1 connections, one request at a time each.
    Http1(Arc<Http1Pool>),
    /// One HTTP/2 connection shared by every request.
    Http2(Http2Pool),
}

/// What a pool needs to open connections.
#[derive(Clone)]
pub struct PoolSettings {
    /// Endpoint address.
    pub addr: SocketAddr,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Idle HTTP/1.1 connections kept.
    pub max_idle: usize,
    /// Pooled connections unused this long are closed.
    pub idle_timeout: Duration,
    /// The cluster's connection metrics.
    pub metrics: ConnMetrics,
    /// The cluster's circuit breakers.
    pub breakers: Arc<Breakers>,
    /// TLS origination, when the cluster has it.
    pub tls: Option<Arc<crate::mesh::outbound::UpstreamTls>>,
}

/// A connection ready for one request.
pub enum Connection {
    /// An HTTP/1.1 connection, returned to its pool after the response.
    Http1(Arc<Http1Pool>, http1::SendRequest<UpstreamBody>, LocalAddr),
    /// A handle on the endpoint's HTTP/2 connection.
    Http2(SocketAddr, http2::SendRequest<UpstreamBody>, LocalAddr),
}

impl Pool {
    /// A pooled or new connection.
    pub async fn acquire(&self) -> Result<Connection, UpstreamError> {
        match self {
            Self::Http1(pool) => pool
                .acquire()
                .await
                .map(|(sender, local)| Connection::Http1(Arc::clone(pool), sender, local)),
            Self::Http2(pool) => pool.acquire().await,
        }
    }

    /// Closes pooled connections idle for longer than the idle timeout.
    pub fn prune(&self) {
        if let Self::Http1(pool) = self {
            pool.prune();
        }
    }
}

impl Connection {
    /// Sends one request; returns the response and the [`LocalAddr`] of
    /// the connection it came on.
    pub async fn send(
        self,
        req: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, LocalAddr), UpstreamError> {
        match self {
            Self::Http1(pool, sender, local) => pool.send(sender, local, req).await,
            Self::Http2(addr, mut sender, local) => {
                sender
                    .ready()
                    .await
                    .map_err(|source| UpstreamError::Reset { addr, source })?;
                let response = sender
                    .send_request(req)
                    .await
                    .map_err(|source| UpstreamError::Reset { addr, source })?;
                Ok((response, local))
            }
        }
    }
}

struct Idle {
    sender: http1::SendRequest<UpstreamBody>,
    local: LocalAddr,
    since: Instant,
}

/// A ready HTTP/1.1 connection and its local address.
type Http1Sender = (http1::SendRequest<UpstreamBody>, LocalAddr);

/// Idle HTTP/1.1 connections of one endpoint.
pub struct Http1Pool {
    settings: PoolSettings,
    idle: Mutex<Vec<Idle>>,
}

impl Http1Pool {
    /// An empty pool.
    pub fn new(settings: PoolSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn take_idle(&self) -> Option<Http1Sender> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(entry) = idle.pop() {
            if entry.sender.is_ready() && entry.since.elapsed() < self.settings.idle_timeout {
                return Some((entry.sender, entry.local));
            }
        }
        None
    }

    fn prune(&self) {
        let timeout = self.settings.idle_timeout;
        self.idle
            .lock()
            .expect("pool lock")
            .retain(|entry| !entry.sender.is_closed() && entry.since.elapsed() < timeout);
    }

    /// Opens a connection. The future is boxed: opening is rare beside
    /// reusing, and the callers' futures (every request's) stay small.
    fn connect(
        &self,
        permit: super::breaker::Permit,
    ) -> Pin<Box<dyn Future<Output = Result<Http1Sender, UpstreamError>> + Send + '_>> {
        let s = &self.settings;
        Box::pin(connect::http1(
            s.addr,
            s.connect_timeout,
            &s.metrics,
            permit,
            false,
            s.tls.as_deref(),
        ))
    }

    async fn acquire(&self) -> Result<Http1Sender, UpstreamError> {
        if let Some(sender) = self.take_idle() {
            return Ok(sender);
        }
        let breakers = &self.settings.breakers;
        if let Some(permit) = breakers.try_connection() {
            return self.connect(permit).await;
        }
        // Every connection slot is taken: wait, as a pending request, for a
        // connection to come back to this pool or for a slot to free up.
        let _pending = breakers
            .try_pending()
            .map_err(|_| UpstreamError::Overflow(super::Breaker::MaxPending))?;
        loop {
            let freed = breakers.connection_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(sender) = self.take_idle() {
                return Ok(sender);
            }
            if let Some(permit) = breakers.try_connection() {
                return self.connect(permit).await;
            }
            freed.await;
        }
    }

    async fn send(
        self: Arc<Self>,
        mut sender: http1::SendRequest<UpstreamBody>,
        mut local: LocalAddr,
        req: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, LocalAddr), UpstreamError> {
        let addr = self.settings.addr;
        // A pooled connection the upstream closed meanwhile hands the request
        // back unsent; it then goes out on another connection.
        let response = match sender.try_send_request(req).await {
            Ok(response) => response,
            Err(mut err) => match err.take_message() {
                Some(unsent) => {
                    (sender, local) = match self.take_idle() {
                        Some(sender) => sender,
                        None => match self.settings.breakers.try_connection() {
                            Some(permit) => self.connect(permit).await?,
                            None => {
                                return Err(UpstreamError::Reset {
                                    addr,
                                    source: err.into_error(),
                                });
                            }
                        },
                    };
                    sender
                        .send_request(unsent)
                        .await
                        .map_err(|source| UpstreamError::Reset { addr, source })?
                }
                None => {
                    return Err(UpstreamError::Reset {
                        addr,
                        source: err.into_error(),
                    });
                }
            },
        };
        self.recycle(sender, local);
        Ok((response, local))
    }

    /// Returns the connection to the pool once hyper reports it ready for
    /// the next request, which is when the response body has been read
    /// off it. A response whose body arrived with its head (most small
    /// ones) leaves it ready by the time the caller resumes: the
    /// connection goes straight back, with no task to wait for it.
    fn recycle(self: &Arc<Self>, mut sender: http1::SendRequest<UpstreamBody>, local: LocalAddr) {
        if sender.is_ready() {
            self.put_idle(sender, local);
            return;
        }
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                pool.put_idle(sender, local);
            }
        });
    }

    /// Keeps a ready connection for reuse (while fewer than `max_idle`
    /// are kept) and wakes a request waiting for one.
    fn put_idle(&self, sender: http1::SendRequest<UpstreamBody>, local: LocalAddr) {
        {
            let mut idle = self.idle.lock().expect("pool lock");
            if idle.len() < self.settings.max_idle {
                idle.push(Idle {
                    sender,
                    local,
                    since: Instant::now(),
                });
            }
        }
        self.settings.breakers.connection_freed.notify_waiters();
    }
}

/// The shared HTTP/2 connection of one endpoint.
pub struct Http2Pool {
    settings: PoolSettings,
    current: Mutex<Option<(http2::SendRequest<UpstreamBody>, LocalAddr)>>,
    connecting: tokio::sync::Mutex<()>,
}

impl Http2Pool {
    /// A pool with no connection yet.
    pub fn new(settings: PoolSettings) -> Self {
        Self {
            settings,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn live(&self) -> Option<(http2::SendRequest<UpstreamBody>, LocalAddr)> {
        let current = self.current.lock().expect("pool lock");
        current.as_ref().filter(|(s, _)| !s.is_closed()).cloned()
    }

    async fn acquire(&self) -> Result<Connection, UpstreamError> {
        let addr = self.settings.addr;
        if let Some((sender, local)) = self.live() {
            return Ok(Connection::Http2(addr, sender, local));
        }
        // One request connects; the others wait for it (as pending requests)
        // and share the connection.
        let _pending = self
            .settings
            .breakers
            .try_pending()
            .map_err(|_| UpstreamError::Overflow(super::Breaker::MaxPending))?;
        let _connecting = self.connecting.lock().await;
        if let Some((sender, local)) = self.live() {
            return Ok(Connection::Http2(addr, sender, local));
        }
        let permit = self
            .settings
            .breakers
            .try_connection()
            .ok_or(UpstreamError::Overflow(super::Breaker::MaxPending))?;
        let s = &self.settings;
        // Boxed: connecting is rare, and every request awaits `acquire`.
        let (sender, local) = Box::pin(connect::http2(
            addr,
            s.connect_timeout,
            &s.metrics,
            permit,
            s.tls.as_deref(),
        ))
        .await?;
        *self.current.lock().expect("pool lock") = Some((sender.clone(), local));
        Ok(Connection::Http2(addr, sender, local))
    }
}
