//! Module signatures: Ed25519 ([`ed25519_dalek`]) over the text
//! `wasp module sha256:<hex>` of a module's sha256, so a signature binds
//! exactly those bytes and checking one needs only the hash. Keys and
//! signatures travel as lowercase hex: a secret key file holds the 32-byte
//! seed, a public key file the 32-byte key, a `.sig` file the 64-byte
//! signature, each on one line. `waspctl module sign` makes signatures;
//! a proxy given trusted keys ([`TrustedKeys`]) refuses modules without a
//! signature by one of them.

use ed25519_dalek::{Signature, Signer, Verifier};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// What is signed for the module with sha256 `sha256_hex`.
pub fn signed_message(sha256_hex: &str) -> Vec<u8> {
    format!("wasp module sha256:{}", sha256_hex.to_ascii_lowercase()).into_bytes()
}

/// Why a key or signature could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not hex, or not the right length.
    #[error("{what} must be {len} bytes as hex (got '{text}')")]
    Malformed {
        /// What was read: `secret key`, `public key`, `signature`.
        what: &'static str,
        /// The expected length in bytes.
        len: usize,
        /// The text read (cut short).
        text: String,
    },
    /// Hex of the right length that is not a valid Ed25519 public key.
    #[error("public key '{0}' is not a valid Ed25519 key")]
    InvalidKey(String),
}

fn decode<const N: usize>(what: &'static str, text: &str) -> Result<[u8; N], KeyError> {
    let text = text.trim();
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| KeyError::Malformed {
        what,
        len: N,
        text: text.chars().take(20).collect(),
    })?;
    Ok(out)
}

/// A secret key from its hex seed.
pub fn parse_secret_key(text: &str) -> Result<SigningKey, KeyError> {
    Ok(SigningKey::from_bytes(&decode("secret key", text)?))
}

/// A public key from hex.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = decode("public key", text)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidKey(text.trim().to_owned()))
}

/// A signature from hex (a `.sig` file's contents).
pub fn parse_signature(text: &str) -> Result<Vec<u8>, KeyError> {
    Ok(decode::<64>("signature", text)?.to_vec())
}

/// A secret key's seed as hex.
pub fn secret_key_hex(key: &SigningKey) -> String {
    hex::encode(key.to_bytes())
}

/// A public key as hex.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.to_bytes())
}

/// `key`'s signature of the module with sha256 `sha256_hex` (64 bytes).
pub fn sign(key: &SigningKey, sha256_hex: &str) -> Vec<u8> {
    key.sign(&signed_message(sha256_hex)).to_bytes().to_vec()
}

/// Why a module's signatures were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The module has no signature at all.
    #[error("is not signed, and this proxy requires a signature by a trusted key")]
    Unsigned,
    /// None of its signatures verifies with a trusted key.
    #[error(
        "has {0} signature(s) but none verifies with a trusted key (wrong key, or not these bytes)"
    )]
    Untrusted(usize),
}

/// The public keys a proxy trusts.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<VerifyingKey>,
}

impl TrustedKeys {
    /// Keys from a trusted-keys file: one hex public key per line; blank
    /// lines and `#` comments are skipped. Errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            keys.push(parse_public_key(line).map_err(|err| format!("line {}: {err}", n + 1))?);
        }
        if keys.is_empty() {
            return Err("no keys (one hex Ed25519 public key per line)".into());
        }
        Ok(Self { keys })
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Accepts the module `sha256_hex` when one of `signatures` verifies
    /// with one of the trusted keys.
    pub fn check(&self, sha256_hex: &str, signatures: &[Vec<u8>]) -> Result<(), SignatureError> {
        if signatures.is_empty() {
            return Err(SignatureError::Unsigned);
        }
        let message = signed_message(sha256_hex);
        let verified = signatures.iter().any(|bytes| {
            Signature::from_slice(bytes).is_ok_and(|sig| {
                self.keys
                    .iter()
                    .any(|key| key.verify(&message, &sig).is_ok())
            })
        });
        if verified {
            Ok(())
        } else {
            Err(SignatureError::Untrusted(signatures.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_signature_by_a_trusted_key_is_accepted_and_others_are_refused() {
        let trusted = TrustedKeys::parse(&format!(
            "# ops\n{}\n",
            public_key_hex(&key(1).verifying_key())
        ))
        .unwrap();
        assert_eq!(trusted.check(SHA, &[sign(&key(1), SHA)]), Ok(()));
        assert_eq!(
            trusted.check(SHA, &[sign(&key(2), SHA)]),
            Err(SignatureError::Untrusted(1))
        );
        let other_module = SHA.replace('a', "c");
        assert_eq!(
            trusted.check(SHA, &[sign(&key(1), &other_module)]),
            Err(SignatureError::Untrusted(1))
        );
        assert_eq!(trusted.check(SHA, &[]), Err(SignatureError::Unsigned));
        assert_eq!(
            trusted.check(SHA, &[vec![0; 3], sign(&key(1), SHA)]),
            Ok(())
        );
    }

    #[test]
    fn keys_round_trip_through_hex_and_bad_files_name_the_line() {
        let secret = key(7);
        let back = parse_secret_key(&secret_key_hex(&secret)).unwrap();
        assert_eq!(back.to_bytes(), secret.to_bytes());
        assert_eq!(
            TrustedKeys::parse("\nnope\n").unwrap_err(),
            "line 2: public key must be 32 bytes as hex (got 'nope')"
        );
        assert!(TrustedKeys::parse("# none\n").is_err());
        assert!(parse_signature("00").is_err());
    }
}
