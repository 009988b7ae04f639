//! JSON Web Key Sets (RFC 7517/7518/8037): the verification keys of a
//! provider. RSA (2048 to 4096 bits), EC P-256 and P-384, OKP Ed25519, and
//! `oct` secrets only from an inline set (a secret served by a URL would be
//! a public HMAC key). Keys meant for something else (`use` other than
//! `sig`, `key_ops` without `verify`) are left out; a key this filter
//! cannot use is skipped (and named), a malformed set fails whole.

use crate::token::{Alg, decode, object};
use serde_json::{Map, Value};

/// Where a key set comes from: `oct` keys are only taken from inline sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `jwks` in the configuration.
    Inline,
    /// Fetched from `jwks_uri`.
    Fetched,
}

/// A verification key's material.
#[derive(Clone)]
pub enum Material {
    /// An RSA public key.
    Rsa(Box<rsa::RsaPublicKey>),
    /// A P-256 public key.
    P256(p256::ecdsa::VerifyingKey),
    /// A P-384 public key.
    P384(p384::ecdsa::VerifyingKey),
    /// An Ed25519 public key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// An HMAC secret.
    Oct(Vec<u8>),
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.write_str(match self {
            Material::Rsa(_) => "RSA",
            Material::P256(_) => "EC P-256",
            Material::P384(_) => "EC P-384",
            Material::Ed25519(_) => "OKP Ed25519",
            Material::Oct(_) => "oct",
        })
    }
}

/// One key of a set.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key's `kid`.
    pub kid: Option<String>,
    /// The key's `alg`, when it names one.
    pub alg: Option<String>,
    /// The key.
    pub material: Material,
}

impl Key {
    /// True when a token signed with `alg` may be verified with this key:
    /// the key type (and curve) fits the algorithm and the key's own `alg`,
    /// if any, is that algorithm.
    pub fn fits(&self, alg: Alg) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return false;
        }
        matches!(
            (alg, &self.material),
            (Alg::Rs256 | Alg::Rs384 | Alg::Rs512, Material::Rsa(_))
                | (Alg::Ps256 | Alg::Ps384 | Alg::Ps512, Material::Rsa(_))
                | (Alg::Es256, Material::P256(_))
                | (Alg::Es384, Material::P384(_))
                | (Alg::EdDsa, Material::Ed25519(_))
                | (Alg::Hs256 | Alg::Hs384 | Alg::Hs512, Material::Oct(_))
        )
    }
}

/// A provider's keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// The usable keys.
    pub keys: Vec<Key>,
    /// Why keys were skipped (`keys[2]: …`), for the log.
    pub skipped: Vec<String>,
}

impl KeySet {
    /// Parses a JWK Set (`{"keys": [...]}`) strictly.
    pub fn parse(text: &str, source: Source) -> Result<KeySet, String> {
        let set = object(text.as_bytes()).map_err(|e| format!("not a JWK Set: {e}"))?;
        let Some(Value::Array(keys)) = set.get("keys") else {
            return Err("not a JWK Set: no `keys` array".into());
        };
        let mut out = KeySet::default();
        for (i, jwk) in keys.iter().enumerate() {
            let Value::Object(jwk) = jwk else {
                return Err(format!("keys[{i}]: not an object"));
            };
            match parse_key(jwk, source) {
                Ok(Some(key)) => out.keys.push(key),
                Ok(None) => {}
                Err(e) => out.skipped.push(format!("keys[{i}]: {e}")),
            }
        }
        Ok(out)
    }

    /// True when the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// True when some key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn text<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{name}` is not a string")),
    }
}

fn bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let value = text(jwk, name)?.ok_or_else(|| format!("no `{name}`"))?;
    decode(value).map_err(|e| format!("`{name}`: {e}"))
}

/// One key; `Ok(None)` for keys not meant for verifying signatures.
fn parse_key(jwk: &Map<String, Value>, source: Source) -> Result<Option<Key>, String> {
    if text(jwk, "use")?.is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op == "verify"));
        if !verify {
            return Ok(None);
        }
    }
    let kty = text(jwk, "kty")?.ok_or("no `kty`")?;
    let material = match kty {
        "RSA" => {
            let n = rsa::BigUint::from_bytes_be(&bytes(jwk, "n")?);
            let e = rsa::BigUint::from_bytes_be(&bytes(jwk, "e")?);
            let key = rsa::RsaPublicKey::new(n, e).map_err(|e| format!("RSA key: {e}"))?;
            if rsa::traits::PublicKeyParts::size(&key) < 256 {
                return Err("RSA key shorter than 2048 bits".into());
            }
            Material::Rsa(Box::new(key))
        }
        "EC" => {
            let (x, y) = (bytes(jwk, "x")?, bytes(jwk, "y")?);
            match text(jwk, "crv")? {
                Some("P-256") => Material::P256(p256_key(&x, &y)?),
                Some("P-384") => Material::P384(p384_key(&x, &y)?),
                other => return Err(format!("EC curve {other:?} is not supported")),
            }
        }
        "OKP" => match text(jwk, "crv")? {
            Some("Ed25519") => {
                let x: [u8; 32] = bytes(jwk, "x")?
                    .try_into()
                    .map_err(|_| "Ed25519 `x` is not 32 bytes")?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|e| format!("Ed25519 key: {e}"))?;
                Material::Ed25519(key)
            }
            other => return Err(format!("OKP curve {other:?} is not supported")),
        },
        "oct" if source == Source::Inline => {
            let k = bytes(jwk, "k")?;
            if k.len() < 32 {
                return Err("oct key shorter than 256 bits".into());
            }
            Material::Oct(k)
        }
        "oct" => return Err("oct keys are only taken from an inline jwks".into()),
        other => return Err(format!("kty `{other}` is not supported")),
    };
    let alg = text(jwk, "alg")?.map(str::to_owned);
    if let Some(name) = &alg {
        let key = Key {
            kid: None,
            alg: None,
            material: material.clone(),
        };
        if !Alg::from_name(name).is_some_and(|a| key.fits(a)) {
            return Err(format!("alg `{name}` does not fit a {material:?} key"));
        }
    }
    Ok(Some(Key {
        kid: text(jwk, "kid")?.map(str::to_owned),
        alg,
        material,
    }))
}

/// Builds an EC verifying key of one curve from its affine coordinates.
macro_rules! ec_key {
    ($name:ident, $curve:ident, $len:expr) => {
        fn $name(x: &[u8], y: &[u8]) -> Result<$curve::ecdsa::VerifyingKey, String> {
            if x.len() != $len || y.len() != $len {
                return Err(format!("EC coordinates are not {} bytes", $len));
            }
            let point = $curve::EncodedPoint::from_affine_coordinates(
                $curve::FieldBytes::from_slice(x),
                $curve::FieldBytes::from_slice(y),
                false,
            );
            $curve::ecdsa::VerifyingKey::from_encoded_point(&point)
                .map_err(|_| "EC point is not on the curve".to_owned())
        }
    };
}

ec_key!(p256_key, p256, 32);
ec_key!(p384_key, p384, 48);
