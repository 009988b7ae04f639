//! The Prometheus identity a filter's metric is exported under: the family
//! name and, for a labeled series, its labels.
//!
//! A plain name (`compat.requests_total`) is one unlabeled series, sanitized
//! the way Envoy's `/stats/prometheus` sanitizes it, so dashboards written
//! for Envoy work: Envoy keeps Wasm metrics in its `wasmcustom` stat
//! namespace and strips that namespace (and adds no `envoy_` prefix) when it
//! writes Prometheus text; each byte outside `[a-zA-Z0-9_]` (`.`, `-`, `:`,
//! non-ASCII) becomes `_`, and a leading digit gets a `_` in front.
//!
//! A name in Prometheus form, `family{key="value",other="x"}`, is one series
//! of the labeled family `family`. That form is parsed strictly, since a
//! typo would otherwise silently become a new family: the family must be a
//! Prometheus metric name (`[a-zA-Z_][a-zA-Z0-9_]*`), label names must be
//! `[a-zA-Z_][a-zA-Z0-9_]*` without the reserved `__` prefix and appear
//! once, values are double-quoted with only `\\`, `\"` and `\n` escapes and
//! no control characters, pairs are separated by single commas, and nothing
//! (not even a space) may surround the tokens. Labels are kept sorted by
//! name so that the order a filter writes them in does not matter.
//!
//! Names starting with [`RESERVED_PREFIX`] belong to the proxy's own metrics
//! and are refused, whichever of them exist today: a filter metric that
//! exported fine could otherwise collide with a metric a later wasp adds.

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
    /// A name in the labeled form `family{k="v"}` does not parse.
    #[error("malformed labeled metric name at byte {at}: {reason}")]
    Malformed {
        /// Byte offset in the defined name where parsing failed.
        at: usize,
        /// What was expected there.
        reason: &'static str,
    },
    /// A label name appears twice.
    #[error("label `{label}` appears more than once")]
    DuplicateLabel {
        /// The repeated label name.
        label: String,
    },
}

/// A filter metric's exported identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetricName {
    /// The Prometheus metric (family) name.
    pub family: String,
    /// The series' labels, sorted by name (empty for a plain name).
    pub labels: Vec<(String, String)>,
}

impl MetricName {
    /// Parses (and, for a plain name, sanitizes) the name a filter defined.
    pub fn parse(defined: &str) -> Result<Self, NameError> {
        if defined.is_empty() {
            return Err(NameError::Empty);
        }
        let parsed = match defined.find('{') {
            Some(open) => parse_labeled(defined, open)?,
            None => Self {
                family: sanitize(defined),
                labels: Vec::new(),
            },
        };
        if parsed.family.starts_with(RESERVED_PREFIX) {
            return Err(NameError::Reserved {
                exported: parsed.family,
            });
        }
        Ok(parsed)
    }

    /// The label names, in order.
    pub fn label_names(&self) -> Vec<&str> {
        self.labels.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// The canonical spelling of the series (`family{a="1",b="2"}` with
    /// sorted labels), under which it is remembered.
    pub fn canonical(&self) -> String {
        if self.labels.is_empty() {
            return self.family.clone();
        }
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{}{{{}}}", self.family, labels.join(","))
    }
}

fn malformed(at: usize, reason: &'static str) -> NameError {
    NameError::Malformed { at, reason }
}

/// Whether `name` is `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses `family{k="v",...}`; `open` is the offset of the `{`.
fn parse_labeled(defined: &str, open: usize) -> Result<MetricName, NameError> {
    let family = &defined[..open];
    if !is_identifier(family) {
        return Err(malformed(
            0,
            "the family before `{` must be a Prometheus name ([a-zA-Z_][a-zA-Z0-9_]*)",
        ));
    }
    let bytes = defined.as_bytes();
    let mut at = open + 1;
    let mut labels: Vec<(String, String)> = Vec::new();
    if bytes.get(at) == Some(&b'}') {
        return Err(malformed(
            at,
            "an empty label set: define the plain name instead",
        ));
    }
    loop {
        // Label name up to `=`.
        let start = at;
        while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
            at += 1;
        }
        let key = &defined[start..at];
        if !is_identifier(key) {
            return Err(malformed(
                start,
                "expected a label name ([a-zA-Z_][a-zA-Z0-9_]*)",
            ));
        }
        if key.starts_with("__") {
            return Err(malformed(
                start,
                "label names starting with `__` are reserved",
            ));
        }
        if bytes.get(at) != Some(&b'=') {
            return Err(malformed(at, "expected `=` after the label name"));
        }
        at += 1;
        if bytes.get(at) != Some(&b'"') {
            return Err(malformed(at, "expected `\"` opening the label value"));
        }
        at += 1;
        let (value, next) = parse_value(defined, at)?;
        at = next;
        if labels.iter().any(|(k, _)| k == key) {
            return Err(NameError::DuplicateLabel {
                label: key.to_owned(),
            });
        }
        labels.push((key.to_owned(), value));
        match bytes.get(at) {
            Some(b',') => at += 1,
            Some(b'}') if at + 1 == bytes.len() => break,
            Some(b'}') => return Err(malformed(at + 1, "nothing may follow the closing `}`")),
            _ => return Err(malformed(at, "expected `,` or `}` after a label value")),
        }
    }
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(MetricName {
        family: family.to_owned(),
        labels,
    })
}

/// Reads a label value from `at` (just after its opening quote) to its
/// closing quote; returns it unescaped with the offset after the quote.
fn parse_value(defined: &str, mut at: usize) -> Result<(String, usize), NameError> {
    let mut value = String::new();
    let mut chars = defined[at..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Ok((value, at + 1)),
            '\\' => {
                let escaped = match chars.next() {
                    Some('\\') => '\\',
                    Some('"') => '"',
                    Some('n') => '\n',
                    _ => {
                        return Err(malformed(
                            at,
                            "only \\\\, \\\" and \\n escapes are allowed in label values",
                        ));
                    }
                };
                value.push(escaped);
                at += 2;
            }
            c if c.is_control() => {
                return Err(malformed(
                    at,
                    "control characters are not allowed in label values",
                ));
            }
            c => {
                value.push(c);
                at += c.len_utf8();
            }
        }
    }
    Err(malformed(at, "unterminated label value"))
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

    fn labels(name: &str) -> Vec<(String, String)> {
        MetricName::parse(name).expect("exportable").labels
    }

    fn reason(name: &str) -> NameError {
        MetricName::parse(name).expect_err(name)
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
            r#"wasp_x{a="b"}"#,
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

    #[test]
    fn a_labeled_name_is_a_series_of_its_family_with_sorted_labels() {
        let name = MetricName::parse(r#"istio_requests_total{reporter="destination",code="200"}"#)
            .unwrap();
        assert_eq!(name.family, "istio_requests_total");
        assert_eq!(
            name.labels,
            vec![
                ("code".to_owned(), "200".to_owned()),
                ("reporter".to_owned(), "destination".to_owned())
            ]
        );
        assert_eq!(
            name.canonical(),
            r#"istio_requests_total{code="200",reporter="destination"}"#
        );
        let swapped =
            MetricName::parse(r#"istio_requests_total{code="200",reporter="destination"}"#)
                .unwrap();
        assert_eq!(swapped, name);
    }

    #[test]
    fn label_values_may_hold_any_text_with_escapes() {
        assert_eq!(
            labels(r#"m{path="/a,b}{c=d",who="é \"q\" \\ \n"}"#),
            vec![
                ("path".to_owned(), "/a,b}{c=d".to_owned()),
                ("who".to_owned(), "é \"q\" \\ \n".to_owned())
            ]
        );
        assert_eq!(labels(r#"m{empty=""}"#), vec![("empty".into(), "".into())]);
    }

    #[test]
    fn malformed_labeled_names_are_refused_with_where_and_why() {
        for (name, at) in [
            (r#"9m{a="b"}"#, 0),
            (r#"m.x{a="b"}"#, 0),
            (r#"{a="b"}"#, 0),
            ("m{}", 2),
            (r#"m{a="b""#, 7),
            (r#"m{a="b}"#, 7),
            (r#"m{a=b}"#, 4),
            (r#"m{a "b"}"#, 3),
            (r#"m{ a="b"}"#, 2),
            (r#"m{a="b", c="d"}"#, 8),
            (r#"m{a="b",}"#, 8),
            (r#"m{a="b"} "#, 8),
            (r#"m{a="b"}x"#, 8),
            (r#"m{1a="b"}"#, 2),
            (r#"m{__name__="b"}"#, 2),
            (r#"m{a="\t"}"#, 5),
            ("m{a=\"x\ty\"}", 6),
            (r#"m{a="b";c="d"}"#, 7),
        ] {
            match reason(name) {
                NameError::Malformed { at: got, .. } => assert_eq!(got, at, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(
            reason(r#"m{a="1",a="2"}"#),
            NameError::DuplicateLabel { label: "a".into() }
        );
    }
}
