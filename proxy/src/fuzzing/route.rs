//! The router's matcher under fuzzing: a route match and a request, both
//! taken from the input, line by line:
//!
//! ```text
//! authorities (comma-separated)
//! path condition: `p/prefix`, `e/exact`, `r<regex>` or nothing
//! methods (comma-separated)
//! header conditions: `name=value` exact, `name~regex`, `name!` absent, `name` present; `;`-separated
//! query conditions, as header conditions
//! request host
//! request path
//! request query (none when empty)
//! request method
//! request headers, `name: value`, one a line, to the end
//! ```
//!
//! Properties: a match the validator accepts compiles; matching never
//! panics; a match implies each condition (prefix, exact path, method, a
//! single-valued header's exact value, a query parameter's presence).

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use wasp_config::{RouteMatch, ValueMatch};

use crate::router::{CompiledMatch, RequestView};

fn conditions(line: &str) -> Vec<ValueMatch> {
    line.split(';')
        .filter(|c| !c.is_empty())
        .map(|c| {
            let mut value = ValueMatch {
                name: c.to_owned(),
                exact: None,
                regex: None,
                present: None,
            };
            if let Some((name, exact)) = c.split_once('=') {
                value.name = name.to_owned();
                value.exact = Some(exact.to_owned());
            } else if let Some((name, regex)) = c.split_once('~') {
                value.name = name.to_owned();
                value.regex = Some(regex.to_owned());
            } else if let Some(name) = c.strip_suffix('!') {
                value.name = name.to_owned();
                value.present = Some(false);
            }
            value
        })
        .collect()
}

fn list(line: &str) -> Vec<String> {
    line.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether the validator accepts `matcher` in an otherwise valid document.
fn validates(matcher: &RouteMatch) -> bool {
    let Ok(json) = serde_json::to_string(matcher) else {
        return false;
    };
    let yaml = format!(
        "listeners:\n  - name: l\n    address: 127.0.0.1:1\n    routes:\n      - match: {json}\n        direct_response: {{status: 200}}\n"
    );
    wasp_config::parse(&yaml).is_ok()
}

/// Runs one input (see the module docs).
pub fn route_match(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or_default();
    let authority = list(next());
    let path_line = next();
    let (prefix, path, regex) = match path_line.split_at_checked(1) {
        Some(("p", v)) => (Some(v.to_owned()), None, None),
        Some(("e", v)) => (None, Some(v.to_owned()), None),
        Some(("r", v)) => (None, None, Some(v.to_owned())),
        _ => (None, None, None),
    };
    let matcher = RouteMatch {
        authority,
        prefix,
        path,
        regex,
        method: list(next()),
        headers: conditions(next()),
        query: conditions(next()),
    };
    let host = next().to_owned();
    let req_path = next().to_owned();
    let query = Some(next().to_owned()).filter(|q| !q.is_empty());
    let method = Method::from_bytes(next().as_bytes()).unwrap_or(Method::GET);
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }

    let compiled = match CompiledMatch::compile(&matcher) {
        Ok(compiled) => compiled,
        Err(err) => {
            assert!(
                !validates(&matcher),
                "a validated match does not compile: {err}: {matcher:?}"
            );
            return;
        }
    };
    let view = RequestView {
        host: &host,
        path: &req_path,
        query: query.as_deref(),
        method: &method,
        headers: &headers,
    };
    if !compiled.matches(&view) {
        return;
    }
    if let Some(prefix) = &matcher.prefix {
        assert!(
            req_path.starts_with(prefix.as_str()),
            "prefix {prefix:?} matched {req_path:?}"
        );
    }
    if let Some(exact) = &matcher.path {
        assert_eq!(&req_path, exact, "exact path");
    }
    let methods: Vec<Method> = matcher
        .method
        .iter()
        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
        .collect();
    if !methods.is_empty() {
        assert!(
            methods.contains(&method),
            "method {method} matched {methods:?}"
        );
    }
    for condition in &matcher.headers {
        let Ok(name) = HeaderName::from_bytes(condition.name.as_bytes()) else {
            continue;
        };
        let values: Vec<_> = headers.get_all(&name).iter().collect();
        if let (Some(exact), [value]) = (&condition.exact, values.as_slice()) {
            assert_eq!(value.to_str().ok(), Some(exact.as_str()), "header {name}");
        }
        if condition.present == Some(false) {
            assert!(values.is_empty(), "absent header {name} is present");
        }
    }
    for condition in &matcher.query {
        if condition.present != Some(false) {
            let found = query.as_deref().is_some_and(|q| {
                q.split('&')
                    .any(|pair| pair.split_once('=').map_or(pair, |(k, _)| k) == condition.name)
            });
            assert!(
                found,
                "query parameter {} matched while missing",
                condition.name
            );
        }
    }
}
