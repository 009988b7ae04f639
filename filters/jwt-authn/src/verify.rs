//! Signature verification with RustCrypto (`rsa`, `p256`, `p384`,
//! `ed25519-dalek`, `hmac`/`sha2`), and key selection: the key named by
//! `kid`, or without a `kid` each key that fits the algorithm in turn.
//! A key is used only for the algorithm its type (and `alg`) allows, so an
//! RSA public key can never serve as an HMAC secret.

use crate::jwk::{Key, KeySet, Material};
use crate::reject::Reason;
use crate::token::{Alg, Token};
use hmac::{Hmac, Mac};
use rsa::signature::Verifier;
use sha2::{Sha256, Sha384, Sha512};

/// Checks the token's signature against the provider's keys.
pub fn verify(token: &Token<'_>, keys: &KeySet) -> Result<(), (Reason, String)> {
    let alg = token.alg;
    let candidates: Vec<&Key> = match &token.kid {
        Some(kid) => {
            let named: Vec<&Key> = keys
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                .collect();
            if named.is_empty() {
                return Err((
                    Reason::UnknownKid,
                    format!("kid `{kid}` is not in the key set"),
                ));
            }
            let fitting: Vec<&Key> = named.into_iter().filter(|k| k.fits(alg)).collect();
            if fitting.is_empty() {
                let why = format!("alg {} does not fit key `{kid}`", alg.name());
                return Err((Reason::KeyMismatch, why));
            }
            fitting
        }
        None => {
            let fitting: Vec<&Key> = keys.keys.iter().filter(|k| k.fits(alg)).collect();
            if fitting.is_empty() {
                let why = format!("no key fits alg {}", alg.name());
                return Err((Reason::KeyMismatch, why));
            }
            fitting
        }
    };
    if candidates
        .iter()
        .any(|key| check(alg, &key.material, token.signing_input, &token.signature))
    {
        Ok(())
    } else {
        let why = format!("{} signature does not verify", alg.name());
        Err((Reason::BadSignature, why))
    }
}

/// True when `signature` over `input` verifies with `key` under `alg`.
pub fn check(alg: Alg, key: &Material, input: &[u8], signature: &[u8]) -> bool {
    match (alg, key) {
        (Alg::Rs256, Material::Rsa(k)) => pkcs1::<Sha256>(k, input, signature),
        (Alg::Rs384, Material::Rsa(k)) => pkcs1::<Sha384>(k, input, signature),
        (Alg::Rs512, Material::Rsa(k)) => pkcs1::<Sha512>(k, input, signature),
        (Alg::Ps256, Material::Rsa(k)) => pss::<Sha256>(k, input, signature),
        (Alg::Ps384, Material::Rsa(k)) => pss::<Sha384>(k, input, signature),
        (Alg::Ps512, Material::Rsa(k)) => pss::<Sha512>(k, input, signature),
        (Alg::Es256, Material::P256(k)) => {
            p256::ecdsa::Signature::from_slice(signature).is_ok_and(|s| k.verify(input, &s).is_ok())
        }
        (Alg::Es384, Material::P384(k)) => {
            p384::ecdsa::Signature::from_slice(signature).is_ok_and(|s| k.verify(input, &s).is_ok())
        }
        (Alg::EdDsa, Material::Ed25519(k)) => ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|s| k.verify_strict(input, &s).is_ok()),
        (Alg::Hs256, Material::Oct(k)) => hmac::<Hmac<Sha256>>(k, input, signature),
        (Alg::Hs384, Material::Oct(k)) => hmac::<Hmac<Sha384>>(k, input, signature),
        (Alg::Hs512, Material::Oct(k)) => hmac::<Hmac<Sha512>>(k, input, signature),
        _ => false,
    }
}

fn pkcs1<D>(key: &rsa::RsaPublicKey, input: &[u8], signature: &[u8]) -> bool
where
    D: sha2::Digest + rsa::pkcs8::AssociatedOid,
{
    let scheme = rsa::Pkcs1v15Sign::new::<D>();
    key.verify(scheme, &D::digest(input), signature).is_ok()
}

fn pss<D>(key: &rsa::RsaPublicKey, input: &[u8], signature: &[u8]) -> bool
where
    D: sha2::Digest + sha2::digest::DynDigest + Send + Sync + 'static,
{
    let scheme = rsa::Pss::new::<D>();
    key.verify(scheme, &D::digest(input), signature).is_ok()
}

fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8], signature: &[u8]) -> bool {
    let Ok(mut mac) = <M as Mac>::new_from_slice(key) else {
        return false;
    };
    mac.update(input);
    // Constant-time comparison.
    mac.verify_slice(signature).is_ok()
}
