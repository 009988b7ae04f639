//! The Prometheus name a filter's metric is exported under: the name the
//! filter gave `proxy_define_metric`, sanitized the way Envoy's
//! `/stats/prometheus` sanitizes it, so dashboards written for Envoy work.
//!
//! Envoy keeps Wasm metrics in its `wasmcustom` stat namespace and strips
//! that namespace (and adds no `envoy_` prefix) when it writes Prometheus
//! text; each byte outside `[a-zA-Z0-9_]` (`.`, `-`, `:`, non-ASCII) becomes
//! `_`, and a leading digit gets a `_` in front. wasp does the same.
//!
//! Names starting with [`RESERVED_PREFIX`] belong to the proxy's own metrics
//! and are refused, whichever of them exist today: a filter metric that
//! exported fine could otherwise collide with a metric a later wasp adds.
//!
//! A future labeled form (`name{label="v"}` defining a series of a labeled
//! family) parses here into [`MetricName`]; today the whole name is the
//! family.

/// The prefix of wasp's own metrics, which filter metrics may not use.
pub(crate) const RESERVED_PREFIX: &str = "wasp_";

/// Why a filter's metric name cannot be exported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum NameError {
    /// The filter passed an empty name.
    #[error("the metric name is empty")]
    Empty,
    /// The sanitized name starts with [`RESERVED_PREFIX`].
    #[error("`{exported}` is in the `wasp_` namespace reserved for the proxy's own metrics")]
    Reserved {
        /// The sanitized name.
        exported: String,
    },
}

/// A filter metric's exported identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetricName {
    /// The Prometheus metric (family) name.
    pub family: String,
}

impl MetricName {
    /// Parses and sanitizes the name a filter defined.
    pub fn parse(defined: &str) -> Result<Self, NameError> {
        if defined.is_empty() {
            return Err(NameError::Empty);
        }
        let family = sanitize(defined);
        if family.starts_with(RESERVED_PREFIX) {
            return Err(NameError::Reserved { exported: family });
        }
        Ok(Self { family })
    }
}

/// Envoy's Prometheus sanitizing: bytes outside `[a-zA-Z0-9_]` become `_`;
/// a leading digit is prefixed with `_`.
fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        out.push('_');
    }
    out.extend(name.bytes().map(|b| {
        if b.is_ascii_alphanumeric() || b == b'_' {
            char::from(b)
        } else {
            '_'
        }
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported(name: &str) -> String {
        MetricName::parse(name).expect("exportable").family
    }

    #[test]
    fn a_valid_prometheus_name_is_exported_unchanged() {
        assert_eq!(exported("compat_requests_total"), "compat_requests_total");
        assert_eq!(exported("Mixed_Case_9"), "Mixed_Case_9");
    }

    #[test]
    fn separators_and_other_bytes_become_underscores_as_in_envoy() {
        assert_eq!(exported("compat.requests-total"), "compat_requests_total");
        assert_eq!(exported("ns:metric"), "ns_metric");
        assert_eq!(exported("a b/c"), "a_b_c");
        // One underscore per byte, as Envoy's byte-wise regex replaces.
        assert_eq!(exported("café"), "caf__");
    }

    #[test]
    fn a_leading_digit_gets_an_underscore() {
        assert_eq!(exported("5xx.count"), "_5xx_count");
    }

    #[test]
    fn empty_names_are_refused() {
        assert_eq!(MetricName::parse(""), Err(NameError::Empty));
    }

    #[test]
    fn names_in_the_proxys_namespace_are_refused_after_sanitizing() {
        for name in [
            "wasp_requests_total",
            "wasp.requests_total",
            "wasp_anything",
        ] {
            assert!(
                matches!(MetricName::parse(name), Err(NameError::Reserved { .. })),
                "{name}"
            );
        }
        // Only the prefix is reserved, not the word.
        assert_eq!(exported("waspish_total"), "waspish_total");
        assert_eq!(exported("my_wasp_total"), "my_wasp_total");
    }
}
