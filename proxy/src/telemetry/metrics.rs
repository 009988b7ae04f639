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
    /// `wasp_upstream_cx_active{cluster}`.
    pub upstream_cx_active: IntGaugeVec,
    /// `wasp_upstream_cx_total{cluster}`.
    pub upstream_cx_total: IntCounterVec,
    /// `wasp_upstream_cx_connect_fail_total{cluster}`.
    pub upstream_cx_connect_fail: IntCounterVec,
    /// `wasp_downstream_cx_active{listener}`.
    pub downstream_cx_active: IntGaugeVec,
    /// `wasp_downstream_cx_total{listener}`.
    pub downstream_cx_total: IntCounterVec,
    /// `wasp_config_reloads_total{result="ok"|"failed"}`.
    pub config_reloads: IntCounterVec,
    /// `wasp_config_version`: the version of the running snapshot.
    pub config_version: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric in a new registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let metrics = Self {
            requests_total: IntCounterVec::new(
                Opts::new(
                    "wasp_requests_total",
                    "Requests completed, by listener, route, cluster and status code",
                ),
                &["listener", "route", "cluster", "code"],
            )
            .expect("valid metric"),
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "wasp_request_duration_seconds",
                    "Time from request received to response completed",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["listener", "route"],
            )
            .expect("valid metric"),
            active_requests: IntGaugeVec::new(
                Opts::new("wasp_active_requests", "Requests in flight"),
                &["listener"],
            )
            .expect("valid metric"),
            upstream_cx_active: IntGaugeVec::new(
                Opts::new("wasp_upstream_cx_active", "Open upstream connections"),
                &["cluster"],
            )
            .expect("valid metric"),
            upstream_cx_total: IntCounterVec::new(
                Opts::new("wasp_upstream_cx_total", "Upstream connections established"),
                &["cluster"],
            )
            .expect("valid metric"),
            upstream_cx_connect_fail: IntCounterVec::new(
                Opts::new(
                    "wasp_upstream_cx_connect_fail_total",
                    "Upstream connection attempts that failed or timed out",
                ),
                &["cluster"],
            )
            .expect("valid metric"),
            downstream_cx_active: IntGaugeVec::new(
                Opts::new("wasp_downstream_cx_active", "Open downstream connections"),
                &["listener"],
            )
            .expect("valid metric"),
            downstream_cx_total: IntCounterVec::new(
                Opts::new(
                    "wasp_downstream_cx_total",
                    "Downstream connections accepted",
                ),
                &["listener"],
            )
            .expect("valid metric"),
            config_reloads: IntCounterVec::new(
                Opts::new(
                    "wasp_config_reloads_total",
                    "Configuration reloads, by result",
                ),
                &["result"],
            )
            .expect("valid metric"),
            config_version: IntGauge::new(
                "wasp_config_version",
                "Version of the running configuration snapshot",
            )
            .expect("valid metric"),
            registry,
        };
        for collector in [
            Box::new(metrics.requests_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.request_duration.clone()),
            Box::new(metrics.active_requests.clone()),
            Box::new(metrics.upstream_cx_active.clone()),
            Box::new(metrics.upstream_cx_total.clone()),
            Box::new(metrics.upstream_cx_connect_fail.clone()),
            Box::new(metrics.downstream_cx_active.clone()),
            Box::new(metrics.downstream_cx_total.clone()),
            Box::new(metrics.config_reloads.clone()),
            Box::new(metrics.config_version.clone()),
        ] {
            metrics
                .registry
                .register(collector)
                .expect("metric registered once");
        }
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
