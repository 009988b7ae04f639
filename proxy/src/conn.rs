//! What the request path knows about a downstream connection: its addresses,
//! scheme, TLS facts, and the in-flight count and last activity that the
//! idle timeout reads.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One accepted downstream connection.
pub struct ConnInfo {
    /// The address of the listener that accepted it.
    pub address: SocketAddr,
    /// The client's address.
    pub client: SocketAddr,
    /// The client's IP as text.
    pub client_ip: std::sync::Arc<str>,
    /// The client's IP as a header value (`x-forwarded-for`).
    pub client_ip_header: http::HeaderValue,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// When the connection was accepted.
    pub accepted: Instant,
    /// Requests in flight on this connection.
    pub in_flight: AtomicUsize,
    /// Milliseconds after `accepted` of the last request start or end.
    pub last_active_ms: AtomicU64,
    /// Process-unique connection id (`connection.id` for filters).
    pub id: u64,
    /// TLS facts once the handshake completed (for filter properties).
    pub tls: OnceLock<wasp_filter_host::TlsInfo>,
}

impl ConnInfo {
    /// Marks activity now (a request started or finished).
    pub fn touch(&self) {
        self.last_active_ms.store(
            self.accepted.elapsed().as_millis() as u64,
            Ordering::Relaxed,
        );
    }

    /// Time since the last request started or finished.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        self.accepted.elapsed().saturating_sub(last)
    }

    /// A request started on this connection.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// A request on this connection finished (its response was sent or abandoned).
    pub fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }
}
