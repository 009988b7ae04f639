//! Compiled route matches: authority, path, method, header and query
//! conditions, built once per snapshot and evaluated per request.

use http::{HeaderMap, HeaderName, Method};
use regex::Regex;

use wasp_config::{RouteMatch, ValueMatch};

/// The parts of a request that routes match on.
pub struct RequestView<'a> {
    /// Host without port, lowercase not guaranteed.
    pub host: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// Method.
    pub method: &'a Method,
    /// Headers.
    pub headers: &'a HeaderMap,
}

/// A route's conditions, ready to evaluate.
#[derive(Debug)]
pub struct CompiledMatch {
    authorities: Vec<AuthorityMatch>,
    path: PathMatch,
    methods: Vec<Method>,
    headers: Vec<(HeaderName, ValueCondition)>,
    query: Vec<(String, ValueCondition)>,
}

#[derive(Debug)]
enum AuthorityMatch {
    Exact(String),
    /// `*.example.com` is stored as `.example.com`.
    Suffix(String),
}

#[derive(Debug)]
enum PathMatch {
    Any,
    Prefix(String),
    Exact(String),
    Regex(Regex),
}

#[derive(Debug)]
enum ValueCondition {
    Present,
    Absent,
    Exact(String),
    Regex(Regex),
}

/// Compiles a regular expression anchored to match the whole input.
fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

impl CompiledMatch {
    /// Compiles a validated match. Fails only on a regular expression the
    /// validator did not catch.
    pub fn compile(matcher: &RouteMatch) -> Result<Self, regex::Error> {
        let authorities = matcher
            .authority
            .iter()
            .map(|a| match a.strip_prefix('*') {
                Some(suffix) => AuthorityMatch::Suffix(suffix.to_ascii_lowercase()),
                None => AuthorityMatch::Exact(a.to_ascii_lowercase()),
            })
            .collect();
        let path = match (&matcher.prefix, &matcher.path, &matcher.regex) {
            (Some(prefix), _, _) => PathMatch::Prefix(prefix.clone()),
            (_, Some(exact), _) => PathMatch::Exact(exact.clone()),
            (_, _, Some(regex)) => PathMatch::Regex(anchored(regex)?),
            _ => PathMatch::Any,
        };
        let methods = matcher
            .method
            .iter()
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect();
        let headers = matcher
            .headers
            .iter()
            .filter_map(|h| {
                let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
                Some(condition(h).map(|c| (name, c)))
            })
            .collect::<Result<_, _>>()?;
        let query = matcher
            .query
            .iter()
            .map(|q| condition(q).map(|c| (q.name.clone(), c)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            authorities,
            path,
            methods,
            headers,
            query,
        })
    }

    /// True when the request meets every condition.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        self.matches_authority(req.host)
            && self.matches_path(req.path)
            && (self.methods.is_empty() || self.methods.contains(req.method))
            && self.headers.iter().all(|(name, cond)| {
                let mut values = req.headers.get_all(name).iter();
                match values.next() {
                    None => cond.test(None),
                    Some(first) => {
                        let rest: Vec<_> = values.collect();
                        if rest.is_empty() {
                            cond.test(first.to_str().ok())
                        } else {
                            // Several values are matched as one, comma-joined (as Envoy does).
                            let joined = std::iter::once(first)
                                .chain(rest)
                                .map(|v| v.to_str().unwrap_or_default())
                                .collect::<Vec<_>>()
                                .join(",");
                            cond.test(Some(&joined))
                        }
                    }
                }
            })
            && self
                .query
                .iter()
                .all(|(name, cond)| cond.test(query_param(req.query, name)))
    }

    fn matches_authority(&self, host: &str) -> bool {
        if self.authorities.is_empty() {
            return true;
        }
        self.authorities.iter().any(|a| match a {
            AuthorityMatch::Exact(exact) => host.eq_ignore_ascii_case(exact),
            AuthorityMatch::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        })
    }

    fn matches_path(&self, path: &str) -> bool {
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Regex(regex) => regex.is_match(path),
        }
    }

    /// The literal prefix this route matched on, if it is a prefix route.
    pub fn prefix(&self) -> Option<&str> {
        match &self.path {
            PathMatch::Prefix(prefix) => Some(prefix),
            _ => None,
        }
    }
}

fn condition(value: &ValueMatch) -> Result<ValueCondition, regex::Error> {
    Ok(match (&value.exact, &value.regex, value.present) {
        (Some(exact), _, _) => ValueCondition::Exact(exact.clone()),
        (_, Some(regex), _) => ValueCondition::Regex(anchored(regex)?),
        (_, _, Some(false)) => ValueCondition::Absent,
        _ => ValueCondition::Present,
    })
}

impl ValueCondition {
    fn test(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Self::Absent, value) => value.is_none(),
            (Self::Present, value) => value.is_some(),
            (Self::Exact(exact), Some(value)) => value == exact,
            (Self::Regex(regex), Some(value)) => regex.is_match(value),
            (_, None) => false,
        }
    }
}

/// The raw value of the first query parameter called `name`; a parameter
/// without `=` has the empty value.
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(yaml: &str) -> CompiledMatch {
        CompiledMatch::compile(&serde_yaml_ng::from_str(yaml).unwrap()).unwrap()
    }

    fn view<'a>(
        host: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
    ) -> RequestView<'a> {
        RequestView {
            host,
            path,
            query,
            method: &Method::GET,
            headers,
        }
    }

    #[test]
    fn wildcard_authority_matches_subdomains_only() {
        let m = compiled("authority: ['*.example.com', api.test]");
        let h = HeaderMap::new();
        assert!(m.matches(&view("a.example.com", "/", None, &h)));
        assert!(m.matches(&view("A.B.Example.COM", "/", None, &h)));
        assert!(m.matches(&view("API.test", "/", None, &h)));
        assert!(!m.matches(&view("example.com", "/", None, &h)));
        assert!(!m.matches(&view("other.test", "/", None, &h)));
    }

    #[test]
    fn regex_path_must_match_whole_path() {
        let m = compiled("regex: '/users/[0-9]+'");
        let h = HeaderMap::new();
        assert!(m.matches(&view("h", "/users/42", None, &h)));
        assert!(!m.matches(&view("h", "/users/42/edit", None, &h)));
    }

    #[test]
    fn header_conditions_cover_exact_regex_present_absent() {
        let m = compiled(
            "headers: [{name: x-a, exact: '1'}, {name: x-b, regex: 'v[0-9]'}, {name: x-c}, {name: x-d, present: false}]",
        );
        let mut h = HeaderMap::new();
        h.insert("x-a", "1".parse().unwrap());
        h.insert("x-b", "v2".parse().unwrap());
        h.insert("x-c", "".parse().unwrap());
        assert!(m.matches(&view("h", "/", None, &h)));
        h.insert("x-d", "1".parse().unwrap());
        assert!(!m.matches(&view("h", "/", None, &h)));
        h.remove("x-d");
        h.insert("x-b", "w2".parse().unwrap());
        assert!(!m.matches(&view("h", "/", None, &h)));
    }

    #[test]
    fn query_parameters_match_by_name() {
        let m = compiled("query: [{name: debug, exact: 'true'}, {name: flag}]");
        let h = HeaderMap::new();
        assert!(m.matches(&view("h", "/", Some("a=1&debug=true&flag"), &h)));
        assert!(!m.matches(&view("h", "/", Some("debug=false&flag"), &h)));
        assert!(!m.matches(&view("h", "/", Some("debug=true"), &h)));
        assert!(!m.matches(&view("h", "/", None, &h)));
    }
}
