//! `when` conditions: every key Istio defines for HTTP, with `values` and
//! `not_values`; nested and list claims; all conditions of a rule ANDed.

mod common;

use common::{allowed, req};
use serde_json::json;

fn when(key: &str, values: &[&str]) -> serde_json::Value {
    json!({"when": [{"key": key, "values": values}]})
}

fn when_not(key: &str, not_values: &[&str]) -> serde_json::Value {
    json!({"when": [{"key": key, "not_values": not_values}]})
}

#[test]
fn request_headers_match_by_name_ignoring_its_case() {
    let r = req().header("X-User", "alice");
    assert!(allowed(when("request.headers[x-user]", &["alice"]), &r));
    assert!(allowed(when("request.headers[X-USER]", &["ali*"]), &r));
    assert!(allowed(when("request.headers[x-user]", &["*ice"]), &r));
    assert!(allowed(when("request.headers[x-user]", &["*"]), &r));
    assert!(!allowed(when("request.headers[x-user]", &["bob"]), &r));
    assert!(!allowed(when("request.headers[x-other]", &["*"]), &r));
    assert!(!allowed(
        when_not("request.headers[x-user]", &["alice"]),
        &r
    ));
    assert!(allowed(when_not("request.headers[x-user]", &["bob"]), &r));
    assert!(allowed(when_not("request.headers[x-other]", &["*"]), &r));
}

#[test]
fn request_headers_with_several_values_match_any_of_them() {
    let r = req().header("x-group", "dev").header("x-group", "ops");
    assert!(allowed(when("request.headers[x-group]", &["ops"]), &r));
    assert!(allowed(when("request.headers[x-group]", &["dev"]), &r));
    assert!(allowed(when("request.headers[x-group]", &["dev,ops"]), &r));
    assert!(!allowed(when("request.headers[x-group]", &["qa"]), &r));
    assert!(!allowed(when_not("request.headers[x-group]", &["ops"]), &r));
    let listed = req().header("x-group", "dev,ops");
    assert!(allowed(when("request.headers[x-group]", &["op*"]), &listed));
}

#[test]
fn an_empty_header_is_present() {
    let r = req().header("x-flag", "");
    assert!(allowed(when("request.headers[x-flag]", &["*"]), &r));
}

#[test]
fn source_and_remote_ip_match_cidrs() {
    let r = req().from("[fd00::5]:1234");
    assert!(allowed(when("source.ip", &["fd00::/8"]), &r));
    assert!(!allowed(when("source.ip", &["10.0.0.0/8"]), &r));
    assert!(allowed(when("remote.ip", &["fd00::5"]), &r));
    assert!(!allowed(when_not("source.ip", &["fd00::/16"]), &r));
}

#[test]
fn destination_ip_and_port() {
    let r = req().to("10.9.9.9:8443", 8443);
    assert!(allowed(when("destination.ip", &["10.9.0.0/16"]), &r));
    assert!(!allowed(when("destination.ip", &["10.8.0.0/16"]), &r));
    assert!(allowed(when("destination.port", &["8443"]), &r));
    assert!(!allowed(when("destination.port", &["443"]), &r));
    assert!(!allowed(when_not("destination.port", &["8443"]), &r));
}

#[test]
fn source_principal_and_namespace() {
    let r = req().peer("spiffe://td/ns/prod/sa/billing");
    assert!(allowed(
        when("source.principal", &["td/ns/prod/sa/billing"]),
        &r
    ));
    assert!(allowed(when("source.principal", &["td/ns/prod/*"]), &r));
    assert!(!allowed(when("source.principal", &["td/ns/dev/*"]), &r));
    assert!(allowed(when("source.namespace", &["prod"]), &r));
    assert!(!allowed(when_not("source.namespace", &["prod"]), &r));
    assert!(allowed(when_not("source.namespace", &["prod"]), &req()));
}

#[test]
fn request_auth_principal_presenter_and_audiences() {
    let r = req()
        .auth("principal", "https://accounts.example/u-1")
        .auth("presenter", "frontend")
        .auth("audiences", r#"["api","admin"]"#);
    assert!(allowed(
        when("request.auth.principal", &["https://accounts.example/*"]),
        &r
    ));
    assert!(!allowed(when("request.auth.principal", &["other/*"]), &r));
    assert!(allowed(when("request.auth.presenter", &["frontend"]), &r));
    assert!(!allowed(when("request.auth.presenter", &["mobile"]), &r));
    assert!(allowed(when("request.auth.audiences", &["admin"]), &r));
    assert!(allowed(when("request.auth.audiences", &["api"]), &r));
    assert!(!allowed(when("request.auth.audiences", &["billing"]), &r));
    assert!(!allowed(when_not("request.auth.audiences", &["admin"]), &r));
    let single = req().auth("audiences", "api");
    assert!(allowed(when("request.auth.audiences", &["api"]), &single));
    assert!(!allowed(when("request.auth.audiences", &["*"]), &req()));
}

#[test]
fn claims_match_strings_lists_and_nested_paths() {
    let claims = json!({
        "iss": "https://accounts.example",
        "groups": ["dev", "ops"],
        "realm": {"roles": ["admin"], "tier": "gold", "level": 3},
        "verified": true,
    });
    let r = req().auth("claims", &claims.to_string());
    assert!(allowed(
        when("request.auth.claims[iss]", &["https://accounts.example"]),
        &r
    ));
    assert!(!allowed(
        when("request.auth.claims[iss]", &["https://other"]),
        &r
    ));
    assert!(allowed(when("request.auth.claims[groups]", &["ops"]), &r));
    assert!(allowed(
        when("request.auth.claims[groups]", &["qa", "dev"]),
        &r
    ));
    assert!(!allowed(when("request.auth.claims[groups]", &["qa"]), &r));
    assert!(!allowed(
        when_not("request.auth.claims[groups]", &["ops"]),
        &r
    ));
    assert!(allowed(
        when("request.auth.claims[realm][roles]", &["admin"]),
        &r
    ));
    assert!(allowed(
        when("request.auth.claims[realm][tier]", &["go*"]),
        &r
    ));
    assert!(!allowed(
        when("request.auth.claims[realm][missing]", &["*"]),
        &r
    ));
    assert!(!allowed(when("request.auth.claims[realm]", &["*"]), &r));
    // Istio matches string and string-list claims only.
    assert!(!allowed(
        when("request.auth.claims[realm][level]", &["3"]),
        &r
    ));
    assert!(!allowed(
        when("request.auth.claims[verified]", &["true"]),
        &r
    ));
    assert!(!allowed(when("request.auth.claims[iss]", &["*"]), &req()));
    assert!(allowed(
        when_not("request.auth.claims[iss]", &["*"]),
        &req()
    ));
}

#[test]
fn connection_sni() {
    let r = req().sni("api.example.com");
    assert!(allowed(when("connection.sni", &["*.example.com"]), &r));
    assert!(!allowed(when("connection.sni", &["www.example.com"]), &r));
    assert!(!allowed(when("connection.sni", &["*"]), &req()));
}

#[test]
fn values_and_not_values_together_and_every_condition_must_hold() {
    let both = json!({"when": [
        {"key": "request.headers[x-env]", "values": ["prod*"], "not_values": ["prod-eu"]},
    ]});
    assert!(allowed(both.clone(), &req().header("x-env", "prod-us")));
    assert!(!allowed(both, &req().header("x-env", "prod-eu")));
    let two = json!({"when": [
        {"key": "request.headers[x-a]", "values": ["1"]},
        {"key": "request.headers[x-b]", "values": ["2"]},
    ]});
    assert!(allowed(
        two.clone(),
        &req().header("x-a", "1").header("x-b", "2")
    ));
    assert!(!allowed(two, &req().header("x-a", "1")));
}
