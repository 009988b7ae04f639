//! Validation of a cluster's resilience settings (circuit breakers,
//! outlier detection, health checks, timeouts) and of retry policies, each
//! error at its path.

use crate::error::ErrorSink;
use crate::model::*;

pub(crate) fn validate_resilience(cluster: &ClusterConfig, at: &str, sink: &mut ErrorSink) {
    let breakers = &cluster.circuit_breakers;
    for (name, value) in [
        ("max_connections", breakers.max_connections),
        ("max_pending_requests", breakers.max_pending_requests),
        ("max_requests", breakers.max_requests),
    ] {
        if value == 0 {
            sink.push(
                format!("{at}.circuit_breakers.{name}"),
                "must be greater than zero",
            );
        }
    }
    if cluster.panic_threshold > 100 {
        sink.push(
            format!("{at}.panic_threshold"),
            "must be a percentage (0-100)",
        );
    }
    if let Some(budget) = &cluster.retry_budget
        && !(0.0..=100.0).contains(&budget.budget_percent)
    {
        sink.push(
            format!("{at}.retry_budget.budget_percent"),
            "must be a percentage (0-100)",
        );
    }
    if let Some(outlier) = &cluster.outlier_detection {
        if outlier.consecutive_5xx == 0 {
            sink.push(
                format!("{at}.outlier_detection.consecutive_5xx"),
                "must be greater than zero",
            );
        }
        if outlier.max_ejection_percent > 100 {
            sink.push(
                format!("{at}.outlier_detection.max_ejection_percent"),
                "must be a percentage (0-100)",
            );
        }
        if outlier.base_ejection_time.is_zero() {
            sink.push(
                format!("{at}.outlier_detection.base_ejection_time"),
                "must be greater than zero",
            );
        }
    }
    if let Some(health) = &cluster.health_check {
        let at = format!("{at}.health_check");
        if !health.path.starts_with('/') {
            sink.push(format!("{at}.path"), "must start with '/'");
        }
        if health.interval.is_zero() {
            sink.push(format!("{at}.interval"), "must be greater than zero");
        }
        if health.timeout.is_zero() {
            sink.push(format!("{at}.timeout"), "must be greater than zero");
        }
        if health.healthy_threshold == 0 {
            sink.push(
                format!("{at}.healthy_threshold"),
                "must be greater than zero",
            );
        }
        if health.unhealthy_threshold == 0 {
            sink.push(
                format!("{at}.unhealthy_threshold"),
                "must be greater than zero",
            );
        }
    }
}

pub(crate) fn validate_retry(policy: &RetryPolicy, at: &str, sink: &mut ErrorSink) {
    for (i, code) in policy.retriable_status_codes.iter().enumerate() {
        if !(100..=599).contains(code) {
            sink.push(
                format!("{at}.retriable_status_codes[{i}]"),
                "must be between 100 and 599",
            );
        }
    }
    if policy.retry_on.contains(&RetryOn::RetriableStatusCodes)
        && policy.retriable_status_codes.is_empty()
    {
        sink.push(
            format!("{at}.retriable_status_codes"),
            "is required by retry_on 'retriable-status-codes'",
        );
    }
    if policy.retry_on.is_empty() {
        sink.push(format!("{at}.retry_on"), "must name at least one condition");
    }
    if policy.base_interval.is_zero() {
        sink.push(format!("{at}.base_interval"), "must be greater than zero");
    }
    if let Some(max) = policy.max_interval
        && max < policy.base_interval
    {
        sink.push(
            format!("{at}.max_interval"),
            "must not be less than base_interval",
        );
    }
    if policy.per_try_timeout.is_some_and(|t| t.is_zero()) {
        sink.push(format!("{at}.per_try_timeout"), "must be greater than zero");
    }
}
