//! The access log: one line per completed request, written through `tracing`
//! (target `wasp::access`) so it follows the process's log format.

use std::time::Duration;

/// What the access log records about one request.
#[derive(Debug)]
pub struct AccessRecord<'a> {
    /// Listener name.
    pub listener: &'a str,
    /// Route name (`-` when none matched).
    pub route: &'a str,
    /// Request method.
    pub method: &'a str,
    /// Request path and query.
    pub path: &'a str,
    /// Protocol version, e.g. `HTTP/1.1`.
    pub protocol: &'a str,
    /// Response status code.
    pub status: u16,
    /// Upstream endpoint address, when one was used.
    pub upstream: Option<std::net::SocketAddr>,
    /// Time from request received to response completed.
    pub duration: Duration,
    /// Time from request received to response headers from upstream.
    pub upstream_duration: Option<Duration>,
    /// Response body bytes sent to the client.
    pub bytes_sent: u64,
    /// The request's `x-request-id`.
    pub request_id: &'a str,
    /// The client's address.
    pub client: &'a str,
}

/// Writes one access log line.
pub fn log(record: &AccessRecord<'_>) {
    tracing::info!(
        target: "wasp::access",
        listener = record.listener,
        route = record.route,
        method = record.method,
        path = record.path,
        protocol = record.protocol,
        status = record.status,
        upstream = %record.upstream.map_or_else(|| "-".to_owned(), |a| a.to_string()),
        duration_ms = millis(record.duration),
        upstream_ms = record.upstream_duration.map(millis).unwrap_or(-1.0),
        bytes_sent = record.bytes_sent,
        request_id = record.request_id,
        client = record.client,
        "access"
    );
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}
