//! Filter metrics: exported names, labeled families, the series cap,
//! histogram buckets and Envoy's update semantics.

use super::*;

/// Host metrics on a fresh registry, as the proxy's would be.
fn metrics() -> (FilterMetrics, Registry) {
    let registry = Registry::new();
    (FilterMetrics::new(registry.clone(), 3).unwrap(), registry)
}

/// The exported families of `registry`: name and the sum of their values.
fn exported(registry: &Registry) -> Vec<(String, f64)> {
    registry
        .gather()
        .iter()
        .map(|family| {
            let sum = family
                .get_metric()
                .iter()
                .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
                .sum();
            (family.name().to_owned(), sum)
        })
        .collect()
}

#[test]
fn a_filter_metric_is_exported_under_its_own_sanitized_name() {
    let (metrics, registry) = metrics();
    let id = metrics
        .define(MetricType::Counter, "compat.requests_total")
        .unwrap();
    metrics.increment(id, 3).unwrap();
    let families = exported(&registry);
    assert!(
        families.contains(&("compat_requests_total".to_owned(), 3.0)),
        "{families:?}"
    );
    assert!(
        !families
            .iter()
            .any(|(name, _)| name.contains("filter_metric")),
        "{families:?}"
    );
}

#[test]
fn a_name_in_the_proxys_namespace_is_refused_and_the_proxys_metric_kept() {
    let (metrics, registry) = metrics();
    let proxy = IntCounterVec::new(Opts::new("wasp_requests_total", "proxy"), &["code"]).unwrap();
    registry.register(Box::new(proxy.clone())).unwrap();
    proxy.with_label_values(&["200"]).inc();
    for name in [
        "wasp_requests_total",
        "wasp.requests_total",
        "wasp_new_total",
    ] {
        let refused = metrics.define(MetricType::Counter, name);
        assert!(
            matches!(refused, Err(DefineError::Name(NameError::Reserved { .. }))),
            "{name}: {refused:?}"
        );
        assert_eq!(refused.unwrap_err().status(), Status::BadArgument);
    }
    let families = exported(&registry);
    assert!(families.contains(&("wasp_requests_total".to_owned(), 1.0)));
    assert!(!families.iter().any(|(name, _)| name == "wasp_new_total"));
}

#[test]
fn a_name_the_registry_already_holds_is_refused() {
    let (metrics, registry) = metrics();
    let other = IntGauge::new("process_open_fds", "registered by someone else").unwrap();
    registry.register(Box::new(other)).unwrap();
    let refused = metrics.define(MetricType::Gauge, "process_open_fds");
    assert!(
        matches!(refused, Err(DefineError::Registry { .. })),
        "{refused:?}"
    );
    // A refused name is not remembered: defining it stays refused.
    assert!(
        metrics
            .define(MetricType::Gauge, "process_open_fds")
            .is_err()
    );
}

#[test]
fn another_type_for_a_defined_name_is_refused() {
    let (metrics, _) = metrics();
    metrics.define(MetricType::Gauge, "compat.active").unwrap();
    let refused = metrics.define(MetricType::Counter, "compat_active");
    assert!(
        matches!(
            refused,
            Err(DefineError::TypeMismatch {
                defined: MetricType::Gauge,
                ..
            })
        ),
        "{refused:?}"
    );
}

/// The Prometheus text of `registry`.
fn text(registry: &Registry) -> String {
    let mut out = Vec::new();
    prometheus::Encoder::encode(
        &prometheus::TextEncoder::new(),
        &registry.gather(),
        &mut out,
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_labeled_name_is_one_series_of_its_family() {
    let (metrics, registry) = metrics();
    let ok = metrics
        .define(
            MetricType::Counter,
            r#"istio_requests_total{reporter="destination",response_code="200"}"#,
        )
        .unwrap();
    let failed = metrics
        .define(
            MetricType::Counter,
            r#"istio_requests_total{response_code="503",reporter="destination"}"#,
        )
        .unwrap();
    // The same series spelled with its labels in another order.
    let again = metrics
        .define(
            MetricType::Counter,
            r#"istio_requests_total{response_code="200",reporter="destination"}"#,
        )
        .unwrap();
    assert_eq!(again, ok);
    assert_ne!(ok, failed);
    metrics.increment(ok, 2).unwrap();
    metrics.increment(failed, 1).unwrap();
    let text = text(&registry);
    assert!(
        text.contains("# TYPE istio_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains(r#"istio_requests_total{reporter="destination",response_code="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"istio_requests_total{reporter="destination",response_code="503"} 1"#),
        "{text}"
    );
}

#[test]
fn label_values_are_escaped_in_the_export() {
    let (metrics, registry) = metrics();
    let id = metrics
        .define(MetricType::Gauge, r#"odd_values{v="a\"b\\c\nd"}"#)
        .unwrap();
    metrics.record(id, 4).unwrap();
    let text = text(&registry);
    assert!(text.contains(r#"odd_values{v="a\"b\\c\nd"} 4"#), "{text}");
}

#[test]
fn a_family_keeps_one_type_and_one_set_of_label_names() {
    let (metrics, _) = metrics();
    metrics
        .define(MetricType::Counter, r#"fam_total{a="1",b="2"}"#)
        .unwrap();
    let other_labels = metrics.define(MetricType::Counter, r#"fam_total{a="1"}"#);
    assert!(
        matches!(other_labels, Err(DefineError::LabelMismatch { .. })),
        "{other_labels:?}"
    );
    let plain = metrics.define(MetricType::Counter, "fam_total");
    assert!(
        matches!(plain, Err(DefineError::LabelMismatch { .. })),
        "{plain:?}"
    );
    let other_type = metrics.define(MetricType::Gauge, r#"fam_total{a="3",b="4"}"#);
    assert!(
        matches!(
            other_type,
            Err(DefineError::TypeMismatch {
                defined: MetricType::Counter,
                ..
            })
        ),
        "{other_type:?}"
    );
    let bucket = metrics.define(MetricType::Histogram, r#"hist_ms{le="1"}"#);
    assert!(
        matches!(bucket, Err(DefineError::BucketLabel { .. })),
        "{bucket:?}"
    );
    let malformed = metrics.define(MetricType::Counter, r#"fam_total{a="1",b=2}"#);
    assert!(
        matches!(
            malformed,
            Err(DefineError::Name(NameError::Malformed { .. }))
        ),
        "{malformed:?}"
    );
}

#[test]
fn a_full_family_refuses_new_series_and_counts_them() {
    let (metrics, registry) = metrics();
    let ids: Vec<u32> = (0..3)
        .map(|i| {
            metrics
                .define(
                    MetricType::Counter,
                    &format!(r#"capped_total{{path="/{i}"}}"#),
                )
                .unwrap()
        })
        .collect();
    for i in 3..5 {
        let refused = metrics.define(
            MetricType::Counter,
            &format!(r#"capped_total{{path="/{i}"}}"#),
        );
        assert!(
            matches!(refused, Err(DefineError::TooManySeries { max: 3, .. })),
            "{refused:?}"
        );
    }
    // Defined series stay usable; other families are not affected.
    assert_eq!(
        metrics
            .define(MetricType::Counter, r#"capped_total{path="/1"}"#)
            .unwrap(),
        ids[1]
    );
    metrics.increment(ids[1], 1).unwrap();
    metrics
        .define(MetricType::Counter, r#"other_total{path="/9"}"#)
        .unwrap();
    let text = text(&registry);
    assert!(
        text.contains(r#"wasp_filter_metric_series_dropped_total{family="capped_total"} 2"#),
        "{text}"
    );
    assert!(!text.contains(r#"path="/3""#), "{text}");
}

#[test]
fn histograms_export_envoys_buckets_sum_and_count() {
    let (metrics, registry) = metrics();
    let id = metrics
        .define(MetricType::Histogram, r#"latency_ms{route="a"}"#)
        .unwrap();
    for value in [0, 3, 7, 120, 4000] {
        metrics.record(id, value).unwrap();
    }
    let text = text(&registry);
    for (le, count) in [
        ("0.5", 1),
        ("1", 1),
        ("5", 2),
        ("10", 3),
        ("100", 3),
        ("250", 4),
        ("5000", 5),
        ("3600000", 5),
        ("+Inf", 5),
    ] {
        let line = format!(r#"latency_ms_bucket{{route="a",le="{le}"}} {count}"#);
        assert!(text.contains(&line), "{line} in {text}");
    }
    assert!(text.contains(r#"latency_ms_sum{route="a"} 4130"#), "{text}");
    assert!(text.contains(r#"latency_ms_count{route="a"} 5"#), "{text}");
}

#[test]
fn record_on_a_counter_adds_as_in_envoy() {
    // Envoy 1.40: increment 5, record 7 → 12; record 3 → 15; increment -1
    // is refused and changes nothing.
    let (metrics, _) = metrics();
    let id = metrics
        .define(MetricType::Counter, "recorded_total")
        .unwrap();
    metrics.increment(id, 5).unwrap();
    metrics.record(id, 7).unwrap();
    assert_eq!(metrics.get(id), Ok(12));
    metrics.record(id, 3).unwrap();
    assert_eq!(metrics.get(id), Ok(15));
    assert_eq!(metrics.increment(id, -1), Err(Status::BadArgument));
    assert_eq!(metrics.get(id), Ok(15));
}
