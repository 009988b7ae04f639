//! TLS session resumption between sidecars, bound to the mesh identity.
//!
//! A resumed handshake skips the certificate signatures and the chain
//! verification, so a session may only be resumed while what verified it
//! still holds. Every session therefore belongs to a *generation* of the
//! identity — this proxy's workload certificate, the trust bundle and the
//! trust domain — and a change of any of them starts a new generation:
//!
//! - listeners (server side) issue stateless TLS 1.3 tickets sealed by the
//!   crypto provider's ticketer (ring's: ChaCha20-Poly1305, a fresh random
//!   key every 6 hours, tickets valid 12 hours); a new generation installs a
//!   new ticketer, so tickets sealed before it no longer open and those
//!   clients handshake in full again. One ticketer serves every listener, so
//!   sessions survive configuration reloads;
//! - clusters (client side) keep their sessions in [`EndpointSessions`],
//!   an in-memory store per endpoint of each cluster (never shared between
//!   clusters: they differ in the identities they accept) that empties
//!   itself when it sees a new generation.
//!
//! A resumed session carries the peer's certificate chain from its full
//! handshake (rustls restores it), so the peer facts filters read are the
//! same on resumed connections. A handshake that is in flight while the
//! generation changes may still store the session it verified under the
//! previous identity: the window is one round trip.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::NamedGroup;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::server::ProducesTickets;
use rustls_pki_types::ServerName;

/// TLS 1.3 tickets kept per endpoint, at most. Each new connection takes
/// one (they are single use) and receives one ([`TICKETS_PER_HANDSHAKE`]),
/// so the store holds about as many as the most connections ever opened
/// to the endpoint at once, up to this.
const TICKETS_PER_SERVER: usize = 64;

/// Tickets a listener issues per handshake: one replaces the one a resumed
/// connection used; a full handshake (none was left) adds one.
pub const TICKETS_PER_HANDSHAKE: usize = 1;

/// Server names an endpoint's store keeps sessions for (a cluster uses
/// one; beyond this the store starts again empty).
const SERVER_NAMES: usize = 4;

/// Makes a fresh ticketer (the crypto provider's own).
fn new_ticketer() -> Arc<dyn ProducesTickets> {
    match rustls::crypto::ring::Ticketer::new() {
        Ok(ticketer) => ticketer,
        Err(err) => {
            // Only fails when the system's random source does: no tickets
            // then, every handshake in full.
            tracing::warn!(error = %err, "TLS session tickets disabled");
            Arc::new(NoTickets)
        }
    }
}

/// The current generation of session material.
#[derive(Debug)]
pub struct Sessions {
    generation: AtomicU64,
    ticketer: ArcSwap<Arc<dyn ProducesTickets>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            generation: AtomicU64::new(0),
            ticketer: ArcSwap::from_pointee(new_ticketer()),
        }
    }
}

impl Sessions {
    /// Starts a new generation: sessions of earlier ones are not resumed.
    pub fn rotate(&self) {
        self.ticketer.store(Arc::new(new_ticketer()));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// The ticketer of listeners: the current generation's.
#[derive(Debug)]
pub struct MeshTickets(pub Arc<Sessions>);

impl ProducesTickets for MeshTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.0.ticketer.load().lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.ticketer.load().encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.0.ticketer.load().decrypt(cipher)
    }
}

/// A ticketer that issues nothing (the system's random source failed).
#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }

    fn lifetime(&self) -> u32 {
        0
    }

    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// The client sessions of one upstream endpoint, emptied at each new
/// generation. Each endpoint has its own (a session only resumes with the
/// server that issued it, and a cluster's endpoints share one server name).
#[derive(Debug)]
pub struct EndpointSessions {
    sessions: Arc<Sessions>,
    current: ArcSwap<Generation>,
}

/// What one generation stored, by server name.
#[derive(Debug)]
struct Generation {
    number: u64,
    servers: Mutex<Vec<(ServerName<'static>, ServerSessions)>>,
}

/// The sessions kept for one server name.
#[derive(Debug, Default)]
struct ServerSessions {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    /// Single-use TLS 1.3 tickets, newest last.
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl Generation {
    fn new(number: u64) -> Self {
        Self {
            number,
            servers: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on the sessions of `name`, if there are any.
    fn read<T>(
        &self,
        name: &ServerName<'_>,
        f: impl FnOnce(&mut ServerSessions) -> Option<T>,
    ) -> Option<T> {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers
            .iter_mut()
            .find(|(known, _)| known == name)
            .and_then(|(_, sessions)| f(sessions))
    }

    /// Runs `f` on the sessions of `name`, made if needed.
    fn write(&self, name: ServerName<'static>, f: impl FnOnce(&mut ServerSessions)) {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let at = match servers.iter().position(|(known, _)| *known == name) {
            Some(at) => at,
            None => {
                if servers.len() >= SERVER_NAMES {
                    servers.clear();
                }
                servers.push((name, ServerSessions::default()));
                servers.len() - 1
            }
        };
        f(&mut servers[at].1);
    }
}

impl EndpointSessions {
    /// An empty store following the generations of `sessions`.
    pub fn new(sessions: Arc<Sessions>) -> Self {
        let current = ArcSwap::from_pointee(Generation::new(sessions.generation()));
        Self { sessions, current }
    }

    /// The store of the current generation, a new one if it changed.
    fn current(&self) -> Arc<Generation> {
        let number = self.sessions.generation();
        let current = self.current.load_full();
        if current.number == number {
            return current;
        }
        let fresh = Arc::new(Generation::new(number));
        let previous = self.current.compare_and_swap(&current, Arc::clone(&fresh));
        if Arc::ptr_eq(&*previous, &current) {
            fresh
        } else {
            // Another connection replaced it first.
            self.current.load_full()
        }
    }
}

impl ClientSessionStore for EndpointSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.current()
            .write(server_name, |s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.current().read(server_name, |s| s.kx_hint)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.current().write(server_name, |s| s.tls12 = Some(value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.current().read(server_name, |s| s.tls12.clone())
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.current().read(server_name, |s| s.tls12.take());
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.current().write(server_name, |s| {
            if s.tls13.len() >= TICKETS_PER_SERVER {
                s.tls13.pop_front();
            }
            s.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.current().read(server_name, |s| s.tls13.pop_back())
    }
}
