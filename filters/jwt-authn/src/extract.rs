//! Finding tokens in a request (headers after a prefix, query parameters,
//! cookies) and taking them out again before the request goes upstream.

use crate::config::{Config, FromHeader};
use wasp_filter_sdk::HeaderSnapshot;

/// Where a token was found (names borrowed from the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location<'c> {
    /// A header (lower-case name).
    Header(&'c str),
    /// A query parameter.
    Param(&'c str),
    /// A cookie.
    Cookie(&'c str),
}

/// A token found in the request, borrowed from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    /// The token text.
    pub token: &'a str,
    /// Where it was.
    pub location: Location<'a>,
    /// The providers (indexes) that read tokens from there.
    pub providers: Vec<usize>,
}

/// Where one provider reads tokens, resolved once per configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    /// Headers (lower-case names) and the prefix before the token.
    pub headers: Vec<FromHeader>,
    /// Query parameters.
    pub params: Vec<String>,
    /// Cookies.
    pub cookies: Vec<String>,
}

impl Locations {
    /// The locations of each provider of `config`, in order.
    pub fn of(config: &Config) -> Vec<Locations> {
        config
            .providers
            .iter()
            .map(|provider| Locations {
                headers: provider
                    .header_locations()
                    .into_iter()
                    .map(|h| FromHeader {
                        name: h.name.to_ascii_lowercase(),
                        prefix: h.prefix,
                    })
                    .collect(),
                params: provider.param_locations(),
                cookies: provider.from_cookies.clone(),
            })
            .collect()
    }
}

/// Every token in the request, once per (token, location); `locations`
/// per provider, in configuration order.
pub fn find<'a>(locations: &'a [Locations], headers: &'a HeaderSnapshot) -> Vec<Found<'a>> {
    let mut found: Vec<Found<'a>> = Vec::new();
    let mut add = |token: &'a str, location: Location<'a>, provider: usize| {
        if let Some(f) = found
            .iter_mut()
            .find(|f| f.location == location && f.token == token)
        {
            if !f.providers.contains(&provider) {
                f.providers.push(provider);
            }
        } else {
            found.push(Found {
                token,
                location,
                providers: vec![provider],
            });
        }
    };
    let query = if locations.iter().any(|l| !l.params.is_empty()) {
        let path = headers.get(":path").unwrap_or_default();
        let query = path.split_once('?').map_or("", |(_, q)| q);
        query.split('#').next().unwrap_or_default()
    } else {
        ""
    };
    for (i, provider) in locations.iter().enumerate() {
        for FromHeader { name, prefix } in &provider.headers {
            for value in headers.get_all(name) {
                if let Some(token) = strip_prefix(value, prefix) {
                    let token = token.trim();
                    if !token.is_empty() {
                        add(token, Location::Header(name), i);
                    }
                }
            }
        }
        if !query.is_empty() {
            for param in &provider.params {
                for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
                    if key == param && !value.is_empty() {
                        add(value, Location::Param(param), i);
                    }
                }
            }
        }
        for cookie in &provider.cookies {
            for header in headers.get_all("cookie") {
                for (key, value) in cookies(header) {
                    if key == cookie && !value.is_empty() {
                        add(value, Location::Cookie(cookie), i);
                    }
                }
            }
        }
    }
    found
}

/// `value` after `prefix` (compared ignoring ASCII case).
fn strip_prefix<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// The `name=value` pairs of a `cookie` header (quotes around a value dropped).
fn cookies(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        Some((k.trim(), v))
    })
}

/// `path` without the query parameter `name`.
pub fn path_without_param(path: &str, name: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| kv.split_once('=').map_or(*kv, |(k, _)| k) != name)
        .collect();
    let mut out = base.to_owned();
    if !kept.is_empty() && kept != [""] {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// A `cookie` header without the cookie `name` (`None`: nothing left).
pub fn cookie_without(header: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k.trim()) != name)
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_param_is_removed_and_the_rest_of_the_query_kept() {
        assert_eq!(
            path_without_param("/a?access_token=x&b=1", "access_token"),
            "/a?b=1"
        );
        assert_eq!(
            path_without_param("/a?access_token=x", "access_token"),
            "/a"
        );
        assert_eq!(path_without_param("/a?b=1&t=x#f", "t"), "/a?b=1#f");
        assert_eq!(path_without_param("/a", "t"), "/a");
    }

    #[test]
    fn a_cookie_is_removed_and_the_others_kept() {
        assert_eq!(
            cookie_without("a=1; jwt=x; b=2", "jwt").as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(cookie_without("jwt=x", "jwt"), None);
    }

    #[test]
    fn prefixes_compare_without_case() {
        assert_eq!(strip_prefix("bearer abc", "Bearer "), Some("abc"));
        assert_eq!(strip_prefix("Basic abc", "Bearer "), None);
        assert_eq!(strip_prefix("Be", "Bearer "), None);
    }
}
