//! Named defaults, in one place: every default the configuration model uses
//! (and the filter host's plugin limits, which it takes from here).

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
/// Idle time after which client and upstream connections close (Envoy's default).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Largest request header block, KiB (Envoy's `max_request_headers_kb`).
pub const MAX_REQUEST_HEADERS_KB: u32 = 60;
/// Most accepted `max_request_headers_kb` (Envoy's bound).
pub const MAX_REQUEST_HEADERS_KB_LIMIT: u32 = 8192;
/// Most request header fields (Envoy's `max_request_headers_count`).
pub const MAX_REQUEST_HEADERS_COUNT: u32 = 100;
/// A request with no bytes either way this long ends (Envoy's
/// `stream_idle_timeout`).
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Route timeout to response headers (Envoy's default).
pub const ROUTE_TIMEOUT: Duration = Duration::from_secs(15);
/// Protocols a route forwards upgrades to (`Upgrade: websocket`), like
/// Envoy's usual `upgrade_configs`.
pub const ROUTE_UPGRADES: &[&str] = &["websocket"];
/// Retries of a retry policy that does not say (Envoy's default).
pub const NUM_RETRIES: u32 = 1;
/// First retry back-off interval (Envoy's default).
pub const RETRY_BASE_INTERVAL: Duration = Duration::from_millis(25);
/// Largest request body buffered for retries.
pub const RETRY_BUFFER_LIMIT: u64 = 64 * 1024;
/// Circuit breaker: open connections per cluster (Envoy's default).
pub const MAX_CONNECTIONS: usize = 1024;
/// Circuit breaker: requests waiting for a connection (Envoy's default).
pub const MAX_PENDING_REQUESTS: usize = 1024;
/// Circuit breaker: requests in flight (Envoy's default).
pub const MAX_REQUESTS: usize = 1024;
/// Circuit breaker: retries in flight (Envoy's default).
pub const MAX_RETRIES: usize = 3;
/// Retry budget share of active requests, percent (Envoy's default).
pub const BUDGET_PERCENT: f64 = 20.0;
/// Retry budget floor (Envoy's default).
pub const MIN_RETRY_CONCURRENCY: usize = 3;
/// Outlier detection: consecutive 5xx that eject (Envoy's default).
pub const CONSECUTIVE_5XX: u32 = 5;
/// Outlier detection: first ejection time (Envoy's default).
pub const BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
/// Outlier detection: largest share of endpoints ejected, percent (Envoy's default).
pub const MAX_EJECTION_PERCENT: u32 = 10;
/// Health check: time between probes.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Health check: probe timeout.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Health check: successes to become healthy.
pub const HEALTHY_THRESHOLD: u32 = 2;
/// Health check: failures to become unhealthy.
pub const UNHEALTHY_THRESHOLD: u32 = 3;
/// Healthy percentage below which every endpoint is used (Envoy's default).
pub const PANIC_THRESHOLD: u32 = 50;
/// How often the configuration file is checked for changes.
pub const CONFIG_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Linear memory cap of one filter VM.
pub const PLUGIN_MEMORY_BYTES: u64 = 64 << 20;
/// Largest filter VM memory cap accepted (the engine's pool slots are this big).
pub const MAX_PLUGIN_MEMORY_BYTES: u64 = 512 << 20;
/// CPU time one filter callback may take. A looping filter holds its
/// worker thread this long, so every request on that worker waits as long.
pub const PLUGIN_CPU_DEADLINE: Duration = Duration::from_millis(20);
/// Largest `cpu_deadline` accepted.
pub const MAX_PLUGIN_CPU_DEADLINE: Duration = Duration::from_secs(1);
/// Bytes of one header or trailer map a filter may grow it to (names plus
/// values; Envoy's `max_request_headers_kb` default, 60 KiB).
pub const PLUGIN_MAX_HEADER_BYTES: u64 = 60 << 10;
/// Entries of one header or trailer map a filter may grow it to (Envoy's
/// `max_headers_count` default).
pub const PLUGIN_MAX_HEADER_COUNT: u64 = 100;
/// Body bytes a filter may hold buffered (by pausing in a body callback) or
/// grow a body buffer to, per direction of a request (Envoy's default
/// buffer limit, 1 MiB).
pub const PLUGIN_MAX_BUFFERED_BODY_BYTES: u64 = 1 << 20;
/// Bytes of properties a filter may set on one request (keys plus values).
pub const PLUGIN_MAX_PROPERTY_BYTES: u64 = 64 << 10;
/// Bytes of shared data (keys plus values) per `vm_id`.
pub const PLUGIN_MAX_SHARED_DATA_BYTES: u64 = 16 << 20;
/// Shared data keys per `vm_id`.
pub const PLUGIN_MAX_SHARED_DATA_KEYS: u64 = 10_000;
/// Items one shared queue holds.
pub const PLUGIN_MAX_QUEUE_DEPTH: u64 = 10_000;
/// Bytes one shared queue holds.
pub const PLUGIN_MAX_QUEUE_BYTES: u64 = 16 << 20;
/// Bytes of one callout's request (headers, body and trailers; for a gRPC
/// stream, every message sent) a filter may make the host send.
pub const PLUGIN_MAX_CALLOUT_REQUEST_BYTES: u64 = 1 << 20;
/// Bytes of one callout's response (headers, body and trailers; for a gRPC
/// stream, the part of a message not yet delivered) the host buffers.
pub const PLUGIN_MAX_CALLOUT_RESPONSE_BYTES: u64 = 4 << 20;
/// Callouts (HTTP and gRPC calls, open gRPC streams) one VM may have in flight.
pub const PLUGIN_MAX_CALLOUTS_IN_FLIGHT: u64 = 256;
/// Bytes of compiled filter modules kept in the engine's cache.
pub const MODULE_CACHE_BYTES: u64 = 256 << 20;
/// Most VMs of one plugin (one per worker thread up to this many).
pub const PLUGIN_MAX_VMS: usize = 4;

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
pub(crate) fn idle_timeout() -> Duration {
    IDLE_TIMEOUT
}
pub(crate) fn max_request_headers_kb() -> u32 {
    MAX_REQUEST_HEADERS_KB
}
pub(crate) fn max_request_headers_count() -> u32 {
    MAX_REQUEST_HEADERS_COUNT
}
pub(crate) fn stream_idle_timeout() -> Duration {
    STREAM_IDLE_TIMEOUT
}
pub(crate) fn route_timeout() -> Duration {
    ROUTE_TIMEOUT
}
pub(crate) fn route_upgrades() -> Vec<String> {
    ROUTE_UPGRADES.iter().map(|p| (*p).to_owned()).collect()
}
pub(crate) fn num_retries() -> u32 {
    NUM_RETRIES
}
pub(crate) fn retry_base_interval() -> Duration {
    RETRY_BASE_INTERVAL
}
pub(crate) fn retry_buffer_limit() -> u64 {
    RETRY_BUFFER_LIMIT
}
pub(crate) fn max_connections() -> usize {
    MAX_CONNECTIONS
}
pub(crate) fn max_pending_requests() -> usize {
    MAX_PENDING_REQUESTS
}
pub(crate) fn max_requests() -> usize {
    MAX_REQUESTS
}
pub(crate) fn max_retries() -> usize {
    MAX_RETRIES
}
pub(crate) fn budget_percent() -> f64 {
    BUDGET_PERCENT
}
pub(crate) fn min_retry_concurrency() -> usize {
    MIN_RETRY_CONCURRENCY
}
pub(crate) fn consecutive_5xx() -> u32 {
    CONSECUTIVE_5XX
}
pub(crate) fn base_ejection_time() -> Duration {
    BASE_EJECTION_TIME
}
pub(crate) fn max_ejection_percent() -> u32 {
    MAX_EJECTION_PERCENT
}
pub(crate) fn health_interval() -> Duration {
    HEALTH_INTERVAL
}
pub(crate) fn health_timeout() -> Duration {
    HEALTH_TIMEOUT
}
pub(crate) fn healthy_threshold() -> u32 {
    HEALTHY_THRESHOLD
}
pub(crate) fn unhealthy_threshold() -> u32 {
    UNHEALTHY_THRESHOLD
}
pub(crate) fn panic_threshold() -> u32 {
    PANIC_THRESHOLD
}
pub(crate) fn plugin_memory_bytes() -> u64 {
    PLUGIN_MEMORY_BYTES
}
pub(crate) fn plugin_cpu_deadline() -> Duration {
    PLUGIN_CPU_DEADLINE
}
pub(crate) fn plugin_max_vms() -> usize {
    PLUGIN_MAX_VMS
}
pub(crate) fn plugin_max_header_bytes() -> u64 {
    PLUGIN_MAX_HEADER_BYTES
}
pub(crate) fn plugin_max_header_count() -> u64 {
    PLUGIN_MAX_HEADER_COUNT
}
pub(crate) fn plugin_max_buffered_body_bytes() -> u64 {
    PLUGIN_MAX_BUFFERED_BODY_BYTES
}
pub(crate) fn plugin_max_property_bytes() -> u64 {
    PLUGIN_MAX_PROPERTY_BYTES
}
pub(crate) fn plugin_max_shared_data_bytes() -> u64 {
    PLUGIN_MAX_SHARED_DATA_BYTES
}
pub(crate) fn plugin_max_shared_data_keys() -> u64 {
    PLUGIN_MAX_SHARED_DATA_KEYS
}
pub(crate) fn plugin_max_queue_depth() -> u64 {
    PLUGIN_MAX_QUEUE_DEPTH
}
pub(crate) fn plugin_max_queue_bytes() -> u64 {
    PLUGIN_MAX_QUEUE_BYTES
}

pub(crate) fn plugin_max_callout_request_bytes() -> u64 {
    PLUGIN_MAX_CALLOUT_REQUEST_BYTES
}

pub(crate) fn plugin_max_callout_response_bytes() -> u64 {
    PLUGIN_MAX_CALLOUT_RESPONSE_BYTES
}

pub(crate) fn plugin_max_callouts_in_flight() -> u64 {
    PLUGIN_MAX_CALLOUTS_IN_FLIGHT
}
