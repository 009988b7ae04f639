//! Istio's standard metric labels for one request, and the metrics they
//! label: `istio_requests_total` (counter), `istio_request_duration_milliseconds`,
//! `istio_request_bytes` and `istio_response_bytes` (histograms, with the
//! host's Envoy default buckets, which are Istio's).

use wasp_filter_sdk::{Counter, Histogram};

use crate::config::Reporter;
use crate::peer::{UNKNOWN, Workload};

/// `istio_requests_total`.
pub const REQUESTS_TOTAL: &str = "istio_requests_total";
/// `istio_request_duration_milliseconds`.
pub const REQUEST_DURATION: &str = "istio_request_duration_milliseconds";
/// `istio_request_bytes`.
pub const REQUEST_BYTES: &str = "istio_request_bytes";
/// `istio_response_bytes`.
pub const RESPONSE_BYTES: &str = "istio_response_bytes";

/// Envoy's response flag bits and their short names, in Envoy's order.
const RESPONSE_FLAGS: &[(u64, &str)] = &[
    (0x1, "LH"),
    (0x2, "UH"),
    (0x4, "UT"),
    (0x8, "LR"),
    (0x10, "UR"),
    (0x20, "UF"),
    (0x40, "UC"),
    (0x80, "UO"),
    (0x100, "NR"),
    (0x200, "DI"),
    (0x400, "FI"),
    (0x800, "RL"),
    (0x1000, "UAEX"),
    (0x2000, "RLSE"),
    (0x4000, "DC"),
    (0x8000, "URX"),
    (0x10000, "SI"),
    (0x20000, "IH"),
    (0x40000, "DPE"),
    (0x80000, "UMSDR"),
    (0x100000, "RFCF"),
    (0x200000, "NFCF"),
    (0x400000, "DT"),
    (0x800000, "UPE"),
    (0x1000000, "NC"),
    (0x2000000, "OM"),
];

/// Envoy's `%RESPONSE_FLAGS%` text for a flag bit set: `-` for none, else
/// the short names joined by `,`.
pub fn response_flags(bits: u64) -> String {
    let names: Vec<&str> = RESPONSE_FLAGS
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(",")
    }
}

/// The service a request is for, from its authority: the host without its
/// port; its name is the first DNS label, its namespace the second when the
/// host is `name.namespace.svc...` (else `fallback_namespace`).
pub fn service(authority: Option<&str>, fallback_namespace: &str) -> (String, String, String) {
    let Some(authority) = authority.filter(|a| !a.is_empty()) else {
        return (UNKNOWN.into(), UNKNOWN.into(), fallback_namespace.into());
    };
    let host = if let Some(rest) = authority.strip_prefix('[') {
        // An IPv6 literal: up to its closing bracket.
        rest.find(']')
            .map_or(authority, |end| &authority[..end + 2])
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        }
    };
    let mut labels = host.split('.');
    let name = labels.next().unwrap_or(host).to_owned();
    let namespace = match (labels.next(), labels.next()) {
        (Some(namespace), Some("svc")) => namespace.to_owned(),
        _ => fallback_namespace.to_owned(),
    };
    (host.to_owned(), name, namespace)
}

/// One request's facts, as the labels need them.
#[derive(Clone, Debug, Default)]
pub struct RequestFacts {
    /// `reporter`.
    pub reporter: Reporter,
    /// The source workload.
    pub source: Workload,
    /// The destination workload.
    pub destination: Workload,
    /// `source_principal`.
    pub source_principal: String,
    /// `destination_principal`.
    pub destination_principal: String,
    /// `destination_service`, `_name`, `_namespace`.
    pub service: (String, String, String),
    /// `request_protocol`: `http` or `grpc`.
    pub protocol: &'static str,
    /// `response_code`.
    pub response_code: u64,
    /// `grpc_response_status` (empty for HTTP).
    pub grpc_status: String,
    /// `response_flags`.
    pub response_flags: String,
    /// `connection_security_policy`.
    pub security_policy: &'static str,
}

impl RequestFacts {
    /// The label pairs.
    pub fn labels(&self) -> Vec<(&'static str, String)> {
        vec![
            ("reporter", self.reporter.as_str().to_owned()),
            ("source_workload", self.source.name.clone()),
            (
                "source_canonical_service",
                self.source.canonical_service.clone(),
            ),
            (
                "source_canonical_revision",
                self.source.canonical_revision.clone(),
            ),
            ("source_workload_namespace", self.source.namespace.clone()),
            ("source_principal", self.source_principal.clone()),
            ("source_app", self.source.app.clone()),
            ("source_version", self.source.version.clone()),
            ("source_cluster", self.source.cluster.clone()),
            ("destination_workload", self.destination.name.clone()),
            (
                "destination_workload_namespace",
                self.destination.namespace.clone(),
            ),
            ("destination_principal", self.destination_principal.clone()),
            ("destination_app", self.destination.app.clone()),
            ("destination_version", self.destination.version.clone()),
            ("destination_service", self.service.0.clone()),
            (
                "destination_canonical_service",
                self.destination.canonical_service.clone(),
            ),
            (
                "destination_canonical_revision",
                self.destination.canonical_revision.clone(),
            ),
            ("destination_service_name", self.service.1.clone()),
            ("destination_service_namespace", self.service.2.clone()),
            ("destination_cluster", self.destination.cluster.clone()),
            ("request_protocol", self.protocol.to_owned()),
            ("response_code", self.response_code.to_string()),
            ("grpc_response_status", self.grpc_status.clone()),
            ("response_flags", self.response_flags.clone()),
            (
                "connection_security_policy",
                self.security_policy.to_owned(),
            ),
        ]
    }

    /// Counts the request and records its duration and sizes. A series the
    /// host refuses (e.g. its family is at the series cap) is logged by the
    /// SDK and skipped.
    pub fn record(&self, duration_ms: u64, request_bytes: u64, response_bytes: u64) {
        let owned = self.labels();
        let labels: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Ok(counter) = Counter::with_labels(REQUESTS_TOTAL, &labels) {
            counter.increment(1);
        }
        for (family, value) in [
            (REQUEST_DURATION, duration_ms),
            (REQUEST_BYTES, request_bytes),
            (RESPONSE_BYTES, response_bytes),
        ] {
            if let Ok(histogram) = Histogram::with_labels(family, &labels) {
                histogram.record(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_flags_read_as_envoy_writes_them() {
        assert_eq!(response_flags(0), "-");
        assert_eq!(response_flags(0x20), "UF");
        assert_eq!(response_flags(0x8000 | 0x4), "UT,URX");
        assert_eq!(response_flags(0x800000), "UPE");
    }

    #[test]
    fn the_service_comes_from_the_authority() {
        assert_eq!(
            service(Some("reviews.bookinfo.svc.cluster.local:9080"), "x"),
            (
                "reviews.bookinfo.svc.cluster.local".into(),
                "reviews".into(),
                "bookinfo".into()
            )
        );
        assert_eq!(
            service(Some("app.test"), "local"),
            ("app.test".into(), "app".into(), "local".into())
        );
        assert_eq!(
            service(Some("[::1]:80"), "local"),
            ("[::1]".into(), "[::1]".into(), "local".into())
        );
        assert_eq!(service(None, "local").0, UNKNOWN);
    }
}
