//! The plugin configuration: Istio's VirtualService `fault` in snake_case
//! (`delay.fixed_delay`, `delay.percentage.value`, `abort.http_status` or
//! `abort.grpc_status`, `abort.percentage.value`), plus `match`,
//! `header_control` and `max_active_faults` from Envoy's fault filter.
//! [`Config::validate`] names the field of every mistake.

use crate::matcher::Match;
use serde::Deserialize;
use std::time::Duration;

/// The plugin configuration (see the crate's README).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Delay matching requests.
    #[serde(default)]
    pub delay: Option<Delay>,
    /// Abort matching requests.
    #[serde(default)]
    pub abort: Option<Abort>,
    /// Only requests whose headers match get faults (default: every request).
    #[serde(default, rename = "match")]
    pub matcher: Option<Match>,
    /// Let requests ask for their own faults with `x-wasp-fault-*` headers.
    #[serde(default)]
    pub header_control: bool,
    /// At most this many requests (across the proxy) have a fault at once;
    /// faults beyond are skipped and counted (default: no limit).
    #[serde(default)]
    pub max_active_faults: Option<u64>,
}

/// A fixed delay on a percentage of requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    /// How long, e.g. `200ms`, `5s` (at least 1 ms, as Istio requires).
    #[serde(with = "humantime_serde")]
    pub fixed_delay: Duration,
    /// Share of requests delayed (default: all).
    #[serde(default)]
    pub percentage: Percentage,
}

/// An abort with an HTTP or a gRPC status on a percentage of requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Abort {
    /// The HTTP status to answer (200–599).
    #[serde(default)]
    pub http_status: Option<u16>,
    /// The gRPC status to answer with (HTTP 200 and `grpc-status`): a code
    /// (0–16) or its name (`UNAVAILABLE`).
    #[serde(default)]
    pub grpc_status: Option<GrpcStatus>,
    /// Share of requests aborted (default: all).
    #[serde(default)]
    pub percentage: Percentage,
}

/// Istio's `Percent`: `{value: 0.1}` is one request in a thousand.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percentage {
    /// 0–100, fractions allowed.
    pub value: f64,
}

impl Default for Percentage {
    /// All requests, as Istio does when `percentage` is left out.
    fn default() -> Self {
        Percentage { value: 100.0 }
    }
}

/// A gRPC status as Istio (name) or Envoy (number) writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum GrpcStatus {
    /// A numeric code.
    Code(u32),
    /// A code name such as `UNAVAILABLE`.
    Name(String),
}

/// The gRPC status codes by name, in code order.
const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

impl GrpcStatus {
    /// The numeric code, if it is a known one.
    pub fn code(&self) -> Option<u32> {
        match self {
            GrpcStatus::Code(code) => (*code < GRPC_CODES.len() as u32).then_some(*code),
            GrpcStatus::Name(name) => GRPC_CODES
                .iter()
                .position(|known| known.eq_ignore_ascii_case(name))
                .map(|i| i as u32),
        }
    }
}

/// True for an HTTP status an abort may answer (Envoy's range).
pub(crate) fn is_abort_status(status: u64) -> bool {
    (200..600).contains(&status)
}

impl Percentage {
    fn check(&self, path: &str) -> Result<(), String> {
        if self.value.is_finite() && (0.0..=100.0).contains(&self.value) {
            Ok(())
        } else {
            Err(format!(
                "{path}.percentage.value: {} is not between 0 and 100",
                self.value
            ))
        }
    }
}

impl Config {
    /// Checks what serde cannot: ranges, and that each fault says what to do.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(delay) = &self.delay {
            if delay.fixed_delay < Duration::from_millis(1) {
                return Err(format!(
                    "delay.fixed_delay: {:?} is shorter than 1ms",
                    delay.fixed_delay
                ));
            }
            delay.percentage.check("delay")?;
        }
        if let Some(abort) = &self.abort {
            match (abort.http_status, &abort.grpc_status) {
                (Some(_), Some(_)) => {
                    return Err("abort: set one of http_status and grpc_status, not both".into());
                }
                (None, None) => {
                    return Err("abort: needs http_status or grpc_status".into());
                }
                (Some(status), None) if !is_abort_status(u64::from(status)) => {
                    return Err(format!(
                        "abort.http_status: {status} is not an HTTP status between 200 and 599"
                    ));
                }
                (None, Some(grpc)) if grpc.code().is_none() => {
                    return Err(format!(
                        "abort.grpc_status: {grpc:?} is not a gRPC status (0-16 or a name such as UNAVAILABLE)"
                    ));
                }
                _ => {}
            }
            abort.percentage.check("abort")?;
        }
        if let Some(matcher) = &self.matcher {
            matcher.validate()?;
        }
        if self.delay.is_none() && self.abort.is_none() && !self.header_control {
            return Err(
                "the configuration injects nothing: set delay, abort or header_control".into(),
            );
        }
        Ok(())
    }
}
