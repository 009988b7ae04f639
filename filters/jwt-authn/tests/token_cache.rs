//! The verified-token cache (`jwt_cache_size`, `jwt_cache_max_token_bytes`):
//! a token served from it is admitted exactly as a freshly verified one, and
//! what changes between requests (the clock against `exp` and `nbf`, where
//! the token was found) is checked every time.

mod common;

use common::*;
use jwt_authn::Root;
use serde_json::json;
use std::time::Duration;
use wasp_filter_sdk::testing::Harness;

#[test]
fn a_cached_token_is_admitted_exactly_as_a_verified_one() {
    let extra = json!({
        "output_claim_to_headers": [{"header": "x-jwt-role", "claim": "realm.role"}],
        "output_payload_to_header": "x-jwt-payload"
    });
    let mut host = host(&config(extra));
    let token = good_token();
    for round in ["verified", "cached"] {
        let stream = bearer(&mut host, &token);
        assert_eq!(status(&stream), 200, "{round}: {:?}", host.logs());
        assert_eq!(
            stream.request_header("x-jwt-role").as_deref(),
            Some("admin"),
            "{round}"
        );
        assert_eq!(
            stream.request_header("x-jwt-payload").as_deref(),
            token.split('.').nth(1),
            "{round}"
        );
        assert_eq!(stream.request_header("authorization"), None, "{round}");
        let principal = host.property(&["request.auth.principal"]);
        assert_eq!(
            principal.as_deref(),
            Some(&b"https://issuer.test/alice"[..]),
            "{round}"
        );
        let audiences = host.property(&["request.auth.audiences"]);
        assert_eq!(
            audiences.as_deref(),
            Some(&br#"["api","other"]"#[..]),
            "{round}"
        );
    }
    assert_eq!(counter(&host, "jwt_authn_allowed_total"), 2);
}

#[test]
fn an_expired_cached_token_is_rejected_and_stays_rejected() {
    let mut host = host(&config(json!({"clock_skew": "30s"})));
    let token = good_token();
    assert_eq!(status(&bearer(&mut host, &token)), 200);
    // `exp` is NOW + 600: within the skew it still passes from the cache.
    host.advance(Duration::from_secs(620));
    assert_eq!(status(&bearer(&mut host, &token)), 200, "within the skew");
    host.advance(Duration::from_secs(11));
    assert_rejected(&mut host, &token, "expired");
    assert_rejected(&mut host, &token, "expired");
}

#[test]
fn a_cached_token_passes_once_its_nbf_is_reached() {
    let mut host = host(&config(json!({"clock_skew": "0s"})));
    let mut claims = claims();
    claims["nbf"] = json!(NOW + 100);
    let t = token("ES256", Some("p256"), Signer::P256, &claims);
    assert_rejected(&mut host, &t, "not_yet_valid");
    assert_rejected(&mut host, &t, "not_yet_valid");
    host.advance(Duration::from_secs(100));
    assert_eq!(status(&bearer(&mut host, &t)), 200, "{:?}", host.logs());
}

#[test]
fn a_cached_token_found_where_its_provider_does_not_read_is_refused() {
    let other = json!({"issuer": "https://other.test", "from_params": ["access_token"],
                       "jwks": json!({"keys": [ed_jwk("ed")]}).to_string()});
    let mut config: serde_json::Value = serde_json::from_str(&config(json!({
        "from_headers": [{"name": "authorization", "prefix": "Bearer "}]
    })))
    .unwrap();
    config["providers"].as_array_mut().unwrap().push(other);
    let mut host = host(&config.to_string());
    let token = good_token();
    assert_eq!(status(&bearer(&mut host, &token)), 200, "{:?}", host.logs());
    let stream = get(&mut host, &format!("/data?access_token={token}"), &[]);
    assert_eq!(status(&stream), 401);
    assert_eq!(counter(&host, "jwt_authn_rejected_wrong_issuer_total"), 1);
}

#[test]
fn with_the_cache_off_or_tokens_over_its_limit_every_request_is_verified() {
    for extra in [
        json!({"jwt_cache_size": 0}),
        json!({"jwt_cache_max_token_bytes": 16}),
    ] {
        let mut host = host(&config(extra.clone()));
        let token = good_token();
        for _ in 0..3 {
            assert_eq!(status(&bearer(&mut host, &token)), 200, "{extra}");
        }
        // `exp` is NOW + 600, the default skew 60 s.
        host.advance(Duration::from_secs(661));
        assert_rejected(&mut host, &token, "expired");
    }
}

#[test]
fn jwt_cache_max_token_bytes_zero_is_refused_with_its_field() {
    let mut host = Harness::new(Root::default());
    assert!(!host.configure(&config(json!({"jwt_cache_max_token_bytes": 0}))));
    assert!(
        host.logs()
            .iter()
            .any(|(_, l)| l
                .contains("providers[0].jwt_cache_max_token_bytes: must be more than zero")),
        "{:?}",
        host.logs()
    );
}
