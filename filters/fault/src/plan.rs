//! Which faults a request gets: its configured faults, or with
//! `header_control` the ones it asks for with headers (Envoy's
//! `x-envoy-fault-*` semantics under wasp's names), each kept or dropped by
//! its percentage against the request's random [`Rolls`].

use crate::config::{Config, is_abort_status};
use std::time::Duration;

/// Asks for a delay of this many milliseconds.
pub const DELAY_HEADER: &str = "x-wasp-fault-delay-request";
/// The share (0–100) of such requests delayed (default 100).
pub const DELAY_PERCENTAGE_HEADER: &str = "x-wasp-fault-delay-request-percentage";
/// Asks for an abort with this HTTP status (200–599).
pub const ABORT_HEADER: &str = "x-wasp-fault-abort-request";
/// Asks for an abort with this gRPC status (0–16).
pub const ABORT_GRPC_HEADER: &str = "x-wasp-fault-abort-grpc-request";
/// The share (0–100) of such requests aborted (default 100).
pub const ABORT_PERCENTAGE_HEADER: &str = "x-wasp-fault-abort-request-percentage";

/// A request's two random draws, each uniform in [0, 100): a fault with
/// percentage `p` applies when its roll is below `p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rolls {
    /// Draw for the delay.
    pub delay: f64,
    /// Draw for the abort.
    pub abort: f64,
}

/// An abort's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// An HTTP status.
    Http(u16),
    /// A gRPC status (HTTP 200).
    Grpc(u32),
}

/// The faults a request gets: a delay, then (or else) an abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    /// Pause the request this long first.
    pub delay: Option<Duration>,
    /// Answer with this instead of forwarding.
    pub abort: Option<Injected>,
}

fn percentage(header: &impl Fn(&str) -> Option<String>, name: &str) -> f64 {
    header(name)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|p| p.is_finite() && (0.0..=100.0).contains(p))
        .unwrap_or(100.0)
}

fn number(header: &impl Fn(&str) -> Option<String>, name: &str) -> Option<u64> {
    header(name).and_then(|v| v.trim().parse().ok())
}

impl Plan {
    /// The plan for a request with these headers and draws. Header-asked
    /// faults replace configured ones of the same kind; malformed headers are
    /// ignored, as Envoy ignores them.
    pub fn decide(config: &Config, header: impl Fn(&str) -> Option<String>, rolls: Rolls) -> Plan {
        let mut plan = Plan::default();

        let asked_delay = config
            .header_control
            .then(|| number(&header, DELAY_HEADER))
            .flatten();
        let delay = match asked_delay {
            Some(ms) => Some((
                Duration::from_millis(ms),
                percentage(&header, DELAY_PERCENTAGE_HEADER),
            )),
            None => config
                .delay
                .as_ref()
                .map(|d| (d.fixed_delay, d.percentage.value)),
        };
        if let Some((duration, share)) = delay {
            if rolls.delay < share && !duration.is_zero() {
                plan.delay = Some(duration);
            }
        }

        let asked_abort = if config.header_control {
            number(&header, ABORT_HEADER)
                .filter(|s| is_abort_status(*s))
                .map(|s| Injected::Http(s as u16))
                .or_else(|| {
                    number(&header, ABORT_GRPC_HEADER)
                        .and_then(|c| u32::try_from(c).ok())
                        .map(Injected::Grpc)
                })
        } else {
            None
        };
        let abort = match asked_abort {
            Some(injected) => Some((injected, percentage(&header, ABORT_PERCENTAGE_HEADER))),
            None => config.abort.as_ref().and_then(|a| {
                let injected = match (a.http_status, &a.grpc_status) {
                    (Some(status), _) => Injected::Http(status),
                    (None, Some(grpc)) => Injected::Grpc(grpc.code()?),
                    (None, None) => return None,
                };
                Some((injected, a.percentage.value))
            }),
        };
        if let Some((injected, share)) = abort {
            if rolls.abort < share {
                plan.abort = Some(injected);
            }
        }
        plan
    }
}
