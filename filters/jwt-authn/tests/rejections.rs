//! Every way a token is refused: 401 with `www-authenticate: Bearer …,
//! error="invalid_token"`, a counter per reason, a log line naming the
//! reason and never the token, and the request never goes on.

mod common;

use common::*;
use rsa::pkcs8::EncodePublicKey;
use serde_json::json;
use wasp_filter_sdk::testing::Harness;

#[test]
fn alg_none_is_refused_in_any_spelling() {
    let mut host = host(&config(json!({})));
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg}).to_string();
        let unsigned = format!(
            "{}.{}.",
            b64(header.as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        assert_rejected(&mut host, &unsigned, "alg_none");
        let with_sig = format!("{unsigned}c2ln");
        assert_rejected(&mut host, &with_sig, "alg_none");
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_as_secret_fails() {
    // Only the RSA key is configured; the attacker HMACs with its public forms.
    let jwks = json!({"keys": [rsa_jwk(&keys().rsa, "rsa")]}).to_string();
    let mut host = host(&config(json!({"jwks": jwks})));
    let public = keys().rsa.to_public_key();
    let pem = public
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let der = public.to_public_key_der().unwrap();
    let n = rsa::traits::PublicKeyParts::n(&public).to_bytes_be();
    for secret in [pem.as_bytes(), der.as_bytes(), &n[..]] {
        let t = token("HS256", Some("rsa"), Signer::Hmac(secret), &claims());
        assert_rejected(&mut host, &t, "key_mismatch");
        let t = token("HS256", None, Signer::Hmac(secret), &claims());
        assert_rejected(&mut host, &t, "key_mismatch");
    }
}

#[test]
fn an_alg_that_does_not_fit_the_key_fails() {
    let mut rsa = rsa_jwk(&keys().rsa, "rsa");
    rsa["alg"] = json!("RS256");
    let jwks = json!({"keys": [rsa, p256_jwk("p256"), ed_jwk("ed")]}).to_string();
    let mut host = host(&config(json!({"jwks": jwks})));
    let k = keys();
    // The key says RS256; a PS256 token with its kid does not fit.
    assert_rejected(
        &mut host,
        &token("PS256", Some("rsa"), Signer::Rsa(&k.rsa), &claims()),
        "key_mismatch",
    );
    // ES256 naming the RSA key; ES384 naming the P-256 key; EdDSA naming the P-256 key.
    assert_rejected(
        &mut host,
        &token("ES256", Some("rsa"), Signer::P256, &claims()),
        "key_mismatch",
    );
    assert_rejected(
        &mut host,
        &token("ES384", Some("p256"), Signer::P384, &claims()),
        "key_mismatch",
    );
    assert_rejected(
        &mut host,
        &token("EdDSA", Some("p256"), Signer::Ed, &claims()),
        "key_mismatch",
    );
    // No key of the type at all.
    assert_rejected(
        &mut host,
        &token("ES384", None, Signer::P384, &claims()),
        "key_mismatch",
    );
}

#[test]
fn unsupported_algorithms_fail() {
    let mut host = host(&config(json!({})));
    for alg in ["ES512", "RS1", "HS1", "ES256K", "Ed25519", "rs256"] {
        let t = sign_raw(
            alg,
            Signer::P256,
            &json!({"alg": alg}).to_string(),
            &claims().to_string(),
        );
        assert_rejected(&mut host, &t, "unsupported_alg");
    }
}

#[test]
fn an_unknown_kid_fails() {
    let mut host = host(&config(json!({})));
    let t = token(
        "RS256",
        Some("rotated-away"),
        Signer::Rsa(&keys().rsa),
        &claims(),
    );
    assert_rejected(&mut host, &t, "unknown_kid");
}

#[test]
fn without_kid_every_fitting_key_is_tried_and_none_verifying_fails() {
    let k = keys();
    let jwks = json!({"keys": [rsa_jwk(&k.rsa2, "a"), rsa_jwk(&k.rsa, "b")]}).to_string();
    let mut host = host(&config(json!({"jwks": jwks})));
    // The second key verifies.
    assert_eq!(
        status(&bearer(
            &mut host,
            &token("RS256", None, Signer::Rsa(&k.rsa), &claims())
        )),
        200
    );
    // A key outside the set: none verifies.
    let outsider = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let t = token("RS256", None, Signer::Rsa(&outsider), &claims());
    assert_rejected(&mut host, &t, "bad_signature");
}

#[test]
fn a_bad_signature_fails() {
    let mut host = host(&config(json!({})));
    let good = good_token();
    let mut parts: Vec<&str> = good.split('.').collect();
    let mut forged = claims();
    forged["sub"] = json!("admin");
    let forged_payload = b64(forged.to_string().as_bytes());
    parts[1] = &forged_payload;
    assert_rejected(&mut host, &parts.join("."), "bad_signature");
    // Signature of another algorithm's length, and a truncated one.
    for (alg, kid, signer) in [("ES256", "p256", Signer::P256), ("EdDSA", "ed", Signer::Ed)] {
        let t = token(alg, Some(kid), signer, &claims());
        let (input, sig) = t.rsplit_once('.').unwrap();
        let mut sig =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
        sig.truncate(sig.len() - 3);
        assert_rejected(
            &mut host,
            &format!("{input}.{}", b64(&sig)),
            "bad_signature",
        );
    }
    let hs = token("HS256", Some("oct"), Signer::Hmac(&keys().hmac), &claims());
    let mut other = claims();
    other["sub"] = json!("root");
    let hs_other = token(
        "HS256",
        Some("oct"),
        Signer::Hmac(b"another secret of thirty-two byte"),
        &other,
    );
    let _ = hs;
    assert_rejected(&mut host, &hs_other, "bad_signature");
}

/// Tokens whose `exp` passed, or whose `nbf` is ahead, by `within` seconds
/// pass; by `beyond` seconds they fail.
fn dates_pass_within_and_fail_beyond(host: &mut Harness, within: u64, beyond: u64) {
    let rsa = Signer::Rsa(&keys().rsa);
    let mut c = claims();
    c["exp"] = json!(NOW - within);
    assert_eq!(
        status(&bearer(host, &token("RS256", Some("rsa"), rsa, &c))),
        200
    );
    c["exp"] = json!(NOW - beyond);
    assert_rejected(host, &token("RS256", Some("rsa"), rsa, &c), "expired");
    let mut c = claims();
    c["nbf"] = json!(NOW + within);
    assert_eq!(
        status(&bearer(host, &token("RS256", Some("rsa"), rsa, &c))),
        200
    );
    c["nbf"] = json!(NOW + beyond);
    assert_rejected(host, &token("RS256", Some("rsa"), rsa, &c), "not_yet_valid");
}

#[test]
fn expired_and_not_yet_valid_tokens_fail_beyond_the_skew() {
    let mut host = host(&config(json!({"clock_skew": "30s"})));
    dates_pass_within_and_fail_beyond(&mut host, 20, 31);
    let mut c = claims();
    c["exp"] = json!("tomorrow");
    assert_rejected(
        &mut host,
        &token("RS256", Some("rsa"), Signer::Rsa(&keys().rsa), &c),
        "malformed",
    );
}

#[test]
fn the_default_clock_skew_is_60_seconds() {
    let mut host = host(&config(json!({})));
    dates_pass_within_and_fail_beyond(&mut host, 59, 61);
}

#[test]
fn a_wrong_issuer_or_no_common_audience_fails() {
    let mut host = host(&config(json!({})));
    let rsa = Signer::Rsa(&keys().rsa);
    let mut c = claims();
    c["iss"] = json!("https://evil.test");
    assert_rejected(
        &mut host,
        &token("RS256", Some("rsa"), rsa, &c),
        "wrong_issuer",
    );
    c.as_object_mut().unwrap().remove("iss");
    assert_rejected(
        &mut host,
        &token("RS256", Some("rsa"), rsa, &c),
        "wrong_issuer",
    );
    let mut c = claims();
    c["aud"] = json!(["billing"]);
    assert_rejected(
        &mut host,
        &token("RS256", Some("rsa"), rsa, &c),
        "wrong_audience",
    );
    c.as_object_mut().unwrap().remove("aud");
    assert_rejected(
        &mut host,
        &token("RS256", Some("rsa"), rsa, &c),
        "wrong_audience",
    );
    c["aud"] = json!("api");
    assert_eq!(
        status(&bearer(&mut host, &token("RS256", Some("rsa"), rsa, &c))),
        200
    );
}

#[test]
fn malformed_tokens_fail() {
    let mut host = host(&config(json!({})));
    let rsa = Signer::Rsa(&keys().rsa);
    let good = good_token();
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let cases = [
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}.{p}={s}"),
        format!("{h}=.{p}.{s}"),
        format!("{h}.{p}.{s}="),
        format!("{}+.{p}.{s}", &h[..h.len() - 1]),
        format!("{h}.{p}.!{s}"),
        format!("..{s}"),
    ];
    for t in &cases {
        assert_rejected(&mut host, t, "malformed");
    }
    // Not a JSON object, duplicate members, trailing garbage.
    let headers = [
        r#"["RS256"]"#,
        r#"{"alg":"RS256","alg":"RS256","kid":"rsa"}"#,
        r#"{"alg":"RS256"} x"#,
    ];
    for header in headers {
        let t = sign_raw("RS256", rsa, header, &claims().to_string());
        assert_rejected(&mut host, &t, "malformed");
    }
    let header = r#"{"alg":"RS256","kid":"rsa"}"#;
    let payloads = [
        r#""just a string""#.to_owned(),
        format!(r#"{{"iss":"{ISSUER}","sub":"a","sub":"b","aud":"api"}}"#),
        format!(r#"{{"iss":"{ISSUER}","aud":"api","x":{{"y":1,"y":2}}}}"#),
        "not json".to_owned(),
    ];
    for payload in &payloads {
        let t = sign_raw("RS256", rsa, header, payload);
        assert_rejected(&mut host, &t, "malformed");
    }
}

#[test]
fn an_oversized_token_fails_before_parsing() {
    let mut host = host(&config(json!({"max_token_bytes": 1024})));
    let mut c = claims();
    c["padding"] = json!("x".repeat(2000));
    let t = token("RS256", Some("rsa"), Signer::Rsa(&keys().rsa), &c);
    assert_rejected(&mut host, &t, "too_large");
    // The default (8 KiB) lets it through.
    let mut host = common::host(&config(json!({})));
    assert_eq!(status(&bearer(&mut host, &t)), 200);
}

#[test]
fn an_unknown_crit_extension_fails() {
    let mut host = host(&config(json!({})));
    let rsa = Signer::Rsa(&keys().rsa);
    for header in [
        json!({"alg": "RS256", "kid": "rsa", "crit": ["exp"], "exp": 1}),
        json!({"alg": "RS256", "kid": "rsa", "crit": ["b64"], "b64": false}),
        json!({"alg": "RS256", "kid": "rsa", "crit": []}),
    ] {
        let t = sign_raw("RS256", rsa, &header.to_string(), &claims().to_string());
        assert_rejected(&mut host, &t, "unknown_crit");
    }
}

#[test]
fn key_carrying_headers_are_never_trusted_or_fetched() {
    let mut host = host(&config(json!({})));
    let attacker = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let embedded = rsa_jwk(&attacker, "attacker");
    let headers = [
        json!({"alg": "RS256", "jwk": embedded}),
        json!({"alg": "RS256", "kid": "attacker", "jwk": embedded}),
        json!({"alg": "RS256", "jku": "http://evil.test/jwks.json"}),
        json!({"alg": "RS256", "x5u": "http://evil.test/cert.pem"}),
        json!({"alg": "RS256", "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
    ];
    for header in headers {
        let t = sign_raw(
            "RS256",
            Signer::Rsa(&attacker),
            &header.to_string(),
            &claims().to_string(),
        );
        let reason = if header.get("kid").is_some() {
            "unknown_kid"
        } else {
            "bad_signature"
        };
        assert_rejected(&mut host, &t, reason);
    }
    assert!(host.http_calls().is_empty(), "something was fetched");
    // The same headers on a token signed with a configured key change nothing.
    let header = json!({"alg": "RS256", "kid": "rsa", "jku": "http://evil.test/jwks.json"});
    let t = sign_raw(
        "RS256",
        Signer::Rsa(&keys().rsa),
        &header.to_string(),
        &claims().to_string(),
    );
    assert_eq!(status(&bearer(&mut host, &t)), 200);
    assert!(host.http_calls().is_empty());
}

#[test]
fn two_different_tokens_in_one_request_fail() {
    let extra = json!({"from_headers": [{"name": "authorization", "prefix": "Bearer "}], "from_params": ["access_token"]});
    let mut host = host(&config(extra));
    let a = good_token();
    let b = token("ES256", Some("p256"), Signer::P256, &claims());
    let value = format!("Bearer {a}");
    let stream = get(
        &mut host,
        &format!("/data?access_token={b}"),
        &[("authorization", &value)],
    );
    let reply = stream.local_reply().expect("refused");
    assert_eq!(reply.status, 401);
    assert_eq!(
        counter(&host, "jwt_authn_rejected_multiple_tokens_total"),
        1
    );
    // Two authorization headers with different tokens, too.
    let first = format!("Bearer {a}");
    let second = format!("Bearer {b}");
    let stream = get(
        &mut host,
        "/data",
        &[("authorization", &first), ("authorization", &second)],
    );
    assert_eq!(status(&stream), 401);
    assert_eq!(
        counter(&host, "jwt_authn_rejected_multiple_tokens_total"),
        2
    );
    assert!(
        host.logs()
            .iter()
            .all(|(_, l)| !l.contains(&a) && !l.contains(&b))
    );
}

#[test]
fn a_refused_request_keeps_its_token_and_gets_no_identity() {
    let mut host = host(&config(json!({})));
    let t = token("RS256", Some("nope"), Signer::Rsa(&keys().rsa), &claims());
    let stream = bearer(&mut host, &t);
    assert_eq!(status(&stream), 401);
    assert_eq!(host.property(&["request.auth.principal"]), None);
    assert_eq!(counter(&host, "jwt_authn_allowed_total"), 0);
}
