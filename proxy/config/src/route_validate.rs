//! Validation of routes: their matchers (paths, headers, query
//! parameters, regular expressions), targets, rewrites, retry policies and
//! upgrade protocols, each error at its path.

use std::collections::HashSet;

use crate::error::ErrorSink;
use crate::model::*;
use crate::resilience_validate::validate_retry;

pub(crate) fn validate_route(
    route: &RouteConfig,
    at: &str,
    clusters: &HashSet<&str>,
    sink: &mut ErrorSink,
) {
    validate_match(&route.matcher, &format!("{at}.match"), sink);
    let actions = [
        route.route.is_some(),
        route.direct_response.is_some(),
        route.redirect.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    if actions != 1 {
        sink.push(
            at.to_owned(),
            format!(
                "exactly one of 'route', 'direct_response', 'redirect' is required, found {actions}"
            ),
        );
    }
    if let Some(forward) = &route.route {
        let at = format!("{at}.route");
        match (&forward.cluster, forward.weighted_clusters.is_empty()) {
            (Some(cluster), true) => {
                if !clusters.contains(cluster.as_str()) {
                    sink.push(
                        format!("{at}.cluster"),
                        format!("unknown cluster '{cluster}'"),
                    );
                }
            }
            (None, false) => {
                let mut total: u64 = 0;
                for (k, weighted) in forward.weighted_clusters.iter().enumerate() {
                    let at = format!("{at}.weighted_clusters[{k}]");
                    if !clusters.contains(weighted.cluster.as_str()) {
                        sink.push(
                            format!("{at}.cluster"),
                            format!("unknown cluster '{}'", weighted.cluster),
                        );
                    }
                    if weighted.weight == 0 {
                        sink.push(format!("{at}.weight"), "must be greater than zero");
                    }
                    total += u64::from(weighted.weight);
                }
                if total > u64::from(u32::MAX) {
                    sink.push(
                        format!("{at}.weighted_clusters"),
                        "weights must sum to at most 4294967295",
                    );
                }
            }
            _ => sink.push(
                at.clone(),
                "exactly one of 'cluster' or 'weighted_clusters' is required",
            ),
        }
        if let Some(rewrite) = &forward.prefix_rewrite {
            if route.matcher.prefix.is_none() {
                sink.push(
                    format!("{at}.prefix_rewrite"),
                    "needs a 'match.prefix' to replace",
                );
            }
            if !rewrite.starts_with('/') {
                sink.push(format!("{at}.prefix_rewrite"), "must start with '/'");
            }
        }
        if let Some(host) = &forward.host_rewrite
            && http::uri::Authority::try_from(host.as_str()).is_err()
        {
            sink.push(
                format!("{at}.host_rewrite"),
                format!("'{host}' is not a valid host"),
            );
        }
        if let Some(policy) = &forward.retry_policy {
            validate_retry(policy, &format!("{at}.retry_policy"), sink);
        }
        for (k, protocol) in forward.upgrade.iter().enumerate() {
            let at = format!("{at}.upgrade[{k}]");
            if protocol.eq_ignore_ascii_case("h2c") {
                sink.push(at, "h2c upgrades are never proxied");
            } else if !is_protocol(protocol) {
                sink.push(at, format!("'{protocol}' is not a valid protocol name"));
            }
        }
        for (k, hash) in forward.hash_policy.iter().enumerate() {
            match hash {
                HashPolicy::Header(name)
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() =>
                {
                    sink.push(
                        format!("{at}.hash_policy[{k}].header"),
                        format!("'{name}' is not a valid header name"),
                    );
                }
                HashPolicy::Cookie(name) if name.is_empty() => {
                    sink.push(format!("{at}.hash_policy[{k}].cookie"), "must not be empty");
                }
                _ => {}
            }
        }
    }
    if let Some(direct) = &route.direct_response
        && !(100..=599).contains(&direct.status)
    {
        sink.push(
            format!("{at}.direct_response.status"),
            "must be between 100 and 599",
        );
    }
    if let Some(redirect) = &route.redirect {
        let at = format!("{at}.redirect");
        if ![301, 302, 303, 307, 308].contains(&redirect.status) {
            sink.push(
                format!("{at}.status"),
                "must be one of 301, 302, 303, 307, 308",
            );
        }
        if let Some(scheme) = &redirect.scheme
            && scheme != "http"
            && scheme != "https"
        {
            sink.push(format!("{at}.scheme"), "must be 'http' or 'https'");
        }
        if let Some(host) = &redirect.host
            && http::uri::Authority::try_from(host.as_str()).is_err()
        {
            sink.push(
                format!("{at}.host"),
                format!("'{host}' is not a valid host"),
            );
        }
        if let Some(path) = &redirect.path
            && !path.starts_with('/')
        {
            sink.push(format!("{at}.path"), "must start with '/'");
        }
    }
}

fn validate_match(matcher: &RouteMatch, at: &str, sink: &mut ErrorSink) {
    for (i, authority) in matcher.authority.iter().enumerate() {
        let name = authority.strip_prefix("*.").unwrap_or(authority);
        if name.is_empty() || name.contains(['/', ' ', '*']) {
            sink.push(
                format!("{at}.authority[{i}]"),
                format!("'{authority}' is not a host name or '*.suffix' pattern"),
            );
        }
    }
    let path_kinds = [&matcher.prefix, &matcher.path, &matcher.regex]
        .into_iter()
        .filter(|p| p.is_some())
        .count();
    if path_kinds > 1 {
        sink.push(
            at.to_owned(),
            "at most one of 'prefix', 'path', 'regex' may be set",
        );
    }
    if let Some(prefix) = &matcher.prefix
        && !prefix.starts_with('/')
    {
        sink.push(format!("{at}.prefix"), "must start with '/'");
    }
    if let Some(path) = &matcher.path
        && !path.starts_with('/')
    {
        sink.push(format!("{at}.path"), "must start with '/'");
    }
    if let Some(regex) = &matcher.regex {
        check_regex(regex, &format!("{at}.regex"), sink);
    }
    for (i, method) in matcher.method.iter().enumerate() {
        if http::Method::from_bytes(method.as_bytes()).is_err() {
            sink.push(
                format!("{at}.method[{i}]"),
                format!("'{method}' is not an HTTP method"),
            );
        }
    }
    for (i, header) in matcher.headers.iter().enumerate() {
        let at = format!("{at}.headers[{i}]");
        if http::HeaderName::from_bytes(header.name.as_bytes()).is_err() {
            sink.push(
                format!("{at}.name"),
                format!("'{}' is not a valid header name", header.name),
            );
        }
        validate_value_match(header, &at, sink);
    }
    for (i, query) in matcher.query.iter().enumerate() {
        let at = format!("{at}.query[{i}]");
        if query.name.is_empty() {
            sink.push(format!("{at}.name"), "must not be empty");
        }
        validate_value_match(query, &at, sink);
    }
}

fn validate_value_match(value: &ValueMatch, at: &str, sink: &mut ErrorSink) {
    let kinds = [
        value.exact.is_some(),
        value.regex.is_some(),
        value.present.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    if kinds > 1 {
        sink.push(
            at.to_owned(),
            "at most one of 'exact', 'regex', 'present' may be set",
        );
    }
    if let Some(regex) = &value.regex {
        check_regex(regex, &format!("{at}.regex"), sink);
    }
}

fn check_regex(pattern: &str, at: &str, sink: &mut ErrorSink) {
    if let Err(err) = regex::Regex::new(pattern) {
        let first_line = err
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        sink.push(
            at.to_owned(),
            format!("invalid regular expression: {first_line}"),
        );
    }
}

/// An `Upgrade` protocol: `name` or `name/version`, each an HTTP token
/// (RFC 9110 §7.8).
fn is_protocol(protocol: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    match protocol.split_once('/') {
        Some((name, version)) => token(name) && token(version),
        None => token(protocol),
    }
}
