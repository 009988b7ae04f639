//! TLS session resumption between sidecars, bound to the mesh identity.
//!
//! A resumed handshake skips the certificate signatures and the chain
//! verification, so a session may only be resumed while what verified it
//! still holds. Every session therefore belongs to a *generation* of the
//! identity — this proxy's workload certificate, the trust bundle and the
//! trust domain — and a change of any of them starts a new generation:
//!
//! - listeners (server side) issue stateless TLS 1.3 tickets sealed by the
//!   generation's ticketer, the crypto provider's (ring's: ChaCha20-Poly1305,
//!   a fresh random key every 6 hours, tickets valid 12 hours). A listener
//!   accepts each connection with the server configuration of the current
//!   generation ([`super::inbound::MtlsAcceptor`]), so a handshake seals its
//!   ticket with the ticketer of the generation it started in, and tickets
//!   of earlier generations no longer open: those clients handshake in full
//!   again. Every listener shares the generation, so sessions survive
//!   configuration reloads;
//! - clusters (client side) keep their sessions in [`EndpointSessions`],
//!   one store per endpoint of each cluster (never shared between clusters:
//!   they differ in the identities they accept) and per generation: a
//!   connection started in a generation stores its tickets in that
//!   generation's store, which the next generation does not use.
//!
//! A resumed session carries the peer's certificate chain from its full
//! handshake (rustls restores it), so the peer facts filters read are the
//! same on resumed connections. rustls does not look at that certificate
//! again, so both sides also check that it has not expired since
//! ([`resumed_past_expiry`]) and drop the connection if it has (a peer that
//! renews in time never gets there: its renewal starts a generation).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::NamedGroup;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::server::ProducesTickets;
use rustls_pki_types::ServerName;

/// Whether `session` resumed a session whose peer certificate has expired
/// since its full handshake.
pub fn resumed_past_expiry(session: &rustls::CommonState) -> bool {
    if session.handshake_kind() != Some(rustls::HandshakeKind::Resumed) {
        return false;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| super::spiffe::cert_facts(leaf).ok())
        .is_none_or(|facts| facts.not_after < now)
}

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
    current: ArcSwap<TicketGeneration>,
}

/// One generation: its number and the ticketer sealing its tickets.
#[derive(Debug)]
pub struct TicketGeneration {
    /// Starts at 0, one more at each change of identity.
    pub number: u64,
    /// Seals and opens the tickets of this generation only.
    pub ticketer: Arc<dyn ProducesTickets>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            current: ArcSwap::from_pointee(TicketGeneration {
                number: 0,
                ticketer: new_ticketer(),
            }),
        }
    }
}

impl Sessions {
    /// Starts a new generation: sessions of earlier ones are not resumed.
    pub fn rotate(&self) {
        let number = self.current.load().number + 1;
        self.current.store(Arc::new(TicketGeneration {
            number,
            ticketer: new_ticketer(),
        }));
    }

    /// The current generation.
    pub fn current(&self) -> Arc<TicketGeneration> {
        self.current.load_full()
    }

    /// The current generation's number.
    pub fn generation(&self) -> u64 {
        self.current.load().number
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

/// The client sessions of one upstream endpoint for one generation (a
/// new generation gets a new store, see [`super::outbound`]). Each endpoint
/// has its own: a session only resumes with the server that issued it, and
/// a cluster's endpoints share one server name.
#[derive(Debug, Default)]
pub struct EndpointSessions {
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

impl EndpointSessions {
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

impl ClientSessionStore for EndpointSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.write(server_name, |s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.read(server_name, |s| s.kx_hint)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.write(server_name, |s| s.tls12 = Some(value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.read(server_name, |s| s.tls12.clone())
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.read(server_name, |s| s.tls12.take());
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.write(server_name, |s| {
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
        self.read(server_name, |s| s.tls13.pop_back())
    }
}
