//! The proxy's standard Prometheus metrics, registered in one registry that
//! the admin server renders at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Buckets of the request duration histogram, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every standard metric of the proxy.
#[derive(Clone)]
pub struct Metrics {
    /// The registry everything is registered in (filters add theirs too).
    pub registry: Registry,
    /// `wasp_requests_total{listener,route,cluster,code}`.
    pub requests_total: IntCounterVec,
    /// `wasp_request_duration_seconds{listener,route}`.
    pub request_duration: HistogramVec,
    /// `wasp_active_requests{listener}`.
    pub active_requests: IntGaugeVec,
    /// `wasp_downstream_cx_active{listener}`.
    pub downstream_cx_active: IntGaugeVec,
    /// `wasp_downstream_cx_total{listener}`.
    pub downstream_cx_total: IntCounterVec,
    /// `wasp_downstream_cx_idle_timeout_total{listener}`.
    pub downstream_cx_idle_timeout: IntCounterVec,
    /// `wasp_downstream_rq_timeout_total{listener}`: requests not received
    /// completely within `request_timeout`.
    pub downstream_rq_timeout: IntCounterVec,
    /// `wasp_downstream_rq_idle_timeout_total{listener}`: requests ended by
    /// `stream_idle_timeout`.
    pub downstream_rq_idle_timeout: IntCounterVec,
    /// `wasp_mtls_handshake_failures_total{listener,reason}`: inbound
    /// (m)TLS handshakes that failed, by reason.
    pub mtls_handshake_failures: IntCounterVec,
    /// `wasp_mtls_connections_total{listener,transport="mtls"|"plaintext"}`:
    /// connections accepted on mutual-TLS listeners.
    pub mtls_connections: IntCounterVec,
    /// `wasp_mtls_handshakes_total{listener,resumed="true"|"false"}`:
    /// inbound mutual-TLS handshakes that succeeded, by kind.
    pub mtls_handshakes: IntCounterVec,
    /// `wasp_upstream_tls_failures_total{cluster,reason}`: TLS handshakes
    /// to upstream endpoints that failed, by reason.
    pub upstream_tls_failures: IntCounterVec,
    /// `wasp_upstream_tls_handshakes_total{cluster,resumed="true"|"false"}`:
    /// TLS handshakes to upstream endpoints that succeeded, by kind.
    pub upstream_tls_handshakes: IntCounterVec,
    /// `wasp_egress_denied_total{host}`: requests denied by the egress
    /// policy (hosts beyond the label cap count as `other`).
    pub egress_denied: IntCounterVec,
    /// `wasp_upstream_cx_active{cluster}`.
    pub upstream_cx_active: IntGaugeVec,
    /// `wasp_upstream_cx_total{cluster}`.
    pub upstream_cx_total: IntCounterVec,
    /// `wasp_upstream_cx_connect_fail_total{cluster}`.
    pub upstream_cx_connect_fail: IntCounterVec,
    /// `wasp_upstream_rq_retry_total{cluster}`.
    pub upstream_rq_retry: IntCounterVec,
    /// `wasp_upstream_rq_timeout_total{cluster}`: route timeouts.
    pub upstream_rq_timeout: IntCounterVec,
    /// `wasp_upstream_rq_per_try_timeout_total{cluster}`.
    pub upstream_rq_per_try_timeout: IntCounterVec,
    /// `wasp_upstream_rq_overflow_total{cluster,breaker}`: circuit breaker overflows.
    pub upstream_rq_overflow: IntCounterVec,
    /// `wasp_upstream_ejections_total{cluster}`: outlier ejections.
    pub upstream_ejections: IntCounterVec,
    /// `wasp_upstream_endpoint_rq_total{cluster,endpoint}`.
    pub upstream_endpoint_rq: IntCounterVec,
    /// `wasp_upstream_endpoint_ejected{cluster,endpoint}`: 1 while ejected.
    pub upstream_endpoint_ejected: IntGaugeVec,
    /// `wasp_upstream_endpoint_healthy{cluster,endpoint}`: 0 while failing health checks.
    pub upstream_endpoint_healthy: IntGaugeVec,
    /// `wasp_config_reloads_total{result="ok"|"failed"}`.
    pub config_reloads: IntCounterVec,
    /// `wasp_config_version`: the version of the running snapshot.
    pub config_version: IntGauge,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

impl Metrics {
    /// Creates and registers every metric in a new registry.
    pub fn new() -> Self {
        let r = Registry::new();
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "wasp_request_duration_seconds",
                "Time from request received to response completed",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["listener", "route"],
        )
        .expect("valid metric");
        r.register(Box::new(request_duration.clone()))
            .expect("metric registered once");
        let config_version = IntGauge::new(
            "wasp_config_version",
            "Version of the running configuration snapshot",
        )
        .expect("valid metric");
        r.register(Box::new(config_version.clone()))
            .expect("metric registered once");
        let cluster = &["cluster"];
        let endpoint = &["cluster", "endpoint"];
        let listener = &["listener"];
        let metrics = Self {
            requests_total: counter(
                &r,
                "wasp_requests_total",
                "Requests completed, by listener, route, cluster and status code",
                &["listener", "route", "cluster", "code"],
            ),
            request_duration,
            active_requests: gauge(&r, "wasp_active_requests", "Requests in flight", listener),
            downstream_cx_active: gauge(
                &r,
                "wasp_downstream_cx_active",
                "Open downstream connections",
                listener,
            ),
            downstream_cx_total: counter(
                &r,
                "wasp_downstream_cx_total",
                "Downstream connections accepted",
                listener,
            ),
            downstream_cx_idle_timeout: counter(
                &r,
                "wasp_downstream_cx_idle_timeout_total",
                "Downstream connections closed for idleness",
                listener,
            ),
            mtls_handshake_failures: counter(
                &r,
                "wasp_mtls_handshake_failures_total",
                "Inbound TLS handshakes on mutual-TLS listeners that failed, by reason",
                &["listener", "reason"],
            ),
            mtls_connections: counter(
                &r,
                "wasp_mtls_connections_total",
                "Connections served on mutual-TLS listeners, by transport",
                &["listener", "transport"],
            ),
            mtls_handshakes: counter(
                &r,
                "wasp_mtls_handshakes_total",
                "Inbound TLS handshakes on mutual-TLS listeners that succeeded, by whether they resumed a session",
                &["listener", "resumed"],
            ),
            upstream_tls_failures: counter(
                &r,
                "wasp_upstream_tls_failures_total",
                "TLS handshakes to upstream endpoints that failed, by reason",
                &["cluster", "reason"],
            ),
            upstream_tls_handshakes: counter(
                &r,
                "wasp_upstream_tls_handshakes_total",
                "TLS handshakes to upstream endpoints that succeeded, by whether they resumed a session",
                &["cluster", "resumed"],
            ),
            egress_denied: counter(
                &r,
                "wasp_egress_denied_total",
                "Requests denied by the egress policy, by host",
                &["host"],
            ),
            downstream_rq_timeout: counter(
                &r,
                "wasp_downstream_rq_timeout_total",
                "Requests not received completely within the listener's request_timeout",
                listener,
            ),
            downstream_rq_idle_timeout: counter(
                &r,
                "wasp_downstream_rq_idle_timeout_total",
                "Requests ended by the listener's stream_idle_timeout",
                listener,
            ),
            upstream_cx_active: gauge(
                &r,
                "wasp_upstream_cx_active",
                "Open upstream connections",
                cluster,
            ),
            upstream_cx_total: counter(
                &r,
                "wasp_upstream_cx_total",
                "Upstream connections established",
                cluster,
            ),
            upstream_cx_connect_fail: counter(
                &r,
                "wasp_upstream_cx_connect_fail_total",
                "Upstream connection attempts that failed or timed out",
                cluster,
            ),
            upstream_rq_retry: counter(
                &r,
                "wasp_upstream_rq_retry_total",
                "Retried upstream attempts",
                cluster,
            ),
            upstream_rq_timeout: counter(
                &r,
                "wasp_upstream_rq_timeout_total",
                "Requests answered 504 at the route timeout",
                cluster,
            ),
            upstream_rq_per_try_timeout: counter(
                &r,
                "wasp_upstream_rq_per_try_timeout_total",
                "Attempts cut off at the per-try timeout",
                cluster,
            ),
            upstream_rq_overflow: counter(
                &r,
                "wasp_upstream_rq_overflow_total",
                "Requests or retries refused by a circuit breaker",
                &["cluster", "breaker"],
            ),
            upstream_ejections: counter(
                &r,
                "wasp_upstream_ejections_total",
                "Endpoints ejected by outlier detection",
                cluster,
            ),
            upstream_endpoint_rq: counter(
                &r,
                "wasp_upstream_endpoint_rq_total",
                "Attempts sent to each endpoint",
                endpoint,
            ),
            upstream_endpoint_ejected: gauge(
                &r,
                "wasp_upstream_endpoint_ejected",
                "1 while an endpoint is ejected by outlier detection",
                endpoint,
            ),
            upstream_endpoint_healthy: gauge(
                &r,
                "wasp_upstream_endpoint_healthy",
                "1 while an endpoint passes health checks",
                endpoint,
            ),
            config_reloads: counter(
                &r,
                "wasp_config_reloads_total",
                "Configuration reloads, by result",
                &["result"],
            ),
            config_version,
            registry: r,
        };
        for result in ["ok", "failed"] {
            metrics.config_reloads.with_label_values(&[result]);
        }
        metrics
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding never fails");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics_with_labels() {
        let metrics = Metrics::new();
        metrics
            .requests_total
            .with_label_values(&["ingress", "api", "backend", "200"])
            .inc();
        let text = metrics.render();
        assert!(text.contains(
            r#"wasp_requests_total{cluster="backend",code="200",listener="ingress",route="api"} 1"#
        ));
        assert!(text.contains(r#"wasp_config_reloads_total{result="failed"} 0"#));
    }
}
