//! The chain `jwt-authn → authz`, as operators deploy Istio's
//! RequestAuthentication and AuthorizationPolicy together: `/admin`
//! requires a verified principal (and a claim), `/public/` is open without a
//! token, and an invalid token is refused with 401 wherever it is sent. The
//! same two modules and configurations run in wasp and in Envoy 1.40 (V8)
//! and must answer a table of requests alike. The modules come from
//! `scripts/build-filters.sh`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use wasp_e2e::client::one_request;
use wasp_e2e::envoy::{Envoy, EnvoyConfig, WasmPlugin};
use wasp_e2e::jwt::{self, JwksServer, claims, token};
use wasp_e2e::{Upstream, Wasp, filter_module, free_addr};

const ISSUER: &str = "https://idp.test";

fn authn_configuration() -> Value {
    json!({"providers": [{
        "issuer": ISSUER,
        "audiences": ["api"],
        "jwks_uri": "http://idp.test/.well-known/jwks.json",
        "jwks_cluster": "idp",
        "jwks_refresh": "1m",
        "output_claim_to_headers": [{"header": "x-jwt-sub", "claim": "sub"}],
    }]})
}

/// `/public/` for anyone; `/admin` for alice of the payments team, whose
/// token the earlier filter verified.
fn authz_configuration() -> Value {
    json!({"policies": [
        {"name": "public", "action": "ALLOW", "rules": [
            {"to": [{"operation": {"paths": ["/public/*"]}}]},
        ]},
        {"name": "admins", "action": "ALLOW", "rules": [{
            "from": [{"source": {"request_principals": [format!("{ISSUER}/alice")]}}],
            "to": [{"operation": {"paths": ["/admin", "/admin/*"]}}],
            "when": [{"key": "request.auth.claims[groups][team]", "values": ["payments"]}],
        }]},
    ]})
}

/// One request: its status and the `x-jwt-sub` the upstream received.
async fn send(addr: SocketAddr, path: &str, bearer: Option<&str>) -> (u16, Option<String>) {
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("host", "chain.test")];
    headers.extend(authorization.as_deref().map(|v| ("authorization", v)));
    let resp = one_request(addr, "GET", path, &headers, Bytes::new()).await;
    let sub = serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|echo| echo["headers"]["x-jwt-sub"].as_str().map(str::to_owned));
    (resp.status, sub)
}

/// Waits until alice's token opens `/admin` (the JWKS is fetched on a tick).
async fn wait_for_keys(addr: SocketAddr, alice: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = send(addr, "/admin", Some(alice)).await;
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: alice never reached /admin (last status {status})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The requests of the table: what each is, path, token, expected status.
fn table() -> Vec<(&'static str, &'static str, Option<String>, u16)> {
    let alice = token("RS256", "rsa-1", &claims(ISSUER, "alice"));
    let bob = token("ES256", "ec-1", &claims(ISSUER, "bob"));
    let mut other_team = claims(ISSUER, "alice");
    other_team["groups"]["team"] = json!("marketing");
    let other_team = token("EdDSA", "ed-1", &other_team);
    let mut expired = claims(ISSUER, "alice");
    expired["exp"] = json!(jwt::now() - 3600);
    let expired = token("RS256", "rsa-1", &expired);
    let mut forged = alice.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    vec![
        ("public without a token", "/public/doc", None, 200),
        (
            "public with alice's token",
            "/public/doc",
            Some(alice.clone()),
            200,
        ),
        (
            "public with an expired token",
            "/public/doc",
            Some(expired.clone()),
            401,
        ),
        ("admin without a token", "/admin", None, 403),
        ("admin as alice", "/admin", Some(alice.clone()), 200),
        (
            "admin subpath as alice",
            "/admin/users",
            Some(alice.clone()),
            200,
        ),
        ("admin as bob", "/admin", Some(bob), 403),
        (
            "admin as alice of another team",
            "/admin",
            Some(other_team),
            403,
        ),
        ("admin with an expired token", "/admin", Some(expired), 401),
        ("admin with a forged signature", "/admin", Some(forged), 401),
        ("elsewhere as alice", "/private", Some(alice), 403),
        ("elsewhere without a token", "/private", None, 403),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_needs_a_verified_principal_and_public_needs_no_token_in_wasp_and_envoy() {
    let upstream = Upstream::start("app").await;
    let idp_addr = free_addr();
    let _idp = JwksServer::start(idp_addr, &jwt::jwks(false)).await;
    let config = EnvoyConfig::new(upstream.addr)
        .plugin(WasmPlugin::new(
            "jwt-authn",
            filter_module("jwt_authn"),
            &authn_configuration().to_string(),
        ))
        .plugin(WasmPlugin::new(
            "authz",
            filter_module("wasp_authz"),
            &authz_configuration().to_string(),
        ))
        .cluster("idp", idp_addr);
    let wasp_addr = free_addr();
    let _wasp = Wasp::start(&config.to_wasp_yaml(wasp_addr)).await;
    let alice = token("RS256", "rsa-1", &claims(ISSUER, "alice"));
    wait_for_keys(wasp_addr, &alice).await;

    for (what, path, bearer, expected) in table() {
        let (status, sub) = send(wasp_addr, path, bearer.as_deref()).await;
        assert_eq!(status, expected, "wasp: {what}");
        if status == 200 && bearer.is_some() {
            assert_eq!(sub.as_deref(), Some("alice"), "wasp: {what}: claim header");
        }
    }
    let before = upstream.hits();
    send(wasp_addr, "/admin", None).await;
    assert_eq!(
        upstream.hits(),
        before,
        "a denied request reached the upstream"
    );

    let envoy = match Envoy::start(&config).await {
        Ok(envoy) => envoy,
        Err(e) => panic!("starting Envoy: {e:#}"),
    };
    wait_for_keys(envoy.addr(), &alice).await;
    for (what, path, bearer, _) in table() {
        let (envoy_status, _) = send(envoy.addr(), path, bearer.as_deref()).await;
        let (wasp_status, _) = send(wasp_addr, path, bearer.as_deref()).await;
        assert_eq!(envoy_status, wasp_status, "{what}\n{}", envoy.logs());
    }
}
