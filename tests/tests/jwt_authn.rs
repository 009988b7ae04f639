//! The `jwt-authn` shipped filter through the real proxy: the JWKS fetched
//! by callout from a JWKS server on loopback, a valid token reaching the
//! upstream as claim headers without the token, every attack answered 401
//! without reaching the upstream, a key rotation picked up without restart,
//! and the JWKS server down at start failing closed while the rest of the
//! proxy serves. The module comes from `scripts/build-filters.sh`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsa::pkcs8::EncodePublicKey;
use serde_json::{Value, json};
use wasp_e2e::jwt::{self, JwksServer, b64, claims, keys, sign_raw, token};
use wasp_e2e::{
    Client, Cluster, Config, FilterChain, Listener, Plugin, Resp, Route, Upstream, Wasp,
    filter_module, free_addr,
};

const ISSUER: &str = "https://idp.test";

/// The plugin configuration: one provider whose keys come from `jwks_cluster`.
fn authn_configuration() -> Value {
    json!({"providers": [{
        "issuer": ISSUER,
        "audiences": ["api"],
        "jwks_uri": "http://idp.test/.well-known/jwks.json",
        "jwks_cluster": "idp",
        "jwks_refresh": "1s",
        "output_claim_to_headers": [
            {"header": "x-jwt-sub", "claim": "sub"},
            {"header": "x-jwt-team", "claim": "groups.team"}
        ],
        "max_token_bytes": 4096
    }]})
}

/// `/` goes through jwt-authn to `app`; `/open/` goes to `app` with no filter.
fn config(listen: SocketAddr, upstream: SocketAddr, idp: SocketAddr) -> Config {
    let plugin =
        Plugin::new("jwt-authn", filter_module("jwt_authn")).configuration(authn_configuration());
    Config::new()
        .filter_chain(FilterChain::new("authn").plugin(plugin))
        .listener(
            Listener::new("main", listen)
                .route(Route::prefix("/open/").cluster("app"))
                .route(Route::prefix("/").filter_chain("authn").cluster("app")),
        )
        .cluster(Cluster::new("app").endpoint(upstream))
        .cluster(Cluster::new("idp").endpoint(idp))
}

async fn with_bearer(client: &Client, url: &str, token: &str) -> Resp {
    let value = format!("Bearer {token}");
    client
        .get_with(url, &[("authorization", &value)])
        .await
        .expect("request")
}

/// Polls until a request with `token` answers `status` (the JWKS is fetched
/// in the background); panics after `within`.
async fn wait_for_status(client: &Client, url: &str, token: &str, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let resp = with_bearer(client, url, token).await;
        if resp.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {} instead of {status}: {}",
            resp.status,
            resp.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_reaches_the_upstream_as_claim_headers_without_the_token() {
    let (listen, idp_addr) = (free_addr(), free_addr());
    let upstream = Upstream::start("app").await;
    let idp = JwksServer::start(idp_addr, &jwt::jwks(false)).await;
    let _wasp = Wasp::start(config(listen, upstream.addr, idp_addr)).await;
    let client = Client::http1();
    let url = format!("http://{listen}/data");
    let good = token("RS256", "rsa-1", &claims(ISSUER, "alice"));
    wait_for_status(&client, &url, &good, 200, Duration::from_secs(10)).await;
    assert!(idp.hits() >= 1);

    for (alg, kid) in [("RS256", "rsa-1"), ("ES256", "ec-1"), ("EdDSA", "ed-1")] {
        let t = token(alg, kid, &claims(ISSUER, "alice"));
        let resp = with_bearer(&client, &url, &t).await;
        assert_eq!(resp.status, 200, "{alg}: {}", resp.text());
        let echoed = resp.json();
        assert_eq!(echoed["headers"]["x-jwt-sub"], "alice");
        assert_eq!(echoed["headers"]["x-jwt-team"], "payments");
        assert!(
            echoed["headers"].get("authorization").is_none(),
            "token forwarded: {echoed}"
        );
    }
    // No token: passes (authorization decides), and forged claim headers are dropped.
    let resp = client
        .get_with(&url, &[("x-jwt-sub", "mallory")])
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.json()["headers"].get("x-jwt-sub").is_none());
}

/// Tokens an attacker might send, each with what it tries.
fn attacks() -> Vec<(&'static str, String)> {
    let now = jwt::now();
    let good = claims(ISSUER, "alice");
    let claims_text = good.to_string();
    let unsigned = |alg: &str| {
        let header = json!({"alg": alg, "typ": "JWT"}).to_string();
        format!(
            "{}.{}.",
            b64(header.as_bytes()),
            b64(claims_text.as_bytes())
        )
    };
    let pem = keys()
        .rsa
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let hs256_with_public_key = {
        use hmac::Mac;
        let header = json!({"alg": "HS256", "kid": "rsa-1"}).to_string();
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims_text.as_bytes()));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(pem.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    };
    let good_token = token("RS256", "rsa-1", &good);
    let (input, _) = good_token.rsplit_once('.').unwrap();
    let other_sig = token("RS256", "rsa-1", &claims(ISSUER, "mallory"));
    let bad_signature = format!("{input}.{}", other_sig.rsplit_once('.').unwrap().1);
    let mut expired = good.clone();
    expired["exp"] = json!(now - 3600);
    let mut early = good.clone();
    early["nbf"] = json!(now + 3600);
    let mut wrong_issuer = good.clone();
    wrong_issuer["iss"] = json!("https://evil.test");
    let mut wrong_audience = good.clone();
    wrong_audience["aud"] = json!("billing");
    let mut big = good.clone();
    big["pad"] = json!("x".repeat(5000));
    let attacker_jwk = jwt::rsa_jwk(&keys().rsa_next, "attacker");
    vec![
        ("alg none", unsigned("none")),
        ("alg NoNe", unsigned("NoNe")),
        (
            "HS256 with the RSA public key as secret",
            hs256_with_public_key,
        ),
        ("unknown kid", token("RS256", "rsa-2", &good)),
        ("bad signature", bad_signature),
        ("expired", token("RS256", "rsa-1", &expired)),
        ("not yet valid", token("RS256", "rsa-1", &early)),
        ("wrong issuer", token("RS256", "rsa-1", &wrong_issuer)),
        (
            "no common audience",
            token("RS256", "rsa-1", &wrong_audience),
        ),
        ("two segments", input.to_owned()),
        ("not base64url", format!("{input}.@@@")),
        (
            "duplicate members",
            sign_raw(
                "RS256",
                "rsa-1",
                r#"{"alg":"RS256","kid":"rsa-1","kid":"rsa-1"}"#,
                &claims_text,
            ),
        ),
        (
            "not an object",
            sign_raw(
                "RS256",
                "rsa-1",
                r#"{"alg":"RS256","kid":"rsa-1"}"#,
                "[1,2]",
            ),
        ),
        ("oversized", token("RS256", "rsa-1", &big)),
        (
            "unknown crit",
            sign_raw(
                "RS256",
                "rsa-1",
                r#"{"alg":"RS256","kid":"rsa-1","crit":["x"],"x":1}"#,
                &claims_text,
            ),
        ),
        (
            "embedded jwk",
            sign_raw(
                "RS256",
                "rsa-2",
                &json!({"alg": "RS256", "jwk": attacker_jwk}).to_string(),
                &claims_text,
            ),
        ),
        (
            "jku",
            sign_raw(
                "RS256",
                "rsa-2",
                &json!({"alg": "RS256", "jku": "http://evil.test/k"}).to_string(),
                &claims_text,
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_gets_401_and_never_reaches_the_upstream() {
    let (listen, idp_addr) = (free_addr(), free_addr());
    let upstream = Upstream::start("app").await;
    let idp = JwksServer::start(idp_addr, &jwt::jwks(false)).await;
    let wasp = Wasp::start(config(listen, upstream.addr, idp_addr)).await;
    let client = Client::http1();
    let url = format!("http://{listen}/data");
    let good = token("RS256", "rsa-1", &claims(ISSUER, "alice"));
    wait_for_status(&client, &url, &good, 200, Duration::from_secs(10)).await;
    let hits = upstream.hits();
    for (what, attack) in attacks() {
        let resp = with_bearer(&client, &url, &attack).await;
        assert_eq!(resp.status, 401, "{what}: {}", resp.text());
        let expected = format!("Bearer realm=\"http://{listen}/data\", error=\"invalid_token\"");
        assert_eq!(
            resp.header("www-authenticate"),
            Some(expected.as_str()),
            "{what}"
        );
    }
    // Two different tokens in one request.
    let value = format!("Bearer {good}");
    let other = token("ES256", "ec-1", &claims(ISSUER, "alice"));
    let resp = client
        .get_with(
            &format!("{url}?access_token={other}"),
            &[("authorization", &value)],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 401, "two tokens");
    assert_eq!(upstream.hits(), hits, "an attack reached the upstream");
    assert!(idp.hits() >= 1);
    let log = wasp.log();
    assert!(log.contains("rejected (alg_none)"), "{log}");
    assert!(log.contains("rejected (bad_signature)"));
    assert!(!log.contains(&good), "a token was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_picked_up_without_restart() {
    let (listen, idp_addr) = (free_addr(), free_addr());
    let upstream = Upstream::start("app").await;
    let idp = JwksServer::start(idp_addr, &jwt::jwks(false)).await;
    let _wasp = Wasp::start(config(listen, upstream.addr, idp_addr)).await;
    let client = Client::http1();
    let url = format!("http://{listen}/data");
    let old = token("RS256", "rsa-1", &claims(ISSUER, "alice"));
    wait_for_status(&client, &url, &old, 200, Duration::from_secs(10)).await;
    let rotated = token("RS256", "rsa-2", &claims(ISSUER, "alice"));
    assert_eq!(with_bearer(&client, &url, &rotated).await.status, 401);
    idp.set(&jwt::jwks(true));
    // jwks_refresh is 1 s: within a few refreshes the new kid verifies.
    wait_for_status(&client, &url, &rotated, 200, Duration::from_secs(5)).await;
    assert_eq!(with_bearer(&client, &url, &old).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_down_at_start_fails_closed_while_the_rest_of_the_proxy_serves() {
    let (listen, idp_addr) = (free_addr(), free_addr());
    let upstream = Upstream::start("app").await;
    let wasp = Wasp::start(config(listen, upstream.addr, idp_addr)).await;
    let client = Client::http1();
    let url = format!("http://{listen}/data");
    let good = token("RS256", "rsa-1", &claims(ISSUER, "alice"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..3 {
        let resp = with_bearer(&client, &url, &good).await;
        assert_eq!(resp.status, 401, "{}", resp.text());
    }
    assert_eq!(upstream.hits(), 0);
    let open = client
        .get(&format!("http://{listen}/open/x"))
        .await
        .unwrap();
    assert_eq!(open.status, 200);
    let no_token = client.get(&url).await.unwrap();
    assert_eq!(no_token.status, 200, "requests without a token pass");
    assert!(
        wasp.log().contains("rejected (jwks_unavailable)"),
        "{}",
        wasp.log()
    );
    // Once the JWKS server is up, the next retry brings the keys.
    let _idp = JwksServer::start(idp_addr, &jwt::jwks(false)).await;
    wait_for_status(&client, &url, &good, 200, Duration::from_secs(10)).await;
}
