//! Listeners: bound sockets and their accept loops. A reload binds the new
//! listeners before the new snapshot is swapped in, so a port that cannot be
//! bound fails the reload instead of losing a listener.

pub(crate) mod conn;

pub use crate::serving::{HttpBuilder, http_builder};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::snapshot::Snapshot;
use crate::state::ProxyState;

/// Pending connections the kernel queues per listener.
const BACKLOG: i32 = 1024;

/// Why a listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("listener '{name}': cannot bind {address}: {source}")]
pub struct BindError {
    /// Listener name.
    pub name: String,
    /// Address.
    pub address: SocketAddr,
    /// The OS error.
    pub source: std::io::Error,
}

/// Sockets bound for a snapshot but not yet accepting.
pub struct Prepared {
    bound: Vec<(SocketAddr, TcpListener)>,
}

/// Owns every listener's accept loop and every connection task. Sockets are
/// keyed by address: a listener renamed or reconfigured on the same address
/// keeps its socket and connections.
pub struct ListenerManager {
    state: Arc<ProxyState>,
    running: HashMap<SocketAddr, CancellationToken>,
    connections: TaskTracker,
    drain_tx: watch::Sender<bool>,
}

impl ListenerManager {
    /// A manager with no listeners yet.
    pub fn new(state: Arc<ProxyState>) -> Self {
        Self {
            state,
            running: HashMap::new(),
            connections: TaskTracker::new(),
            drain_tx: watch::channel(false).0,
        }
    }

    /// Binds the sockets `snapshot` needs that are not open yet.
    pub fn prepare(&self, snapshot: &Snapshot) -> Result<Prepared, BindError> {
        let mut bound = Vec::new();
        for (address, listener) in &snapshot.by_address {
            if self.running.contains_key(address) {
                continue;
            }
            let socket = bind(*address).map_err(|source| BindError {
                name: listener.name.to_string(),
                address: *address,
                source,
            })?;
            bound.push((*address, socket));
        }
        Ok(Prepared { bound })
    }

    /// Starts the prepared listeners and stops those `snapshot` no longer has:
    /// they stop accepting and their connections drain (in-flight requests
    /// finish, then the connection closes). Call after the snapshot is
    /// swapped in.
    pub fn commit(&mut self, prepared: Prepared, snapshot: &Snapshot) {
        self.running.retain(|address, stop| {
            let keep = snapshot.by_address.contains_key(address);
            if !keep {
                stop.cancel();
                tracing::info!(%address, "listener stopped");
            }
            keep
        });
        for (address, socket) in prepared.bound {
            let stop = CancellationToken::new();
            if let Some(listener) = snapshot.by_address.get(&address) {
                tracing::info!(listener = %listener.name, %address, "listening");
            }
            self.connections.spawn(accept_loop(
                Arc::clone(&self.state),
                address,
                socket,
                stop.clone(),
                self.connections.clone(),
                self.drain_tx.subscribe(),
            ));
            self.running.insert(address, stop);
        }
    }

    /// Stops accepting, asks every connection to finish its in-flight
    /// requests, and waits up to `deadline` for them. False when the deadline
    /// passed first.
    pub async fn drain(&mut self, deadline: Duration) -> bool {
        for (_, stop) in self.running.drain() {
            stop.cancel();
        }
        let _ = self.drain_tx.send(true);
        self.connections.close();
        tokio::time::timeout(deadline, self.connections.wait())
            .await
            .is_ok()
    }
}

fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(
    state: Arc<ProxyState>,
    address: SocketAddr,
    socket: TcpListener,
    stop: CancellationToken,
    connections: TaskTracker,
    drain: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = socket.accept() => accepted,
        };
        match accepted {
            Ok((stream, client)) => {
                connections.spawn(conn::serve(
                    Arc::clone(&state),
                    address,
                    stream,
                    client,
                    drain.clone(),
                    stop.clone(),
                ));
            }
            Err(err) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(%address, error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
