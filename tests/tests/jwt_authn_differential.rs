//! Differential test of the `jwt-authn` filter: the same module and
//! configuration in Envoy 1.40 (V8) and in wasp, the JWKS fetched by both
//! from the same JWKS server, and a table of tokens: both proxies must
//! answer each with the same status (and the same `www-authenticate` on
//! refusals). The module comes from `scripts/build-filters.sh`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use wasp_e2e::client::one_request;
use wasp_e2e::envoy::{Envoy, EnvoyConfig, WasmPlugin};
use wasp_e2e::jwt::{self, JwksServer, b64, claims, sign_raw, token};
use wasp_e2e::{Upstream, Wasp, filter_module, free_addr};

const ISSUER: &str = "https://idp.test";

/// Status and `www-authenticate` of one request with `authorization`.
async fn send(addr: SocketAddr, authorization: Option<&str>) -> (u16, Option<String>) {
    let mut headers = vec![("host", "differential.test")];
    headers.extend(authorization.map(|v| ("authorization", v)));
    let resp = one_request(addr, "GET", "/data", &headers, Bytes::new()).await;
    let challenge = resp.header("www-authenticate").map(str::to_owned);
    (resp.status, challenge)
}

/// Waits until a valid token passes on `addr` (the JWKS is fetched on a tick).
async fn wait_for_keys(addr: SocketAddr, valid: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let value = format!("Bearer {valid}");
    while send(addr, Some(&value)).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "{addr}: the JWKS was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tokens of the table, each named.
fn table() -> Vec<(&'static str, Option<String>)> {
    let good = claims(ISSUER, "alice");
    let text = good.to_string();
    let with = |key: &str, value: serde_json::Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let valid = token("RS256", "rsa-1", &good);
    let (input, _) = valid.rsplit_once('.').unwrap();
    let unsigned = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(text.as_bytes()));
    let other = token("RS256", "rsa-1", &claims(ISSUER, "mallory"));
    vec![
        ("valid RS256", Some(valid.clone())),
        ("valid ES256", Some(token("ES256", "ec-1", &good))),
        ("valid EdDSA", Some(token("EdDSA", "ed-1", &good))),
        ("no token", None),
        ("alg none", Some(unsigned)),
        ("unknown kid", Some(token("RS256", "rsa-2", &good))),
        (
            "bad signature",
            Some(format!("{input}.{}", other.rsplit_once('.').unwrap().1)),
        ),
        (
            "expired",
            Some(token(
                "RS256",
                "rsa-1",
                &with("exp", json!(jwt::now() - 3600)),
            )),
        ),
        (
            "not yet valid",
            Some(token(
                "RS256",
                "rsa-1",
                &with("nbf", json!(jwt::now() + 3600)),
            )),
        ),
        (
            "wrong issuer",
            Some(token(
                "RS256",
                "rsa-1",
                &with("iss", json!("https://evil.test")),
            )),
        ),
        (
            "wrong audience",
            Some(token("RS256", "rsa-1", &with("aud", json!("billing")))),
        ),
        ("two segments", Some(input.to_owned())),
        ("not base64url", Some(format!("{input}.@@@"))),
        (
            "not an object",
            Some(sign_raw(
                "RS256",
                "rsa-1",
                r#"{"alg":"RS256","kid":"rsa-1"}"#,
                "[1]",
            )),
        ),
        (
            "unknown crit",
            Some(sign_raw(
                "RS256",
                "rsa-1",
                r#"{"alg":"RS256","kid":"rsa-1","crit":["x"],"x":1}"#,
                &text,
            )),
        ),
        (
            "oversized",
            Some(token(
                "RS256",
                "rsa-1",
                &with("pad", json!("x".repeat(10_000))),
            )),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_and_wasp_agree_on_a_table_of_tokens() {
    let upstream = Upstream::start("app").await;
    let idp_addr = free_addr();
    let idp = JwksServer::start(idp_addr, &jwt::jwks(false)).await;
    let configuration = json!({"providers": [{
        "issuer": ISSUER,
        "audiences": ["api"],
        "jwks_uri": "http://idp.test/.well-known/jwks.json",
        "jwks_cluster": "idp",
        "jwks_refresh": "1m",
    }]})
    .to_string();
    let config = EnvoyConfig::new(upstream.addr)
        .plugin(WasmPlugin::new(
            "jwt-authn",
            filter_module("jwt_authn"),
            &configuration,
        ))
        .cluster("idp", idp_addr);
    let envoy = match Envoy::start(&config).await {
        Ok(envoy) => envoy,
        Err(e) => panic!("starting Envoy: {e:#}"),
    };
    let wasp_addr = free_addr();
    let _wasp = Wasp::start(&config.to_wasp_yaml(wasp_addr)).await;
    let valid = token("RS256", "rsa-1", &claims(ISSUER, "alice"));
    wait_for_keys(envoy.addr(), &valid).await;
    wait_for_keys(wasp_addr, &valid).await;
    assert!(idp.hits() >= 2, "both proxies fetch the JWKS");

    for (what, bearer) in table() {
        let value = bearer.map(|t| format!("Bearer {t}"));
        let (envoy_status, envoy_challenge) = send(envoy.addr(), value.as_deref()).await;
        let (wasp_status, wasp_challenge) = send(wasp_addr, value.as_deref()).await;
        assert_eq!(
            envoy_status,
            wasp_status,
            "{what}: status\n{}",
            envoy.logs()
        );
        assert_eq!(envoy_challenge, wasp_challenge, "{what}: www-authenticate");
        let expected = if what.starts_with("valid") || what == "no token" {
            200
        } else {
            401
        };
        assert_eq!(wasp_status, expected, "{what}");
    }
}
