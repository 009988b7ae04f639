//! Shared helpers of the native tests: keys generated at test time (never
//! stored), JWKs of them, signing tokens with any algorithm, and a mock host
//! running the filter at a fixed clock.

#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_authn::Root;
use rand::rngs::OsRng;
use rsa::RsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use std::sync::OnceLock;
use std::time::Duration;
use wasp_filter_sdk::testing::{Harness, HttpStream};

/// The mock host's clock in the tests (seconds since the epoch).
pub const NOW: u64 = 1_700_000_000;
/// The issuer of the test provider.
pub const ISSUER: &str = "https://issuer.test";

/// Base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Keys generated once per test binary.
pub struct Keys {
    /// RSA 2048.
    pub rsa: RsaPrivateKey,
    /// A second RSA 2048 key.
    pub rsa2: RsaPrivateKey,
    /// P-256.
    pub p256: p256::ecdsa::SigningKey,
    /// P-384.
    pub p384: p384::ecdsa::SigningKey,
    /// Ed25519.
    pub ed: ed25519_dalek::SigningKey,
    /// HMAC secret.
    pub hmac: Vec<u8>,
}

/// The test keys.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: RsaPrivateKey::new(&mut OsRng, 2048).expect("rsa key"),
        rsa2: RsaPrivateKey::new(&mut OsRng, 2048).expect("rsa key"),
        p256: p256::ecdsa::SigningKey::random(&mut OsRng),
        p384: p384::ecdsa::SigningKey::random(&mut OsRng),
        ed: ed25519_dalek::SigningKey::generate(&mut OsRng),
        hmac: (0..32u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect(),
    })
}

/// The public JWK of an RSA key.
pub fn rsa_jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())})
}

/// The public JWK of the P-256 key.
pub fn p256_jwk(kid: &str) -> Value {
    let point = keys().p256.verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
}

/// The public JWK of the P-384 key.
pub fn p384_jwk(kid: &str) -> Value {
    let point = keys().p384.verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-384", "kid": kid, "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
}

/// The public JWK of the Ed25519 key.
pub fn ed_jwk(kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(keys().ed.verifying_key().as_bytes())})
}

/// The HMAC secret as a JWK.
pub fn oct_jwk(kid: &str) -> Value {
    json!({"kty": "oct", "kid": kid, "k": b64(&keys().hmac)})
}

/// Every test key's JWK, with kids `rsa`, `p256`, `p384`, `ed`, `oct`.
pub fn all_jwks() -> Value {
    json!({"keys": [rsa_jwk(&keys().rsa, "rsa"), p256_jwk("p256"), p384_jwk("p384"), ed_jwk("ed"), oct_jwk("oct")]})
}

/// A signing key for [`sign`].
#[derive(Clone, Copy)]
pub enum Signer<'k> {
    /// RSA (RS*/PS* by alg).
    Rsa(&'k RsaPrivateKey),
    /// P-256.
    P256,
    /// P-384.
    P384,
    /// Ed25519.
    Ed,
    /// HMAC with these bytes (HS* by alg).
    Hmac(&'k [u8]),
}

/// Signs `header.payload` (both raw JSON text) under `alg`.
pub fn sign_raw(alg: &str, signer: Signer<'_>, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let signature = signature(alg, signer, input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// The signature of `input`.
pub fn signature(alg: &str, signer: Signer<'_>, input: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer as _};
    use sha2::{Sha256, Sha384, Sha512};
    match (alg, signer) {
        ("RS256", Signer::Rsa(k)) => rsa::pkcs1v15::SigningKey::<Sha256>::new(k.clone())
            .sign(input)
            .to_vec(),
        ("RS384", Signer::Rsa(k)) => rsa::pkcs1v15::SigningKey::<Sha384>::new(k.clone())
            .sign(input)
            .to_vec(),
        ("RS512", Signer::Rsa(k)) => rsa::pkcs1v15::SigningKey::<Sha512>::new(k.clone())
            .sign(input)
            .to_vec(),
        ("PS256", Signer::Rsa(k)) => rsa::pss::BlindedSigningKey::<Sha256>::new(k.clone())
            .sign_with_rng(&mut OsRng, input)
            .to_vec(),
        ("PS384", Signer::Rsa(k)) => rsa::pss::BlindedSigningKey::<Sha384>::new(k.clone())
            .sign_with_rng(&mut OsRng, input)
            .to_vec(),
        ("PS512", Signer::Rsa(k)) => rsa::pss::BlindedSigningKey::<Sha512>::new(k.clone())
            .sign_with_rng(&mut OsRng, input)
            .to_vec(),
        (_, Signer::P256) => {
            let s: p256::ecdsa::Signature = keys().p256.sign(input);
            s.to_bytes().to_vec()
        }
        (_, Signer::P384) => {
            let s: p384::ecdsa::Signature = keys().p384.sign(input);
            s.to_bytes().to_vec()
        }
        (_, Signer::Ed) => keys().ed.sign(input).to_bytes().to_vec(),
        ("HS384", Signer::Hmac(k)) => {
            let mut m = hmac::Hmac::<Sha384>::new_from_slice(k).unwrap();
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
        ("HS512", Signer::Hmac(k)) => {
            let mut m = hmac::Hmac::<Sha512>::new_from_slice(k).unwrap();
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
        (_, Signer::Hmac(k)) => {
            let mut m = hmac::Hmac::<Sha256>::new_from_slice(k).unwrap();
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
        (alg, _) => panic!("no signer for {alg}"),
    }
}

/// The claims of a valid token of the test provider.
pub fn claims() -> Value {
    json!({"iss": ISSUER, "sub": "alice", "aud": ["api", "other"], "azp": "web",
           "exp": NOW + 600, "nbf": NOW - 10, "iat": NOW - 10,
           "realm": {"role": "admin"}, "level": 3})
}

/// A token with header `{"alg": alg, "kid": kid}` and these claims.
pub fn token(alg: &str, kid: Option<&str>, signer: Signer<'_>, claims: &Value) -> String {
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    sign_raw(alg, signer, &header.to_string(), &claims.to_string())
}

/// A valid RS256 token of the test provider.
pub fn good_token() -> String {
    token("RS256", Some("rsa"), Signer::Rsa(&keys().rsa), &claims())
}

/// A configuration with one provider holding every test key inline,
/// overridden by `extra` (merged into the provider).
pub fn config(extra: Value) -> String {
    let mut provider = json!({
        "issuer": ISSUER,
        "audiences": ["api"],
        "jwks": all_jwks().to_string(),
    });
    for (k, v) in extra.as_object().unwrap() {
        provider[k] = v.clone();
    }
    json!({"providers": [provider]}).to_string()
}

/// A mock host at [`NOW`] with the filter configured by `config`.
pub fn host(config: &str) -> Harness {
    host_at(config, Duration::from_secs(NOW))
}

/// A mock host at `at` with the filter configured by `config`.
pub fn host_at(config: &str, at: Duration) -> Harness {
    let mut host = Harness::new(Root::default());
    host.advance(at);
    assert!(
        host.configure(config),
        "configure failed: {:?}",
        host.logs()
    );
    host
}

/// Sends a GET with these extra headers; the stream afterwards.
pub fn get(host: &mut Harness, path: &str, headers: &[(&str, &str)]) -> HttpStream {
    let mut all = vec![
        (":method", "GET"),
        (":path", path),
        (":authority", "api.test"),
        (":scheme", "http"),
    ];
    all.extend_from_slice(headers);
    let mut stream = host.stream();
    stream.request_headers(&all, true);
    stream
}

/// Sends `token` as a bearer token.
pub fn bearer(host: &mut Harness, token: &str) -> HttpStream {
    let value = format!("Bearer {token}");
    get(host, "/data", &[("authorization", &value)])
}

/// The status of the local reply (200 when the request went on).
pub fn status(stream: &HttpStream) -> u32 {
    stream.local_reply().map_or(200, |r| r.status)
}

/// The value of a counter (0 when undefined or untouched).
pub fn counter(host: &Harness, name: &str) -> i64 {
    host.metric(name).map_or(0, |m| m.value)
}

/// Asserts that `token` is refused with 401 for `reason` (counter and log).
pub fn assert_rejected(host: &mut Harness, token: &str, reason: &str) {
    let metric = format!("jwt_authn_rejected_{reason}_total");
    let before = counter(host, &metric);
    let stream = bearer(host, token);
    let reply = stream
        .local_reply()
        .unwrap_or_else(|| panic!("not refused ({reason})"));
    assert_eq!(reply.status, 401, "{reason}");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"http://api.test/data\", error=\"invalid_token\""),
    );
    assert_eq!(
        counter(host, &metric),
        before + 1,
        "counter {metric}: {:?}",
        host.logs()
    );
    let line = format!("rejected ({reason})");
    assert!(
        host.logs().iter().any(|(_, l)| l.contains(&line)),
        "no log `{line}`: {:?}",
        host.logs()
    );
    assert!(
        host.logs().iter().all(|(_, l)| !l.contains(token)),
        "the token was logged"
    );
}
