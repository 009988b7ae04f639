//! Prints an HS256 token for the demo's `jwt-authn` filter: issuer
//! `https://demo.wasp`, audience `demo`, the given subject and groups, valid
//! for an hour, signed with the demo's shared secret (the `oct` key of
//! `examples/demo/wasp.yaml`). Demo material only: a real deployment uses
//! asymmetric keys from its identity provider.
//!
//! ```text
//! demo-token alice admins      # sub alice, groups ["admins"]
//! demo-token bob               # sub bob, no groups
//! ```

#![allow(clippy::print_stdout)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The demo's shared secret; `examples/demo/wasp.yaml` holds it as
/// base64url (`k` of its `oct` key).
const SECRET: &[u8] = b"wasp-demo-secret-do-not-use-in-production";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let sub = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: demo-token SUBJECT [GROUP...]"))?;
    let groups: Vec<String> = args.collect();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let header = serde_json::json!({"alg": "HS256", "kid": "demo", "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": "https://demo.wasp", "sub": sub, "aud": "demo", "groups": groups,
        "iat": now, "nbf": now, "exp": now + 3600,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET)?;
    mac.update(input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    println!("{input}.{signature}");
    Ok(())
}
