//! The record of one request, completed when its response has been sent or
//! abandoned: the standard metrics, the active-request gauges and the access
//! log line. For a request that runs a filter chain it also passes what it
//! learns (cluster, endpoint, response details, bytes sent) to the chain's
//! [`StreamFacts`], which filters read as properties.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntGauge;
use wasp_filter_host::{StreamFacts, UpstreamFacts};

use super::Metrics;
use super::access_log::{self, AccessRecord};
use super::series;
use crate::conn::ConnInfo;

/// Everything recorded about a request once its response is done: metrics,
/// the active-request gauge and the access log line.
pub struct Completion {
    /// Shared metrics.
    pub metrics: Arc<Metrics>,
    /// The listener's active-request gauge (decremented on drop).
    pub active: IntGauge,
    /// Whether to write an access log line.
    pub access_log: bool,
    /// When the request arrived.
    pub start: Instant,
    /// Listener name.
    pub listener: Arc<str>,
    /// Route name; `None` when no route matched.
    pub route: Option<Arc<str>>,
    /// Cluster name; `None` when not forwarded.
    pub cluster: Option<Arc<str>>,
    /// Response status.
    pub status: u16,
    /// Upstream endpoint used.
    pub upstream: Option<std::net::SocketAddr>,
    /// Time to upstream response headers.
    pub upstream_duration: Option<Duration>,
    /// Response body bytes sent.
    pub bytes_sent: u64,
    /// Method, for the access log.
    pub method: http::Method,
    /// Path and query, for the access log (empty when it is off).
    pub path: String,
    /// Protocol version, for the access log.
    pub version: http::Version,
    /// `x-request-id`, for the access log (`None` when it is off).
    pub request_id: Option<http::HeaderValue>,
    /// The downstream connection (in-flight count, client address).
    pub conn: Arc<ConnInfo>,
    /// The filter chain's view of the request, when a chain runs.
    pub facts: Option<Arc<StreamFacts>>,
}

impl Completion {
    /// The cluster the request goes to.
    pub fn set_cluster(&mut self, name: &Arc<str>) {
        if let Some(facts) = &self.facts {
            facts.set_cluster(name);
        }
        self.cluster = Some(Arc::clone(name));
    }

    /// The endpoint of the current attempt.
    pub fn set_upstream(&mut self, address: std::net::SocketAddr) {
        if let Some(facts) = &self.facts {
            facts.set_upstream(UpstreamFacts {
                address,
                local_address: None,
                transport_failure_reason: String::new(),
            });
        }
        self.upstream = Some(address);
    }

    /// The local end of the connection the current attempt went out on.
    pub fn set_upstream_local(&self, local: std::net::SocketAddr) {
        if let Some(facts) = &self.facts {
            facts.set_upstream_local(local);
        }
    }

    /// Why the response is what it is (Envoy's response code details) and
    /// its response flags (`wasp_filter_host::response_flags`).
    pub fn set_response(&self, details: &'static str, flags: u64) {
        if let Some(facts) = &self.facts {
            facts.set_response(details, flags);
        }
    }

    /// Adds response flags.
    pub fn add_flags(&self, flags: u64) {
        if let Some(facts) = &self.facts {
            facts.add_flags(flags);
        }
    }

    /// Counts response body bytes sent.
    pub fn count_sent(&mut self, bytes: u64) {
        self.bytes_sent += bytes;
        if let Some(facts) = &self.facts {
            facts.add_response_bytes(bytes);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let duration = self.start.elapsed();
        self.active.dec();
        self.conn.request_finished();
        let code = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        series::record(
            &series::Labels {
                metrics: &self.metrics,
                listener: &self.listener,
                route: self.route.as_ref(),
                cluster: self.cluster.as_ref(),
                code,
            },
            duration.as_secs_f64(),
        );
        let route = self.route.as_deref().unwrap_or("-");
        if self.access_log {
            access_log::log(&AccessRecord {
                listener: &self.listener,
                route,
                method: self.method.as_str(),
                path: &self.path,
                protocol: protocol_name(self.version),
                status: self.status,
                upstream: self.upstream,
                duration,
                upstream_duration: self.upstream_duration,
                bytes_sent: self.bytes_sent,
                request_id: self
                    .request_id
                    .as_ref()
                    .and_then(|id| id.to_str().ok())
                    .unwrap_or("-"),
                client: &self.conn.client_ip,
            });
        }
    }
}

/// The protocol version as the access log writes it.
pub fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}
