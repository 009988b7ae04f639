//! `to[].operation` matching: hosts (case-insensitive), ports, methods and
//! paths with exact, `prefix*`, `*suffix` and `*`, the query ignored, every
//! `not_*` form, fields ANDed, entries ORed.

mod common;

use common::{allowed, req};
use serde_json::json;

fn operation(operation: serde_json::Value) -> serde_json::Value {
    json!({"to": [{"operation": operation}]})
}

#[test]
fn paths_match_exact_prefix_suffix_and_any() {
    for (pattern, path, expected) in [
        ("/api/users", "/api/users", true),
        ("/api/users", "/api/users/1", false),
        ("/api/users", "/api", false),
        ("/api/*", "/api/users/1", true),
        ("/api/*", "/apiv2", false),
        ("/api*", "/apiv2", true),
        ("*.css", "/static/site.css", true),
        ("*.css", "/static/site.js", false),
        ("*", "/anything", true),
    ] {
        let rule = operation(json!({"paths": [pattern]}));
        assert_eq!(
            allowed(rule, &req().path(path)),
            expected,
            "{pattern} {path}"
        );
    }
}

#[test]
fn paths_ignore_the_query_and_fragment() {
    let rule = operation(json!({"paths": ["/api/users"]}));
    assert!(allowed(rule.clone(), &req().path("/api/users?id=1")));
    assert!(allowed(rule, &req().path("/api/users#top")));
    let suffix = operation(json!({"paths": ["*.css"]}));
    assert!(allowed(suffix, &req().path("/site.css?v=2")));
}

#[test]
fn not_paths_exclude() {
    let rule = operation(json!({"paths": ["/api/*"], "not_paths": ["/api/admin*"]}));
    assert!(allowed(rule.clone(), &req().path("/api/users")));
    assert!(!allowed(rule.clone(), &req().path("/api/admin/keys")));
    assert!(!allowed(rule, &req().path("/other")));
    let only_not = operation(json!({"not_paths": ["/private*"]}));
    assert!(allowed(only_not.clone(), &req().path("/public")));
    assert!(!allowed(only_not, &req().path("/private/x")));
}

#[test]
fn methods_match_exactly_and_case_sensitively() {
    let rule = operation(json!({"methods": ["GET", "HEAD"]}));
    assert!(allowed(rule.clone(), &req().method("GET")));
    assert!(allowed(rule.clone(), &req().method("HEAD")));
    assert!(!allowed(rule.clone(), &req().method("POST")));
    assert!(!allowed(rule, &req().method("get")));
    let not = operation(json!({"not_methods": ["DELETE"]}));
    assert!(allowed(not.clone(), &req().method("PUT")));
    assert!(!allowed(not, &req().method("DELETE")));
}

#[test]
fn hosts_match_the_authority_ignoring_case() {
    for (pattern, host, expected) in [
        ("example.com", "example.com", true),
        ("example.com", "EXAMPLE.com", true),
        ("Example.COM", "example.com", true),
        ("example.com", "example.com:8080", false),
        ("example.com:8080", "example.com:8080", true),
        ("*.example.com", "api.example.com", true),
        ("*.example.com", "example.com", false),
        ("api.*", "API.internal", true),
        ("*", "whatever", true),
    ] {
        let rule = operation(json!({"hosts": [pattern]}));
        assert_eq!(
            allowed(rule, &req().host(host)),
            expected,
            "{pattern} {host}"
        );
    }
    let not = operation(json!({"not_hosts": ["*.internal"]}));
    assert!(!allowed(not.clone(), &req().host("db.INTERNAL")));
    assert!(allowed(not, &req().host("example.com")));
}

#[test]
fn ports_match_the_destination_port() {
    let rule = operation(json!({"ports": ["8080", "9090"]}));
    assert!(allowed(rule.clone(), &req().to("10.0.0.1:8080", 8080)));
    assert!(allowed(rule.clone(), &req().to("10.0.0.1:9090", 9090)));
    assert!(!allowed(rule, &req().to("10.0.0.1:80", 80)));
    let not = operation(json!({"not_ports": ["15000"]}));
    assert!(!allowed(not.clone(), &req().to("10.0.0.1:15000", 15000)));
    assert!(allowed(not, &req().to("10.0.0.1:80", 80)));
}

#[test]
fn fields_of_an_operation_must_all_match() {
    let rule =
        operation(json!({"methods": ["POST"], "paths": ["/orders*"], "hosts": ["shop.example"]}));
    let good = req().method("POST").path("/orders/1").host("shop.example");
    assert!(allowed(rule.clone(), &good));
    assert!(!allowed(rule.clone(), &good.clone().method("GET")));
    assert!(!allowed(rule.clone(), &good.clone().path("/cart")));
    assert!(!allowed(rule, &good.host("other.example")));
}

#[test]
fn any_to_entry_may_match() {
    let rule = json!({"to": [
        {"operation": {"methods": ["GET"]}},
        {"operation": {"paths": ["/public*"]}},
    ]});
    assert!(allowed(rule.clone(), &req().method("GET").path("/x")));
    assert!(allowed(
        rule.clone(),
        &req().method("POST").path("/public/a")
    ));
    assert!(!allowed(rule, &req().method("POST").path("/x")));
}

#[test]
fn from_to_and_when_of_a_rule_must_all_match() {
    let rule = json!({
        "from": [{"source": {"ip_blocks": ["10.0.0.0/8"]}}],
        "to": [{"operation": {"methods": ["GET"]}}],
        "when": [{"key": "request.headers[x-tenant]", "values": ["a"]}],
    });
    let good = req()
        .from("10.0.0.1:1")
        .method("GET")
        .header("x-tenant", "a");
    assert!(allowed(rule.clone(), &good));
    assert!(!allowed(rule.clone(), &good.clone().from("11.0.0.1:1")));
    assert!(!allowed(rule.clone(), &good.clone().method("PUT")));
    assert!(!allowed(
        rule,
        &req()
            .from("10.0.0.1:1")
            .method("GET")
            .header("x-tenant", "b")
    ));
}
