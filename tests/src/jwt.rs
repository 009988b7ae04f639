//! JWT test material for the `jwt-authn` filter tests: keys generated at
//! run time (never stored), tokens signed with them, their JWK Set, and a
//! JWKS server on loopback whose answer a test can change (key rotation) or
//! that is not started at all (JWKS down).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rand::rngs::OsRng;
use rsa::RsaPrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Signing keys: one RSA 2048, one P-256, one Ed25519, and a second RSA key
/// for rotations.
pub struct Keys {
    /// RS256 key (kid `rsa-1`).
    pub rsa: RsaPrivateKey,
    /// The key a rotation introduces (kid `rsa-2`).
    pub rsa_next: RsaPrivateKey,
    /// ES256 key (kid `ec-1`).
    pub p256: p256::ecdsa::SigningKey,
    /// EdDSA key (kid `ed-1`).
    pub ed: ed25519_dalek::SigningKey,
}

/// The process's test keys.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: RsaPrivateKey::new(&mut OsRng, 2048).expect("rsa key"),
        rsa_next: RsaPrivateKey::new(&mut OsRng, 2048).expect("rsa key"),
        p256: p256::ecdsa::SigningKey::random(&mut OsRng),
        ed: ed25519_dalek::SigningKey::generate(&mut OsRng),
    })
}

/// The public JWK of an RSA key.
pub fn rsa_jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
           "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())})
}

/// The JWK Set with `rsa-1`, `ec-1` and `ed-1` (and `rsa-2` with `rotated`).
pub fn jwks(rotated: bool) -> Value {
    let k = keys();
    let point = k.p256.verifying_key().to_encoded_point(false);
    let mut set = vec![
        rsa_jwk(&k.rsa, "rsa-1"),
        json!({"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))}),
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": b64(k.ed.verifying_key().as_bytes())}),
    ];
    if rotated {
        set.push(rsa_jwk(&k.rsa_next, "rsa-2"));
    }
    json!({ "keys": set })
}

/// Signs `header.claims` (raw JSON) with the key of `kid` under `alg`.
pub fn sign_raw(alg: &str, kid: &str, header: &str, claims: &str) -> String {
    let k = keys();
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signature = match (alg, kid) {
        ("RS256", "rsa-2") => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k.rsa_next.clone())
            .sign(input.as_bytes())
            .to_vec(),
        ("RS256", _) => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k.rsa.clone())
            .sign(input.as_bytes())
            .to_vec(),
        ("ES256", _) => {
            let s: p256::ecdsa::Signature = k.p256.sign(input.as_bytes());
            s.to_bytes().to_vec()
        }
        ("EdDSA", _) => k.ed.sign(input.as_bytes()).to_bytes().to_vec(),
        (other, _) => panic!("no test signer for {other}"),
    };
    format!("{input}.{}", b64(&signature))
}

/// A token with `{"alg", "kid"}` and `claims`.
pub fn token(alg: &str, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string();
    sign_raw(alg, kid, &header, &claims.to_string())
}

/// Valid claims of issuer `iss` for audience `api`, good for ten minutes.
pub fn claims(iss: &str, sub: &str) -> Value {
    let now = now();
    json!({"iss": iss, "sub": sub, "aud": "api", "exp": now + 600, "iat": now, "nbf": now - 5,
           "groups": {"team": "payments"}})
}

/// A JWKS server on loopback: `GET` any path answers the current set.
pub struct JwksServer {
    /// Where it listens.
    pub addr: SocketAddr,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl JwksServer {
    /// Serves `jwks` on `addr` (a free loopback address).
    pub async fn start(addr: SocketAddr, jwks: &Value) -> JwksServer {
        let socket = TcpListener::bind(addr).await.expect("bind the JWKS server");
        let body = Arc::new(Mutex::new(jwks.to_string()));
        let hits = Arc::new(AtomicU64::new(0));
        let (b, h) = (Arc::clone(&body), Arc::clone(&hits));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = socket.accept().await {
                let (b, h) = (Arc::clone(&b), Arc::clone(&h));
                tokio::spawn(async move {
                    let service = service_fn(move |_request| {
                        h.fetch_add(1, Ordering::SeqCst);
                        let text = b.lock().expect("jwks lock").clone();
                        async move {
                            Response::builder()
                                .status(StatusCode::OK)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(text)))
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        JwksServer {
            addr,
            body,
            hits,
            task,
        }
    }

    /// Serves `jwks` from now on.
    pub fn set(&self, jwks: &Value) {
        *self.body.lock().expect("jwks lock") = jwks.to_string();
    }

    /// Requests answered so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
