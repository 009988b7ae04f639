//! Configuration errors: each fails `on_configure` with a log line naming
//! the field at fault; a good configuration passes.

use serde_json::{Value, json};
use wasp_authz::Authz;
use wasp_filter_sdk::testing::{Harness, LogLevel};

/// Configures `config` and expects it rejected with `needle` in the error log.
fn rejected(config: Value, needle: &str) {
    let mut host = Harness::new(Authz::default());
    assert!(!host.configure(&config.to_string()), "accepted: {config}");
    assert!(
        host.logged(LogLevel::Error, needle),
        "no error log with {needle:?}: {:?}",
        host.logs()
    );
}

fn policy_with_rule(rule: Value) -> Value {
    json!({"policies": [{"name": "p", "rules": [rule]}]})
}

#[test]
fn a_bad_cidr_names_its_field() {
    rejected(
        policy_with_rule(
            json!({"from": [{"source": {"ip_blocks": ["10.0.0.0/8", "10.0.0.0/33"]}}]}),
        ),
        r#"policies[0].rules[0].from[0].source.ip_blocks[1]: "10.0.0.0/33" is not a CIDR block"#,
    );
    rejected(
        policy_with_rule(json!({"from": [{"source": {"not_remote_ip_blocks": ["fe80::/129"]}}]})),
        "policies[0].rules[0].from[0].source.not_remote_ip_blocks[0]",
    );
    rejected(
        policy_with_rule(json!({"when": [{"key": "source.ip", "values": ["nope"]}]})),
        r#"policies[0].rules[0].when[0].values[0]: "nope" is not a CIDR block"#,
    );
}

#[test]
fn unknown_fields_are_named_with_their_path() {
    rejected(
        policy_with_rule(json!({"from": [{"source": {"ip_block": ["10.0.0.0/8"]}}]})),
        "policies[0].rules[0].from[0].source.ip_block: unknown field `ip_block`",
    );
    rejected(json!({"policy": []}), "unknown field `policy`");
    rejected(
        json!({"policies": [{"name": "p", "action": "REJECT"}]}),
        "policies[0].action: unknown variant `REJECT`",
    );
    rejected(
        json!({"policies": [{"action": "DENY"}]}),
        "missing field `name`",
    );
}

#[test]
fn bad_ports_are_named() {
    rejected(
        policy_with_rule(json!({"to": [{"operation": {"ports": ["http"]}}]})),
        r#"policies[0].rules[0].to[0].operation.ports[0]: "http" is not a port number"#,
    );
    rejected(
        policy_with_rule(json!({"when": [{"key": "destination.port", "not_values": ["0"]}]})),
        "policies[0].rules[0].when[0].not_values[0]",
    );
}

#[test]
fn condition_keys_are_checked() {
    rejected(
        policy_with_rule(json!({"when": [{"key": "request.header[x]", "values": ["a"]}]})),
        r#"policies[0].rules[0].when[0].key: unknown key "request.header[x]""#,
    );
    rejected(
        policy_with_rule(json!({"when": [{"key": "request.headers[]", "values": ["a"]}]})),
        "policies[0].rules[0].when[0].key",
    );
    rejected(
        policy_with_rule(json!({"when": [{"key": "request.headers[a][b]", "values": ["a"]}]})),
        "name one header",
    );
    rejected(
        policy_with_rule(json!({"when": [{"key": "request.auth.claims", "values": ["a"]}]})),
        "policies[0].rules[0].when[0].key",
    );
    rejected(
        policy_with_rule(json!({"when": [{"key": "request.headers[x]"}]})),
        "needs `values` or `not_values`",
    );
}

#[test]
fn empty_sources_operations_and_values_are_refused() {
    rejected(
        policy_with_rule(json!({"from": [{"source": {}}]})),
        "policies[0].rules[0].from[0].source: must set at least one field",
    );
    rejected(
        policy_with_rule(json!({"to": [{"operation": {}}]})),
        "policies[0].rules[0].to[0].operation: must set at least one field",
    );
    rejected(
        policy_with_rule(json!({"to": [{"operation": {"paths": [""]}}]})),
        "policies[0].rules[0].to[0].operation.paths[0]: must not be empty",
    );
}

#[test]
fn wildcards_only_at_the_ends_and_no_path_templates() {
    rejected(
        policy_with_rule(json!({"to": [{"operation": {"paths": ["/a/*/b"]}}]})),
        "policies[0].rules[0].to[0].operation.paths[0]: \"/a/*/b\": `*` may only stand alone",
    );
    rejected(
        policy_with_rule(json!({"to": [{"operation": {"paths": ["/a/{*}"]}}]})),
        "path templates",
    );
}

#[test]
fn policy_names_must_be_unique_and_present() {
    rejected(
        json!({"policies": [{"name": "a"}, {"name": "a"}]}),
        r#"policies[1].name: "a" is the name of an earlier policy"#,
    );
    rejected(
        json!({"policies": [{"name": ""}]}),
        "policies[0].name: must not be empty",
    );
}

#[test]
fn the_denied_status_must_be_an_http_status() {
    rejected(
        json!({"denied_status": 42}),
        "denied_status: 42 is not an HTTP status",
    );
}

#[test]
fn an_empty_stat_prefix_is_refused() {
    rejected(json!({"stat_prefix": ""}), "stat_prefix: must not be empty");
}

#[test]
fn a_full_configuration_is_accepted() {
    let config = json!({
        "denied_status": 403,
        "denied_body": "no",
        "xff_num_trusted_hops": 1,
        "stat_prefix": "authz",
        "policies": [{
            "name": "everything",
            "action": "ALLOW",
            "dry_run": false,
            "rules": [{
                "from": [{"source": {
                    "principals": ["td/ns/a/sa/b"], "not_principals": ["*/sa/x"],
                    "request_principals": ["iss/*"], "not_request_principals": ["iss/bad"],
                    "namespaces": ["a"], "not_namespaces": ["b"],
                    "ip_blocks": ["10.0.0.0/8"], "not_ip_blocks": ["10.1.0.0/16"],
                    "remote_ip_blocks": ["2001:db8::/32"], "not_remote_ip_blocks": ["2001:db8:1::/48"],
                }}],
                "to": [{"operation": {
                    "hosts": ["*.example"], "not_hosts": ["bad.example"],
                    "ports": ["80"], "not_ports": ["81"],
                    "methods": ["GET"], "not_methods": ["POST"],
                    "paths": ["/a*"], "not_paths": ["*.php"],
                }}],
                "when": [
                    {"key": "request.headers[x]", "values": ["1"]},
                    {"key": "source.ip", "values": ["10.0.0.0/8"]},
                    {"key": "remote.ip", "values": ["10.0.0.0/8"]},
                    {"key": "source.principal", "values": ["*"]},
                    {"key": "source.namespace", "values": ["a"]},
                    {"key": "request.auth.principal", "values": ["*"]},
                    {"key": "request.auth.audiences", "values": ["api"]},
                    {"key": "request.auth.presenter", "values": ["web"]},
                    {"key": "request.auth.claims[iss]", "values": ["i"]},
                    {"key": "request.auth.claims[a][b]", "not_values": ["c"]},
                    {"key": "destination.ip", "values": ["10.0.0.1"]},
                    {"key": "destination.port", "values": ["8080"]},
                    {"key": "connection.sni", "values": ["*.example"]},
                ],
            }],
        }],
    });
    let mut host = Harness::new(Authz::default());
    assert!(host.configure(&config.to_string()), "{:?}", host.logs());
}
