//! Value matchers as Istio writes them: string patterns (`exact`, `prefix*`,
//! `*suffix`, `*`), CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or a bare
//! address) and port numbers, and [`OneOf`], a field with its `not_` form.

use std::net::IpAddr;

use ipnet::IpNet;

/// A string pattern: Istio's `exact`, `prefix*`, `*suffix` and `*` (any value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// The whole value.
    Exact(String),
    /// The value starts with this.
    Prefix(String),
    /// The value ends with this.
    Suffix(String),
    /// Any value that is present.
    Any,
}

impl Pattern {
    /// Parses Istio's notation; a `*` anywhere but at one end is an error.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let pattern = if text == "*" {
            Pattern::Any
        } else if let Some(suffix) = text.strip_prefix('*') {
            Pattern::Suffix(suffix.to_owned())
        } else if let Some(prefix) = text.strip_suffix('*') {
            Pattern::Prefix(prefix.to_owned())
        } else {
            Pattern::Exact(text.to_owned())
        };
        let inner = match &pattern {
            Pattern::Exact(s) | Pattern::Prefix(s) | Pattern::Suffix(s) => s.as_str(),
            Pattern::Any => "",
        };
        if inner.contains('*') {
            return Err(format!(
                "{text:?}: `*` may only stand alone, first (`*suffix`) or last (`prefix*`)"
            ));
        }
        Ok(pattern)
    }

    /// The same pattern with `prefix` in front of what it compares the start
    /// of a value with (exact and prefix patterns); suffix and any patterns
    /// are unchanged. Istio matches principals this way against `spiffe://…`.
    pub fn anchored(self, prefix: &str) -> Pattern {
        match self {
            Pattern::Exact(s) => Pattern::Exact(format!("{prefix}{s}")),
            Pattern::Prefix(s) => Pattern::Prefix(format!("{prefix}{s}")),
            other => other,
        }
    }

    /// The same pattern in lower case (for case-insensitive matching of
    /// values that are lower-cased too).
    pub fn lowercase(self) -> Pattern {
        match self {
            Pattern::Exact(s) => Pattern::Exact(s.to_ascii_lowercase()),
            Pattern::Prefix(s) => Pattern::Prefix(s.to_ascii_lowercase()),
            Pattern::Suffix(s) => Pattern::Suffix(s.to_ascii_lowercase()),
            Pattern::Any => Pattern::Any,
        }
    }

    /// True when `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(s) => value == s,
            Pattern::Prefix(s) => value.starts_with(s.as_str()),
            Pattern::Suffix(s) => value.ends_with(s.as_str()),
            Pattern::Any => true,
        }
    }
}

/// Parses a CIDR block, or a bare address as a single-address block.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    text.parse::<IpNet>().map_err(|_| {
        format!("{text:?} is not a CIDR block (like 10.0.0.0/8 or 2001:db8::/32) or an IP address")
    })
}

/// True when `net` holds `addr`; IPv4-mapped IPv6 addresses are compared
/// as the IPv4 address they carry.
pub fn cidr_contains(net: &IpNet, addr: IpAddr) -> bool {
    net.contains(&addr.to_canonical())
}

/// Parses a port number (1–65535).
pub fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("{text:?} is not a port number (1-65535)")),
    }
}

/// A field and its `not_` form: a value matches when it matches one of
/// `any` (or `any` is empty) and none of `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOf<M> {
    /// One of these must match (when not empty).
    pub any: Vec<M>,
    /// None of these may match.
    pub none: Vec<M>,
}

impl<M> OneOf<M> {
    /// True when some of `values` (an attribute may have several, e.g. a list
    /// claim) satisfies the field: one of them matches one of `any`, and
    /// none of them matches one of `none`. No values at all match only a
    /// field without `any`.
    pub fn matches_all<V: Copy>(&self, values: &[V], hit: impl Fn(&M, V) -> bool) -> bool {
        let positive =
            self.any.is_empty() || values.iter().any(|v| self.any.iter().any(|m| hit(m, *v)));
        positive && !values.iter().any(|v| self.none.iter().any(|m| hit(m, *v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_istio_wildcards() {
        assert_eq!(Pattern::parse("*").unwrap(), Pattern::Any);
        assert_eq!(
            Pattern::parse("/api*").unwrap(),
            Pattern::Prefix("/api".into())
        );
        assert_eq!(
            Pattern::parse("*.css").unwrap(),
            Pattern::Suffix(".css".into())
        );
        assert_eq!(Pattern::parse("/a").unwrap(), Pattern::Exact("/a".into()));
        assert!(
            Pattern::parse("/a*b")
                .unwrap_err()
                .contains("may only stand alone")
        );
        assert!(Pattern::parse("**").is_err());
    }

    #[test]
    fn anchors_principal_patterns_on_spiffe() {
        let p = Pattern::parse("td/ns/a/sa/b")
            .unwrap()
            .anchored("spiffe://");
        assert!(p.matches("spiffe://td/ns/a/sa/b"));
        assert!(!p.matches("td/ns/a/sa/b"));
        let s = Pattern::parse("*/sa/b").unwrap().anchored("spiffe://");
        assert!(s.matches("spiffe://td/ns/a/sa/b"));
    }

    #[test]
    fn cidrs_hold_addresses_of_their_family() {
        let v4 = parse_cidr("10.1.0.0/16").unwrap();
        assert!(cidr_contains(&v4, "10.1.2.3".parse().unwrap()));
        assert!(!cidr_contains(&v4, "10.2.0.1".parse().unwrap()));
        assert!(cidr_contains(&v4, "::ffff:10.1.0.9".parse().unwrap()));
        let v6 = parse_cidr("2001:db8::/32").unwrap();
        assert!(cidr_contains(&v6, "2001:db8:1::1".parse().unwrap()));
        assert!(!cidr_contains(&v6, "10.1.2.3".parse().unwrap()));
        let single = parse_cidr("127.0.0.1").unwrap();
        assert!(cidr_contains(&single, "127.0.0.1".parse().unwrap()));
        assert!(!cidr_contains(&single, "127.0.0.2".parse().unwrap()));
        assert!(
            parse_cidr("10.0.0.0/33")
                .unwrap_err()
                .contains("10.0.0.0/33")
        );
        assert!(parse_cidr("ten").is_err());
    }

    #[test]
    fn ports_are_numbers_in_range() {
        assert_eq!(parse_port("8080"), Ok(8080));
        assert!(parse_port("0").is_err());
        assert!(parse_port("70000").is_err());
        assert!(parse_port("http").is_err());
    }
}
