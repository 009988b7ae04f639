//! Strict parsing of a JWS compact serialization (RFC 7515 §7.1, RFC 7519,
//! RFC 8725): three base64url segments without padding, a header and a
//! payload that are JSON objects without duplicate members (at any depth),
//! a known `alg` (never `none`), no `crit` extension. Headers that point at
//! keys (`jku`, `x5u`, `jwk`, `x5c`) are ignored: keys come from the
//! configuration only.

use crate::reject::Reason;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A signature algorithm this filter verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256/384/512.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
    /// HMAC with SHA-256 (inline `oct` keys only).
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
}

impl Alg {
    /// The algorithm a JOSE `alg` value names, if this filter supports it.
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "EdDSA" => Alg::EdDsa,
            "HS256" => Alg::Hs256,
            "HS384" => Alg::Hs384,
            "HS512" => Alg::Hs512,
            _ => return None,
        })
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
            Alg::Hs256 => "HS256",
            Alg::Hs384 => "HS384",
            Alg::Hs512 => "HS512",
        }
    }
}

/// A parsed, not yet verified token.
#[derive(Debug, Clone)]
pub struct Token<'t> {
    /// The signature algorithm of the header.
    pub alg: Alg,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The claims.
    pub claims: Map<String, Value>,
    /// `header.payload`, the bytes that were signed.
    pub signing_input: &'t [u8],
    /// The payload segment (base64url), for `output_payload_to_header`.
    pub payload_b64: &'t str,
    /// The decoded payload (JSON text).
    pub payload_json: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
}

/// Parses `text` strictly; the reason says what is wrong.
pub fn parse(text: &str) -> Result<Token<'_>, (Reason, String)> {
    let malformed = |why: String| (Reason::Malformed, why);
    let mut parts = text.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        let count = text.split('.').count();
        return Err(malformed(format!("{count} segments instead of 3")));
    };
    let header_json = decode(h).map_err(|e| malformed(format!("header: {e}")))?;
    let header = object(&header_json).map_err(|e| malformed(format!("header: {e}")))?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) if name.eq_ignore_ascii_case("none") => {
            return Err((Reason::AlgNone, format!("alg `{name}`")));
        }
        Some(Value::String(name)) => Alg::from_name(name).ok_or_else(|| {
            (
                Reason::UnsupportedAlg,
                format!("alg `{name}` is not supported"),
            )
        })?,
        Some(_) => return Err(malformed("header: alg is not a string".into())),
        None => return Err(malformed("header: no alg".into())),
    };
    if let Some(crit) = header.get("crit") {
        // No extension is understood, so any `crit` (RFC 7515 §4.1.11) fails.
        return Err((Reason::UnknownCrit, format!("crit {crit}")));
    }
    let kid = match header.get("kid") {
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(malformed("header: kid is not a string".into())),
        None => None,
    };
    let payload_json = decode(p).map_err(|e| malformed(format!("payload: {e}")))?;
    let claims = object(&payload_json).map_err(|e| malformed(format!("payload: {e}")))?;
    let signature = decode(s).map_err(|e| malformed(format!("signature: {e}")))?;
    if signature.is_empty() {
        return Err(malformed("empty signature".into()));
    }
    Ok(Token {
        alg,
        kid,
        claims,
        signing_input: &text.as_bytes()[..h.len() + 1 + p.len()],
        payload_b64: p,
        payload_json,
        signature,
    })
}

/// Decodes unpadded base64url, refusing padding and non-canonical trailing bits.
pub fn decode(segment: &str) -> Result<Vec<u8>, String> {
    if segment.is_empty() {
        return Err("empty segment".into());
    }
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|e| format!("not base64url ({e})"))
}

/// Parses a JSON object, refusing duplicate member names at any depth.
pub fn object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = de
        .deserialize_any(StrictVisitor)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!("not a JSON object but {}", kind(&other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Builds a `Value` like serde_json does, but fails on duplicate members.
struct StrictVisitor;

struct Strict(Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if out.insert(key.clone(), value).is_some() {
                return Err(de::Error::custom(format!("duplicate member `{key}`")));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        assert!(
            object(br#"{"a":1,"a":2}"#)
                .unwrap_err()
                .contains("duplicate member `a`")
        );
        assert!(object(br#"{"a":{"b":1,"b":1}}"#).is_err());
        assert!(object(br#"{"a":[{"b":1,"b":1}]}"#).is_err());
        assert!(object(br#"{"a":1,"b":2}"#).is_ok());
    }

    #[test]
    fn non_objects_and_trailing_bytes_are_refused() {
        assert!(object(b"[1]").unwrap_err().contains("an array"));
        assert!(object(b"\"x\"").is_err());
        assert!(object(br#"{"a":1} x"#).is_err());
    }

    #[test]
    fn padded_or_standard_base64_is_refused() {
        assert!(decode("e30").is_ok());
        assert!(decode("e30=").is_err());
        assert!(decode("a+b/").is_err());
        assert!(decode("").is_err());
    }
}
