//! Fetched key sets (callout from the root context, shared data, refresh,
//! refetch on an unknown `kid` at most every 30 s, fail closed), the RFC
//! test vectors, and configuration errors that name the field.

mod common;

use common::*;
use jwt_authn::jwk::{KeySet, Source};
use jwt_authn::token::Alg;
use serde_json::json;
use std::time::Duration;
use wasp_filter_sdk::testing::Harness;

fn fetched_config(refresh: &str) -> String {
    json!({"providers": [{
        "issuer": ISSUER,
        "jwks_uri": "http://keys.test:8080/.well-known/jwks.json",
        "jwks_cluster": "idp",
        "jwks_refresh": refresh,
    }]})
    .to_string()
}

fn answer(host: &mut Harness, token: u32, status: u16, jwks: &serde_json::Value) {
    host.respond_http_call(token, status, &[], jwks.to_string().as_bytes());
}

#[test]
fn the_jwks_is_fetched_from_the_root_context_and_tokens_fail_closed_until_then() {
    let mut host = host(&fetched_config("5m"));
    assert_rejected(&mut host, &good_token(), "jwks_unavailable");
    host.advance(Duration::from_secs(1));
    let calls = host.http_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].cluster, "idp");
    assert_eq!(calls[0].header(":path"), Some("/.well-known/jwks.json"));
    assert_eq!(calls[0].header(":authority"), Some("keys.test:8080"));
    answer(&mut host, calls[0].token, 200, &all_jwks());
    assert_eq!(host.callout_deliveries(calls[0].token), vec![1]);
    assert_eq!(
        status(&bearer(&mut host, &good_token())),
        200,
        "{:?}",
        host.logs()
    );
    assert_eq!(counter(&host, "jwt_authn_jwks_fetched_total"), 1);
    // Fetched sets never supply HMAC secrets.
    let t = token("HS256", Some("oct"), Signer::Hmac(&keys().hmac), &claims());
    assert_rejected(&mut host, &t, "unknown_kid");
}

#[test]
fn a_failed_fetch_is_retried_and_keeps_failing_closed() {
    let mut host = host(&fetched_config("5m"));
    host.advance(Duration::from_secs(1));
    let first = host.http_calls()[0].token;
    host.fail_http_call(first);
    assert_eq!(counter(&host, "jwt_authn_jwks_fetch_failed_total"), 1);
    assert!(host.logged(wasp_filter_sdk::LogLevel::Warn, "fetching the JWKS"));
    assert_rejected(&mut host, &good_token(), "jwks_unavailable");
    host.advance(Duration::from_secs(20));
    assert_eq!(host.http_calls().len(), 1, "retried before 30 s");
    host.advance(Duration::from_secs(11));
    let calls = host.http_calls();
    assert_eq!(calls.len(), 2);
    answer(&mut host, calls[1].token, 503, &json!({}));
    assert_rejected(&mut host, &good_token(), "jwks_unavailable");
    host.advance(Duration::from_secs(31));
    let calls = host.http_calls();
    answer(&mut host, calls[2].token, 200, &all_jwks());
    assert_eq!(status(&bearer(&mut host, &good_token())), 200);
}

#[test]
fn the_jwks_is_refreshed_and_a_new_kid_is_picked_up() {
    let mut host = host(&fetched_config("10s"));
    host.advance(Duration::from_secs(1));
    let calls = host.http_calls();
    answer(
        &mut host,
        calls[0].token,
        200,
        &json!({"keys": [rsa_jwk(&keys().rsa, "old")]}),
    );
    let rotated = token("RS256", Some("new"), Signer::Rsa(&keys().rsa), &claims());
    assert_rejected(&mut host, &rotated, "unknown_kid");
    host.advance(Duration::from_secs(10));
    let calls = host.http_calls();
    assert_eq!(calls.len(), 2, "no refresh after jwks_refresh");
    answer(
        &mut host,
        calls[1].token,
        200,
        &json!({"keys": [rsa_jwk(&keys().rsa, "new")]}),
    );
    assert_eq!(status(&bearer(&mut host, &rotated)), 200);
}

#[test]
fn an_unknown_kid_triggers_a_fetch_at_most_every_30_seconds() {
    let mut host = host(&fetched_config("1h"));
    host.advance(Duration::from_secs(1));
    let calls = host.http_calls();
    answer(
        &mut host,
        calls[0].token,
        200,
        &json!({"keys": [rsa_jwk(&keys().rsa, "old")]}),
    );
    let rotated = token("RS256", Some("new"), Signer::Rsa(&keys().rsa), &claims());
    // Within 30 s of the last fetch: no new fetch.
    host.advance(Duration::from_secs(5));
    assert_rejected(&mut host, &rotated, "unknown_kid");
    host.advance(Duration::from_secs(2));
    assert_eq!(host.http_calls().len(), 1);
    host.advance(Duration::from_secs(24));
    let calls = host.http_calls();
    assert_eq!(calls.len(), 2, "the unknown kid did not trigger a fetch");
    answer(
        &mut host,
        calls[1].token,
        200,
        &json!({"keys": [rsa_jwk(&keys().rsa, "new")]}),
    );
    assert_eq!(status(&bearer(&mut host, &rotated)), 200);
    // Without unknown kids, nothing more until the refresh.
    host.advance(Duration::from_secs(60));
    assert_eq!(host.http_calls().len(), 2);
}

#[test]
fn a_set_fetched_by_another_vm_is_used_without_fetching() {
    let mut host = host(&fetched_config("5m"));
    let mut stored = (NOW * 1000).to_le_bytes().to_vec();
    stored.extend_from_slice(all_jwks().to_string().as_bytes());
    host.set_shared_data(
        "jwt_authn.jwks.idp.http://keys.test:8080/.well-known/jwks.json",
        &stored,
    );
    host.set_shared_data(
        "jwt_authn.jwks.idp.http://keys.test:8080/.well-known/jwks.json.attempt",
        &(NOW * 1000).to_le_bytes(),
    );
    assert_eq!(
        status(&bearer(&mut host, &good_token())),
        200,
        "{:?}",
        host.logs()
    );
    host.advance(Duration::from_secs(2));
    assert!(host.http_calls().is_empty());
}

#[test]
fn rfc7515_appendix_a_examples_verify() {
    // A.1 (HS256), A.2 (RS256), A.3 (ES256): the payload is
    // {"iss":"joe","exp":1300819380,"http://example.com/is_root":true}.
    const PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    let a1 = format!(
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.{PAYLOAD}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    );
    let a2 = format!(
        "eyJhbGciOiJSUzI1NiJ9.{PAYLOAD}.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
    );
    let a3 = format!(
        "eyJhbGciOiJFUzI1NiJ9.{PAYLOAD}.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
    );
    let jwks = json!({"keys": [
        {"kty": "oct", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"},
        {"kty": "RSA", "e": "AQAB", "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"},
        {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
    ]});
    let config = json!({"providers": [{"issuer": "joe", "jwks": jwks.to_string()}]}).to_string();
    let mut host = host_at(&config, Duration::from_secs(1_300_819_300));
    for t in [&a1, &a2, &a3] {
        assert_eq!(status(&bearer(&mut host, t)), 200, "{:?}", host.logs());
    }
    // A bit flipped in each signature.
    for t in [&a1, &a2, &a3] {
        let flipped = format!(
            "{}{}",
            &t[..t.len() - 2],
            if t.ends_with('A') { "BA" } else { "AA" }
        );
        assert_eq!(status(&bearer(&mut host, &flipped)), 401);
    }
    // At the tests' clock the examples have long expired.
    let mut host = common::host(&config);
    assert_rejected(&mut host, &a1, "expired");
}

#[test]
fn rfc8037_ed25519_example_verifies() {
    // RFC 8037 appendix A.2 (public key) and A.4 (signature of "Example of Ed25519 signing").
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]});
    let set = KeySet::parse(&jwks.to_string(), Source::Inline).unwrap();
    let input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let signature = jwt_authn::token::decode(
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
    )
    .unwrap();
    let key = &set.keys[0].material;
    assert!(jwt_authn::verify::check(Alg::EdDsa, key, input, &signature));
    assert!(!jwt_authn::verify::check(
        Alg::EdDsa,
        key,
        b"eyJhbGciOiJFZERTQSJ9.x",
        &signature
    ));
    // As a JWT it is malformed: its payload is text, not a claims object.
    let config = json!({"providers": [{"issuer": "x", "jwks": jwks.to_string()}]}).to_string();
    let mut host = host(&config);
    let t = format!(
        "{}.{}",
        std::str::from_utf8(input).unwrap(),
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    );
    assert_rejected(&mut host, &t, "malformed");
}

#[test]
fn bad_configurations_fail_naming_the_field() {
    let cases = [
        (
            json!({"providers": [{"issuer": "a", "jwks": "{}", "typo": 1}]}),
            "providers[0].typo: unknown field `typo`",
        ),
        (
            json!({"providers": [{"issuer": "a", "jwks": all_jwks().to_string(), "clock_skew": "soon"}]}),
            "providers[0].clock_skew",
        ),
        (
            json!({"providers": [{"issuer": "a", "jwks": all_jwks().to_string(), "max_token_bytes": "big"}]}),
            "providers[0].max_token_bytes",
        ),
        (
            json!({"providers": [{"issuer": "a"}]}),
            "providers[0].jwks: one of jwks or jwks_uri",
        ),
        (
            json!({"providers": [{"issuer": "a", "jwks_uri": "http://k/j"}]}),
            "providers[0].jwks_cluster",
        ),
        (
            json!({"providers": [{"issuer": "a", "jwks_uri": "ftp://k/j", "jwks_cluster": "c"}]}),
            "providers[0].jwks_uri",
        ),
        (
            json!({"providers": [{"issuer": "a", "jwks": "[1]"}]}),
            "providers[0].jwks: not a JWK Set",
        ),
        (
            json!({"providers": [{"issuer": "a", "jwks": r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#}]}),
            "providers[0].jwks: holds no usable key",
        ),
        (
            json!({"providers": [{"issuer": "a", "jwks": all_jwks().to_string(), "from_headers": [{"name": "x", "prefx": "y"}]}]}),
            "providers[0].from_headers[0].prefx: unknown field `prefx`",
        ),
        (json!({"providers": []}), "providers: at least one"),
        (
            json!({"providers": [{"issuer": "a", "jwks": all_jwks().to_string()}], "requir": true}),
            "requir: unknown field `requir`",
        ),
    ];
    for (config, needle) in cases {
        let mut host = Harness::new(jwt_authn::Root::default());
        assert!(!host.configure(&config.to_string()), "accepted {config}");
        assert!(
            host.logged(wasp_filter_sdk::LogLevel::Error, needle),
            "no `{needle}` in {:?}",
            host.logs()
        );
    }
}
