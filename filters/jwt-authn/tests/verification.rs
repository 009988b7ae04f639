//! Tokens that pass, for every algorithm, and what a passing token leaves
//! behind: properties for later filters, claim headers, the token removed.

mod common;

use common::*;
use jwt_authn::Root;
use serde_json::json;
use std::time::Duration;
use wasp_filter_sdk::testing::Harness;

#[test]
fn every_supported_algorithm_passes_with_its_key() {
    let k = keys();
    let cases = [
        ("RS256", "rsa", Signer::Rsa(&k.rsa)),
        ("RS384", "rsa", Signer::Rsa(&k.rsa)),
        ("RS512", "rsa", Signer::Rsa(&k.rsa)),
        ("PS256", "rsa", Signer::Rsa(&k.rsa)),
        ("PS384", "rsa", Signer::Rsa(&k.rsa)),
        ("PS512", "rsa", Signer::Rsa(&k.rsa)),
        ("ES256", "p256", Signer::P256),
        ("ES384", "p384", Signer::P384),
        ("EdDSA", "ed", Signer::Ed),
        ("HS256", "oct", Signer::Hmac(&k.hmac)),
        ("HS384", "oct", Signer::Hmac(&k.hmac)),
        ("HS512", "oct", Signer::Hmac(&k.hmac)),
    ];
    let mut host = host(&config(json!({})));
    for (alg, kid, signer) in cases {
        let stream = bearer(&mut host, &token(alg, Some(kid), signer, &claims()));
        assert_eq!(status(&stream), 200, "{alg}: {:?}", host.logs());
        // Without a kid, the key that fits the algorithm is found too.
        let stream = bearer(&mut host, &token(alg, None, signer, &claims()));
        assert_eq!(status(&stream), 200, "{alg} without kid: {:?}", host.logs());
    }
    assert_eq!(counter(&host, "jwt_authn_allowed_total"), 24);
}

#[test]
fn a_verified_token_publishes_the_identity_as_properties() {
    let mut host = host(&config(json!({})));
    let stream = bearer(&mut host, &good_token());
    assert_eq!(status(&stream), 200);
    let prop = |name: &str| {
        host.property(&[format!("request.auth.{name}").as_str()])
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(
        prop("principal").as_deref(),
        Some("https://issuer.test/alice")
    );
    assert_eq!(prop("audiences").as_deref(), Some(r#"["api","other"]"#));
    assert_eq!(prop("presenter").as_deref(), Some("web"));
    let claims: serde_json::Value = serde_json::from_str(&prop("claims").unwrap()).unwrap();
    assert_eq!(claims["realm"]["role"], "admin");
}

#[test]
fn claims_reach_the_upstream_as_headers_and_the_token_is_removed() {
    let extra = json!({
        "output_claim_to_headers": [
            {"header": "x-jwt-sub", "claim": "sub"},
            {"header": "x-jwt-role", "claim": "realm.role"},
            {"header": "x-jwt-level", "claim": "level"},
            {"header": "x-jwt-missing", "claim": "nope"}
        ],
        "output_payload_to_header": "x-jwt-payload"
    });
    let mut host = host(&config(extra));
    let token = good_token();
    let stream = bearer(&mut host, &token);
    assert_eq!(status(&stream), 200);
    assert_eq!(stream.request_header("x-jwt-sub").as_deref(), Some("alice"));
    assert_eq!(
        stream.request_header("x-jwt-role").as_deref(),
        Some("admin")
    );
    assert_eq!(stream.request_header("x-jwt-level").as_deref(), Some("3"));
    assert_eq!(stream.request_header("x-jwt-missing"), None);
    let payload = token.split('.').nth(1).unwrap();
    assert_eq!(
        stream.request_header("x-jwt-payload").as_deref(),
        Some(payload)
    );
    assert_eq!(stream.request_header("authorization"), None);
}

#[test]
fn forward_original_token_keeps_the_token() {
    let mut host = host(&config(json!({"forward_original_token": true})));
    let token = good_token();
    let stream = bearer(&mut host, &token);
    assert_eq!(status(&stream), 200);
    assert_eq!(
        stream.request_header("authorization"),
        Some(format!("Bearer {token}"))
    );
}

#[test]
fn forged_claim_headers_are_removed_from_requests_without_a_token() {
    let extra = json!({"output_claim_to_headers": [{"header": "x-jwt-sub", "claim": "sub"}]});
    let mut host = host(&config(extra));
    let stream = get(&mut host, "/", &[("x-jwt-sub", "mallory")]);
    assert_eq!(status(&stream), 200);
    assert_eq!(stream.request_header("x-jwt-sub"), None);
}

#[test]
fn tokens_are_read_from_params_and_cookies_and_removed_from_there() {
    let extra = json!({"from_params": ["token"], "from_cookies": ["jwt"]});
    let mut host = host(&config(extra));
    let token = good_token();
    let stream = get(&mut host, &format!("/p?a=1&token={token}&b=2"), &[]);
    assert_eq!(status(&stream), 200, "{:?}", host.logs());
    assert_eq!(
        stream.request_header(":path").as_deref(),
        Some("/p?a=1&b=2")
    );
    let cookie = format!("a=1; jwt={token}; b=2");
    let stream = get(&mut host, "/c", &[("cookie", &cookie)]);
    assert_eq!(status(&stream), 200);
    assert_eq!(stream.request_header("cookie").as_deref(), Some("a=1; b=2"));
    // Configured locations replace the default: the Authorization header is not read.
    let stream = bearer(&mut host, "not-even-a-token");
    assert_eq!(status(&stream), 200);
}

#[test]
fn a_custom_header_and_prefix_are_honoured() {
    let extra = json!({"from_headers": [{"name": "x-token", "prefix": "JWT "}]});
    let mut host = host(&config(extra));
    let value = format!("JWT {}", good_token());
    let stream = get(&mut host, "/", &[("x-token", &value)]);
    assert_eq!(status(&stream), 200);
    assert_eq!(stream.request_header("x-token"), None);
    let stream = get(&mut host, "/", &[("x-token", "JWT a.b.c")]);
    assert_eq!(status(&stream), 401);
}

#[test]
fn a_request_without_a_token_passes_unless_required() {
    let mut host = host(&config(json!({})));
    let stream = get(&mut host, "/", &[]);
    assert_eq!(status(&stream), 200);
    assert_eq!(counter(&host, "jwt_authn_no_token_total"), 1);
    assert_eq!(host.property(&["request.auth.principal"]), None);

    let mut config: serde_json::Value = serde_json::from_str(&config(json!({}))).unwrap();
    config["require"] = json!(true);
    let mut host = common::host(&config.to_string());
    let stream = get(&mut host, "/x?q=1", &[]);
    let reply = stream.local_reply().expect("refused");
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"http://api.test/x\"")
    );
    assert_eq!(counter(&host, "jwt_authn_rejected_missing_total"), 1);
}

#[test]
fn the_same_token_in_two_places_is_one_token() {
    let extra = json!({"from_headers": [{"name": "authorization", "prefix": "Bearer "}], "from_params": ["access_token"]});
    let mut host = host(&config(extra));
    let token = good_token();
    let value = format!("Bearer {token}");
    let stream = get(
        &mut host,
        &format!("/?access_token={token}"),
        &[("authorization", &value)],
    );
    assert_eq!(status(&stream), 200, "{:?}", host.logs());
    assert_eq!(stream.request_header("authorization"), None);
    assert_eq!(stream.request_header(":path").as_deref(), Some("/"));
}

#[test]
fn the_provider_is_chosen_by_issuer() {
    let other = json!({"issuer": "https://other.test", "jwks": json!({"keys": [ed_jwk("ed")]}).to_string()});
    let mut config: serde_json::Value = serde_json::from_str(&config(json!({}))).unwrap();
    config["providers"].as_array_mut().unwrap().push(other);
    let mut host = host(&config.to_string());
    let mut claims = claims();
    claims["iss"] = json!("https://other.test");
    let stream = bearer(&mut host, &token("EdDSA", Some("ed"), Signer::Ed, &claims));
    assert_eq!(status(&stream), 200, "{:?}", host.logs());
    // The other provider has no RSA key: an RS256 token of its issuer fails.
    let t = token("RS256", Some("rsa"), Signer::Rsa(&keys().rsa), &claims);
    assert_rejected(&mut host, &t, "unknown_kid");
}

#[test]
fn a_token_verified_once_is_still_refused_once_it_expires() {
    let mut host = host(&config(json!({"clock_skew": "0s"})));
    let token = good_token();
    assert_eq!(status(&bearer(&mut host, &token)), 200);
    assert_eq!(status(&bearer(&mut host, &token)), 200, "from the cache");
    host.advance(Duration::from_secs(601));
    assert_rejected(&mut host, &token, "expired");
}

#[test]
fn a_one_byte_change_to_a_cached_token_is_verified_afresh() {
    let mut host = host(&config(json!({})));
    let token = good_token();
    assert_eq!(status(&bearer(&mut host, &token)), 200);
    let mut forged = token.into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    assert_rejected(
        &mut host,
        &String::from_utf8(forged).unwrap(),
        "bad_signature",
    );
}

#[test]
fn jwt_cache_size_above_its_limit_is_refused_with_its_field() {
    let mut host = Harness::new(Root::default());
    assert!(!host.configure(&config(json!({"jwt_cache_size": 1_000_000}))));
    assert!(
        host.logs()
            .iter()
            .any(|(_, l)| l.contains("providers[0].jwt_cache_size: 1000000 is more than 10000")),
        "{:?}",
        host.logs()
    );
}
