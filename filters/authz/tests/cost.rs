//! Evaluation cost for a realistic policy set (10 policies, 50 rules mixing
//! sources, operations and conditions), printed, not asserted:
//!
//!     cargo test --release -p wasp-authz --test cost -- --ignored --nocapture
//!
//! Two figures per request mix: the engine alone over an in-memory host
//! (the matching itself), and the whole filter on the SDK's mock host
//! (plus header and property reads, metrics and logs through the ABI
//! layer; on a real proxy these are host calls into wasp or Envoy).

mod common;

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Value, json};
use wasp_authz::{Config, Engine, Host, Request, compile};

/// 10 policies of 5 rules each: 3 DENY, 6 ALLOW, 1 AUDIT.
fn policy_set() -> Value {
    let mut policies = Vec::new();
    for p in 0..10 {
        let action = match p {
            0..=2 => "DENY",
            9 => "AUDIT",
            _ => "ALLOW",
        };
        let rules: Vec<Value> = (0..5)
            .map(|r| {
                json!({
                    "from": [
                        {"source": {"ip_blocks": [format!("10.{p}.{r}.0/24"), "192.168.0.0/16"], "not_ip_blocks": ["192.168.99.0/24"]}},
                        {"source": {"request_principals": [format!("https://issuer{p}.example/*")]}},
                    ],
                    "to": [{"operation": {
                        "hosts": [format!("svc{p}.example"), "*.internal"],
                        "methods": ["GET", "POST"],
                        "paths": [format!("/api/v{r}/*"), "*.json"],
                        "not_paths": ["/api/admin*"],
                    }}],
                    "when": [
                        {"key": "request.headers[x-tenant]", "values": [format!("tenant-{p}"), "shared*"]},
                        {"key": "request.auth.claims[groups]", "not_values": [format!("banned-{r}")]},
                    ],
                })
            })
            .collect();
        policies.push(json!({"name": format!("policy-{p}"), "action": action, "rules": rules}));
    }
    json!({ "policies": policies })
}

/// `destination.port` 8080 as hosts encode integers.
const PORT_8080: [u8; 8] = 8080u64.to_le_bytes();

/// An in-memory host: headers and properties of one request.
struct MapHost {
    headers: HashMap<&'static str, &'static str>,
    properties: HashMap<&'static str, &'static [u8]>,
}

impl Host for MapHost {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_string())
    }
    fn attribute(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties
            .get(path.join(".").as_str())
            .map(|v| v.to_vec())
    }
    fn filter_state(&self, name: &str) -> Option<Vec<u8>> {
        self.properties.get(name).map(|v| v.to_vec())
    }
}

fn map_host(
    authority: &'static str,
    path: &'static str,
    tenant: &'static str,
    source: &'static [u8],
) -> MapHost {
    MapHost {
        headers: HashMap::from([
            (":method", "GET"),
            (":path", path),
            (":authority", authority),
            ("x-tenant", tenant),
        ]),
        properties: HashMap::from([
            ("source.address", source),
            ("destination.port", &PORT_8080[..]),
            (
                "request.auth.principal",
                &b"https://issuer7.example/alice"[..],
            ),
            ("request.auth.claims", &br#"{"groups":["dev","ops"]}"#[..]),
        ]),
    }
}

#[test]
#[ignore = "prints figures; run with --release --ignored --nocapture"]
fn evaluation_cost_for_ten_policies_and_fifty_rules() {
    let config: Config = serde_json::from_value(policy_set()).unwrap();
    let policies = compile(&config).unwrap();
    let rules: usize = policies.iter().map(|p| p.rules.len()).sum();
    assert_eq!((policies.len(), rules), (10, 50));
    let engine = Engine::new(policies);
    let mixes = [
        (
            "allowed by the 5th ALLOW policy",
            map_host(
                "svc7.example",
                "/api/v4/items",
                "tenant-7",
                b"10.7.4.9:4000",
            ),
        ),
        (
            "denied: no ALLOW matches (every rule tried)",
            map_host("svc7.example", "/nowhere", "nobody", b"172.16.0.1:4000"),
        ),
        (
            "denied by the first DENY policy",
            map_host(
                "svc0.example",
                "/api/v0/x.json",
                "tenant-0",
                b"10.0.0.1:4000",
            ),
        ),
    ];
    const ROUNDS: u32 = 200_000;
    for (what, host) in &mixes {
        let start = Instant::now();
        for _ in 0..ROUNDS {
            let request = Request::new(host, 0);
            std::hint::black_box(engine.evaluate(&request));
        }
        let verdict = engine.evaluate(&Request::new(host, 0));
        let ns = start.elapsed().as_nanos() / u128::from(ROUNDS);
        eprintln!("  ({what}: {:?})", verdict.enforced);
        eprintln!("engine, {what}: {ns} ns/request");
    }

    let mut harness = common::host(policy_set());
    let request = common::req()
        .host("svc7.example")
        .path("/api/v4/items")
        .header("x-tenant", "tenant-7")
        .from("10.7.4.9:4000");
    const FILTER_ROUNDS: u32 = 20_000;
    let start = Instant::now();
    for _ in 0..FILTER_ROUNDS {
        std::hint::black_box(common::send(&mut harness, &request));
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(FILTER_ROUNDS);
    eprintln!("whole filter on the mock host (incl. stream setup), allowed: {us:.2} µs/request");
}
