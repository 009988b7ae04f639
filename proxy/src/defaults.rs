//! Named defaults, in one place: every default the configuration model uses.

use std::time::Duration;

/// Time in-flight requests get to finish after SIGTERM/SIGINT.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to establish an upstream TCP connection (Envoy's default).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Interval between DNS resolutions of an endpoint's host name (Envoy's default).
pub const DNS_REFRESH_RATE: Duration = Duration::from_secs(5);
/// Idle HTTP/1.1 connections kept per upstream endpoint.
pub const MAX_IDLE_PER_ENDPOINT: usize = 64;
/// Status of a redirect when the configuration does not name one.
pub const REDIRECT_STATUS: u16 = 301;
/// How often the configuration file is checked for changes.
pub const CONFIG_POLL_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) fn drain_timeout() -> Duration {
    DRAIN_TIMEOUT
}
pub(crate) fn connect_timeout() -> Duration {
    CONNECT_TIMEOUT
}
pub(crate) fn dns_refresh_rate() -> Duration {
    DNS_REFRESH_RATE
}
pub(crate) fn max_idle_per_endpoint() -> usize {
    MAX_IDLE_PER_ENDPOINT
}
pub(crate) fn redirect_status() -> u16 {
    REDIRECT_STATUS
}
