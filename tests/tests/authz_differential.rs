//! The authz filter side by side in Envoy 1.40 (V8) and in wasp: the same
//! modules (`auth-properties`, which publishes `request.auth.*` from
//! `x-test-auth-*` headers, then `authz`), the same policies, and a table
//! of requests on which both proxies must give the status the table
//! expects, and the same body. Uses the Envoy harness of
//! `wasp_e2e::envoy`, as `envoy_differential.rs` does.

use std::net::SocketAddr;

use bytes::Bytes;
use serde_json::json;
use wasp_e2e::client::one_request;
use wasp_e2e::envoy::{Envoy, EnvoyConfig, WasmPlugin};
use wasp_e2e::{ChunkedEcho, Wasp, filter_module, free_addr};

/// One request of the table and the status it must get.
struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    host: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    status: u16,
}

fn case(what: &'static str, method: &'static str, path: &'static str, status: u16) -> Case {
    Case {
        what,
        method,
        path,
        host: "differential.test",
        headers: Vec::new(),
        status,
    }
}

impl Case {
    fn host(mut self, host: &'static str) -> Case {
        self.host = host;
        self
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Case {
        self.headers.push((name, value));
        self
    }
}

/// Status and body of one request on a fresh HTTP/1.1 connection.
async fn send(addr: SocketAddr, case: &Case) -> (u16, String) {
    let mut headers = vec![("host", case.host)];
    headers.extend(case.headers.iter().copied());
    let resp = one_request(addr, case.method, case.path, &headers, Bytes::new()).await;
    (resp.status, resp.text())
}

fn policies() -> serde_json::Value {
    json!({"policies": [
        {"name": "deny-delete", "action": "DENY", "rules": [
            {"to": [{"operation": {"methods": ["DELETE"]}}]},
        ]},
        {"name": "deny-blocked", "action": "DENY", "rules": [
            {"when": [{"key": "request.headers[x-block]", "values": ["yes"]}]},
        ]},
        {"name": "deny-foreign", "action": "DENY", "rules": [
            {"from": [{"source": {"not_remote_ip_blocks": ["127.0.0.0/8", "::1"]}}]},
        ]},
        {"name": "watch", "action": "AUDIT", "rules": [{}]},
        {"name": "would-deny-all", "action": "DENY", "dry_run": true, "rules": [{}]},
        {"name": "loopback-reads", "action": "ALLOW", "rules": [{
            "from": [{"source": {"ip_blocks": ["127.0.0.0/8"]}}],
            "to": [{"operation": {"methods": ["GET", "HEAD"], "paths": ["/public/*", "*.css", "/exact"]}}],
        }]},
        {"name": "internal-writes", "action": "ALLOW", "rules": [{
            "to": [{"operation": {"hosts": ["*.internal"], "methods": ["POST"]}}],
        }]},
        {"name": "admins", "action": "ALLOW", "rules": [{
            "from": [{"source": {"request_principals": ["https://issuer.example/*"]}}],
            "when": [
                {"key": "request.auth.claims[groups]", "values": ["admin"]},
                {"key": "request.auth.claims[org][tier]", "not_values": ["free"]},
                {"key": "request.auth.audiences", "values": ["api"]},
            ],
        }]},
    ]})
}

fn table() -> Vec<Case> {
    let principal = ("x-test-auth-principal", "https://issuer.example/alice");
    let audiences = ("x-test-auth-audiences", r#"["api"]"#);
    let admin = (
        "x-test-auth-claims",
        r#"{"groups":["dev","admin"],"org":{"tier":"gold"}}"#,
    );
    let jwt = |what, claims: (&'static str, &'static str), status| {
        case(what, "GET", "/admin", status)
            .header(principal.0, principal.1)
            .header(audiences.0, audiences.1)
            .header(claims.0, claims.1)
    };
    vec![
        case("allowed prefix path", "GET", "/public/a", 200),
        case("allowed suffix path", "HEAD", "/style/site.css", 200),
        case("exact path, query ignored", "GET", "/exact?page=2", 200),
        case("no ALLOW policy matches", "GET", "/private", 403),
        case("method outside the rule", "PUT", "/public/a", 403),
        case("DENY on the method wins", "DELETE", "/public/a", 403),
        case("DENY on a header wins", "GET", "/public/a", 403).header("x-block", "yes"),
        case("header with another value", "GET", "/public/a", 200).header("x-block", "no"),
        case("host suffix, any case", "POST", "/x", 200).host("API.internal"),
        case("host outside the rule", "POST", "/x", 403).host("api.external"),
        jwt("claims of an admin", admin, 200),
        jwt(
            "nested claim excluded",
            (
                "x-test-auth-claims",
                r#"{"groups":["admin"],"org":{"tier":"free"}}"#,
            ),
            403,
        ),
        jwt(
            "list claim without admin",
            ("x-test-auth-claims", r#"{"groups":["dev"]}"#),
            403,
        ),
        case("other issuer", "GET", "/admin", 403)
            .header(principal.0, "https://other.example/alice")
            .header(audiences.0, audiences.1)
            .header(admin.0, admin.1),
        case("no audience", "GET", "/admin", 403)
            .header(principal.0, principal.1)
            .header(admin.0, admin.1),
        case("no token", "GET", "/admin", 403),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_and_wasp_agree_on_a_table_of_requests() {
    let upstream = ChunkedEcho::start().await;
    let config = EnvoyConfig::new(upstream.addr)
        .plugin(WasmPlugin::new(
            "auth",
            filter_module("auth_properties"),
            "",
        ))
        .plugin(WasmPlugin::new(
            "authz",
            filter_module("wasp_authz"),
            &policies().to_string(),
        ));
    let envoy = match Envoy::start(&config).await {
        Ok(envoy) => envoy,
        Err(e) => panic!("starting Envoy: {e:#}"),
    };
    let wasp_addr = free_addr();
    let _wasp = Wasp::start(&config.to_wasp_yaml(wasp_addr)).await;

    let mut disagreements = Vec::new();
    for case in table() {
        let (envoy_status, envoy_body) = send(envoy.addr(), &case).await;
        let (wasp_status, wasp_body) = send(wasp_addr, &case).await;
        if envoy_status != case.status || wasp_status != case.status {
            disagreements.push(format!(
                "{}: {} {} expected {}, envoy {envoy_status}, wasp {wasp_status}",
                case.what, case.method, case.path, case.status
            ));
        }
        if case.status == 403 && (envoy_body != wasp_body || wasp_body != "RBAC: access denied") {
            disagreements.push(format!(
                "{}: bodies differ: envoy {envoy_body:?}, wasp {wasp_body:?}",
                case.what
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// A configuration authz rejects keeps both proxies from starting, and both
/// logs name the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_and_wasp_both_refuse_a_bad_cidr() {
    let upstream = ChunkedEcho::start().await;
    let bad = json!({"policies": [{"name": "p", "rules": [
        {"from": [{"source": {"remote_ip_blocks": ["300.0.0.0/8"]}}]},
    ]}]});
    let config = EnvoyConfig::new(upstream.addr).plugin(WasmPlugin::new(
        "authz",
        filter_module("wasp_authz"),
        &bad.to_string(),
    ));
    let field = "policies[0].rules[0].from[0].source.remote_ip_blocks[0]";
    let error = match Envoy::start(&config).await {
        Ok(_) => panic!("Envoy accepted a configuration authz rejects"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains(field), "{error}");
    let mut wasp = Wasp::spawn(config.to_wasp_yaml(free_addr()));
    let status = wasp
        .wait_exit(std::time::Duration::from_secs(30))
        .await
        .expect("wasp should exit on a rejected plugin configuration");
    assert!(!status.success());
    assert!(wasp.log().contains(field), "{}", wasp.log());
}
