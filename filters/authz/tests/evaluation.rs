//! How policies combine, as Istio decides: DENY first, then ALLOW if any
//! exists, else allowed; policies without rules and empty rules; AUDIT;
//! dry run; the denied response; logs and metrics per policy and decision.

mod common;

use common::{host, reply, req, send, status};
use serde_json::json;
use wasp_filter_sdk::testing::LogLevel;

fn everything() -> serde_json::Value {
    json!([{}])
}

fn admin_path() -> serde_json::Value {
    json!([{"to": [{"operation": {"paths": ["/admin*"]}}]}])
}

#[test]
fn no_policies_allow_everything() {
    assert_eq!(status(json!({}), &req()), 200);
    assert_eq!(status(json!({"policies": []}), &req()), 200);
    let mut empty = wasp_filter_sdk::testing::Harness::new(wasp_authz::Authz::default());
    assert!(empty.configure(""));
    assert_eq!(send(&mut empty, &req()), 200);
}

#[test]
fn a_matching_deny_wins_over_a_matching_allow() {
    let config = json!({"policies": [
        {"name": "allow-all", "action": "ALLOW", "rules": everything()},
        {"name": "no-admin", "action": "DENY", "rules": admin_path()},
    ]});
    assert_eq!(status(config.clone(), &req().path("/admin/x")), 403);
    assert_eq!(status(config, &req().path("/home")), 200);
}

#[test]
fn with_an_allow_policy_a_request_must_match_one() {
    let config = json!({"policies": [
        {"name": "admin", "action": "ALLOW", "rules": admin_path()},
        {"name": "gets", "action": "ALLOW", "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]},
    ]});
    assert_eq!(
        status(config.clone(), &req().method("POST").path("/admin")),
        200
    );
    assert_eq!(status(config.clone(), &req().method("GET").path("/x")), 200);
    assert_eq!(status(config, &req().method("POST").path("/x")), 403);
}

#[test]
fn deny_policies_alone_allow_what_they_do_not_match() {
    let config =
        json!({"policies": [{"name": "no-admin", "action": "DENY", "rules": admin_path()}]});
    assert_eq!(status(config.clone(), &req().path("/admin")), 403);
    assert_eq!(status(config, &req().path("/")), 200);
}

#[test]
fn an_allow_policy_without_rules_denies_everything() {
    let allow_nothing = json!({"policies": [{"name": "allow-nothing", "action": "ALLOW"}]});
    assert_eq!(status(allow_nothing, &req()), 403);
    // ... unless another ALLOW policy matches.
    let with_other = json!({"policies": [
        {"name": "allow-nothing", "action": "ALLOW", "rules": []},
        {"name": "admin", "action": "ALLOW", "rules": admin_path()},
    ]});
    assert_eq!(status(with_other.clone(), &req().path("/admin")), 200);
    assert_eq!(status(with_other, &req().path("/")), 403);
}

#[test]
fn a_deny_policy_without_rules_matches_nothing() {
    let config = json!({"policies": [{"name": "deny-nothing", "action": "DENY"}]});
    assert_eq!(status(config, &req()), 200);
}

#[test]
fn an_empty_rule_matches_everything() {
    let deny_all =
        json!({"policies": [{"name": "deny-all", "action": "DENY", "rules": everything()}]});
    assert_eq!(status(deny_all, &req().path("/anything")), 403);
    let allow_all = json!({"policies": [
        {"name": "allow-nothing", "action": "ALLOW"},
        {"name": "allow-all", "action": "ALLOW", "rules": everything()},
    ]});
    assert_eq!(status(allow_all, &req()), 200);
}

#[test]
fn the_action_defaults_to_allow() {
    let config = json!({"policies": [{"name": "admin", "rules": admin_path()}]});
    assert_eq!(status(config.clone(), &req().path("/admin")), 200);
    assert_eq!(status(config, &req().path("/")), 403);
}

#[test]
fn audit_policies_only_log_and_count() {
    let mut h = host(
        json!({"policies": [{"name": "watch-admin", "action": "AUDIT", "rules": admin_path()}]}),
    );
    assert_eq!(send(&mut h, &req().path("/admin")), 200);
    assert_eq!(send(&mut h, &req().path("/other")), 200);
    assert!(h.logged(
        LogLevel::Info,
        "audit policy `watch-admin` matched GET /admin"
    ));
    assert_eq!(
        h.metric("authz.policy.watch-admin.audited").unwrap().value,
        1
    );
    assert_eq!(h.metric("authz.allowed").unwrap().value, 2);
    // An AUDIT policy is not an ALLOW policy: it does not make others fail.
    let audit_and_deny = json!({"policies": [
        {"name": "watch", "action": "AUDIT", "rules": everything()},
        {"name": "no-admin", "action": "DENY", "rules": admin_path()},
    ]});
    assert_eq!(status(audit_and_deny.clone(), &req().path("/")), 200);
    assert_eq!(status(audit_and_deny, &req().path("/admin")), 403);
}

#[test]
fn a_denied_request_gets_403_rbac_access_denied() {
    let mut h =
        host(json!({"policies": [{"name": "deny-all", "action": "DENY", "rules": everything()}]}));
    assert_eq!(
        reply(&mut h, &req()),
        (403, "RBAC: access denied".to_owned())
    );
}

#[test]
fn the_denied_response_is_configurable() {
    let config = json!({
        "denied_status": 401,
        "denied_body": "go away",
        "policies": [{"name": "deny-all", "action": "DENY", "rules": everything()}],
    });
    assert_eq!(
        reply(&mut host(config), &req()),
        (401, "go away".to_owned())
    );
}

#[test]
fn dry_run_deny_lets_the_request_through_and_reports_it() {
    let mut h = host(json!({"policies": [
        {"name": "no-admin", "action": "DENY", "rules": admin_path(), "dry_run": true},
    ]}));
    assert_eq!(send(&mut h, &req().path("/admin/keys")), 200);
    assert_eq!(send(&mut h, &req().path("/home")), 200);
    assert!(h.logged(LogLevel::Info, "dry run would deny GET /admin/keys"));
    assert!(h.logged(LogLevel::Info, "dry-run DENY policy `no-admin`"));
    assert_eq!(
        h.metric("authz.policy.no-admin.dry_run_denied")
            .unwrap()
            .value,
        1
    );
    assert_eq!(h.metric("authz.dry_run_denied").unwrap().value, 1);
    assert_eq!(h.metric("authz.dry_run_allowed").unwrap().value, 1);
    assert_eq!(h.metric("authz.allowed").unwrap().value, 2);
    assert_eq!(h.metric("authz.denied").unwrap().value, 0);
}

#[test]
fn dry_run_allow_reports_what_it_would_deny_and_leaves_enforced_policies_alone() {
    let mut h = host(json!({"policies": [
        {"name": "only-admin", "action": "ALLOW", "rules": admin_path(), "dry_run": true},
        {"name": "no-secrets", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/secret"]}}]}]},
    ]}));
    assert_eq!(send(&mut h, &req().path("/home")), 200);
    assert_eq!(send(&mut h, &req().path("/admin")), 200);
    assert_eq!(send(&mut h, &req().path("/secret")), 403);
    assert_eq!(h.metric("authz.dry_run_denied").unwrap().value, 2);
    assert_eq!(h.metric("authz.dry_run_allowed").unwrap().value, 1);
    assert_eq!(
        h.metric("authz.policy.only-admin.dry_run_allowed")
            .unwrap()
            .value,
        1
    );
    assert_eq!(h.metric("authz.policy.no-secrets.denied").unwrap().value, 1);
    assert_eq!(h.metric("authz.allowed").unwrap().value, 2);
    assert_eq!(h.metric("authz.denied").unwrap().value, 1);
}

#[test]
fn metrics_count_each_decision_per_policy() {
    let mut h = host(json!({"stat_prefix": "edge", "policies": [
        {"name": "no-admin", "action": "DENY", "rules": admin_path()},
        {"name": "gets", "action": "ALLOW", "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]},
    ]}));
    send(&mut h, &req().path("/admin"));
    send(&mut h, &req().path("/a"));
    send(&mut h, &req().path("/b"));
    send(&mut h, &req().method("PUT").path("/b"));
    let value = |name: &str| h.metric(name).unwrap_or_else(|| panic!("{name}")).value;
    assert_eq!(value("edge.policy.no-admin.denied"), 1);
    assert_eq!(value("edge.policy.gets.allowed"), 2);
    assert_eq!(value("edge.allowed"), 2);
    assert_eq!(value("edge.denied"), 2);
    assert!(h.metric("edge.dry_run_denied").is_none());
    assert!(h.logged(
        LogLevel::Info,
        "denied GET /admin from 10.1.2.3:40000 by DENY policy `no-admin`"
    ));
    assert!(h.logged(
        LogLevel::Info,
        "denied PUT /b from 10.1.2.3:40000: no ALLOW policy matched"
    ));
}

#[test]
fn the_first_matching_policy_in_order_decides() {
    let mut h = host(json!({"policies": [
        {"name": "first", "action": "DENY", "rules": admin_path()},
        {"name": "second", "action": "DENY", "rules": everything()},
    ]}));
    send(&mut h, &req().path("/admin"));
    assert_eq!(h.metric("authz.policy.first.denied").unwrap().value, 1);
    assert_eq!(h.metric("authz.policy.second.denied").unwrap().value, 0);
}
