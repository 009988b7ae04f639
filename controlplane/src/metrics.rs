//! Counters of how proxies reach the control plane — subscriptions by
//! transport, refused subscriptions by reason, failed TLS handshakes by
//! reason — rendered in the Prometheus text format at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Refused: the subscription's claimed identity is not its certificate's.
pub const REJECT_IDENTITY_MISMATCH: &str = "identity_mismatch";
/// Refused: no valid token and no client certificate.
pub const REJECT_UNAUTHENTICATED: &str = "unauthenticated";

/// The control plane's counters.
#[derive(Debug, Default)]
pub struct Counters {
    subscriptions: Mutex<BTreeMap<&'static str, u64>>,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    handshake_failures: Mutex<BTreeMap<&'static str, u64>>,
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str) {
    *map.lock().expect("lock").entry(key).or_default() += 1;
}

impl Counters {
    /// A subscription was accepted over `transport`.
    pub fn subscribed(&self, transport: &'static str) {
        bump(&self.subscriptions, transport);
    }

    /// A subscription was refused for `reason`.
    pub fn rejected(&self, reason: &'static str) {
        bump(&self.rejected, reason);
    }

    /// A TLS handshake on the TLS endpoint failed for `reason`.
    pub fn handshake_failed(&self, reason: &'static str) {
        bump(&self.handshake_failures, reason);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let families = [
            (
                "wasp_cp_subscriptions_total",
                "Subscriptions accepted, by transport (plaintext, tls, mtls).",
                "transport",
                &self.subscriptions,
            ),
            (
                "wasp_cp_subscriptions_rejected_total",
                "Subscriptions refused, by reason.",
                "reason",
                &self.rejected,
            ),
            (
                "wasp_cp_tls_handshake_failures_total",
                "Failed TLS handshakes on the TLS endpoint, by reason.",
                "reason",
                &self.handshake_failures,
            ),
        ];
        for (name, help, label, map) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (value, count) in map.lock().expect("lock").iter() {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text_by_label() {
        let counters = Counters::default();
        counters.subscribed("mtls");
        counters.subscribed("mtls");
        counters.rejected(REJECT_IDENTITY_MISMATCH);
        counters.handshake_failed("untrusted_certificate");
        let text = counters.render();
        assert!(
            text.contains("wasp_cp_subscriptions_total{transport=\"mtls\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("wasp_cp_subscriptions_rejected_total{reason=\"identity_mismatch\"} 1\n")
        );
        assert!(text.contains(
            "wasp_cp_tls_handshake_failures_total{reason=\"untrusted_certificate\"} 1\n"
        ));
        assert!(text.contains("# TYPE wasp_cp_subscriptions_total counter\n"));
    }
}
