//! Per-endpoint connection pools: reused keep-alive HTTP/1.1 connections, and
//! one multiplexed HTTP/2 connection re-opened when it closes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};

use super::UpstreamError;
use super::connect::{self, ConnMetrics};
use crate::http::body::UpstreamBody;

/// Connections to one endpoint.
pub enum Pool {
    /// Keep-alive HTTP/1.1 connections, one request at a time each.
    Http1(Arc<Http1Pool>),
    /// One HTTP/2 connection shared by every request.
    Http2(Http2Pool),
}

/// What a pool needs to open connections.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// Endpoint address.
    pub addr: SocketAddr,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Idle HTTP/1.1 connections kept.
    pub max_idle: usize,
    /// The cluster's connection metrics.
    pub metrics: ConnMetrics,
}

impl Pool {
    /// Sends one request over a pooled (or new) connection.
    pub async fn send(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match self {
            Self::Http1(pool) => pool.send(req).await,
            Self::Http2(pool) => pool.send(req).await,
        }
    }
}

/// Idle HTTP/1.1 connections of one endpoint.
pub struct Http1Pool {
    settings: PoolSettings,
    idle: Mutex<Vec<http1::SendRequest<UpstreamBody>>>,
}

impl Http1Pool {
    /// An empty pool.
    pub fn new(settings: PoolSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn take_idle(&self) -> Option<http1::SendRequest<UpstreamBody>> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(sender) = idle.pop() {
            if sender.is_ready() && !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    async fn send(
        self: &Arc<Self>,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let addr = self.settings.addr;
        // A pooled connection the upstream closed meanwhile hands the request
        // back unsent; then the next one (or a new one) is tried.
        while let Some(mut sender) = self.take_idle() {
            match sender.try_send_request(req).await {
                Ok(response) => {
                    self.recycle(sender);
                    return Ok(response);
                }
                Err(mut err) => match err.take_message() {
                    Some(unsent) => req = unsent,
                    None => {
                        return Err(UpstreamError::Reset {
                            addr,
                            source: err.into_error(),
                        });
                    }
                },
            }
        }
        let mut sender = connect::http1(
            addr,
            self.settings.connect_timeout,
            &self.settings.metrics,
            false,
        )
        .await?;
        let response = sender
            .send_request(req)
            .await
            .map_err(|source| UpstreamError::Reset { addr, source })?;
        self.recycle(sender);
        Ok(response)
    }

    /// Returns the connection to the pool once the response body has been
    /// read to its end (when hyper reports it ready for the next request).
    fn recycle(self: &Arc<Self>, mut sender: http1::SendRequest<UpstreamBody>) {
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                let mut idle = pool.idle.lock().expect("pool lock");
                if idle.len() < pool.settings.max_idle {
                    idle.push(sender);
                }
            }
        });
    }
}

/// The shared HTTP/2 connection of one endpoint.
pub struct Http2Pool {
    settings: PoolSettings,
    current: Mutex<Option<http2::SendRequest<UpstreamBody>>>,
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

    fn live(&self) -> Option<http2::SendRequest<UpstreamBody>> {
        let current = self.current.lock().expect("pool lock");
        current.as_ref().filter(|s| !s.is_closed()).cloned()
    }

    async fn sender(&self) -> Result<http2::SendRequest<UpstreamBody>, UpstreamError> {
        if let Some(sender) = self.live() {
            return Ok(sender);
        }
        // One task connects; the others wait for it and share the connection.
        let _connecting = self.connecting.lock().await;
        if let Some(sender) = self.live() {
            return Ok(sender);
        }
        let sender = connect::http2(
            self.settings.addr,
            self.settings.connect_timeout,
            &self.settings.metrics,
        )
        .await?;
        *self.current.lock().expect("pool lock") = Some(sender.clone());
        Ok(sender)
    }

    async fn send(&self, req: Request<UpstreamBody>) -> Result<Response<Incoming>, UpstreamError> {
        let addr = self.settings.addr;
        let mut sender = self.sender().await?;
        sender
            .ready()
            .await
            .map_err(|source| UpstreamError::Reset { addr, source })?;
        sender
            .send_request(req)
            .await
            .map_err(|source| UpstreamError::Reset { addr, source })
    }
}
