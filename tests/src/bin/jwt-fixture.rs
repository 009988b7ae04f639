//! Prints JWT material for benchmarks as one JSON object: a JWK Set with
//! fresh keys (`jwks`) and, per algorithm (`RS256`, `ES256`, `EdDSA`), a
//! token of issuer `https://idp.test`, subject `alice`, audience `api`,
//! valid for a day (`tokens`). The keys live only in this process.
//!
//! ```text
//! cargo run -p wasp-e2e --bin jwt-fixture > fixture.json
//! ```

#![allow(clippy::print_stdout)]

use serde_json::json;
use wasp_e2e::jwt::{self, claims, token};

fn main() {
    let mut day = claims("https://idp.test", "alice");
    day["exp"] = json!(jwt::now() + 86_400);
    let tokens: serde_json::Map<String, serde_json::Value> =
        [("RS256", "rsa-1"), ("ES256", "ec-1"), ("EdDSA", "ed-1")]
            .into_iter()
            .map(|(alg, kid)| (alg.to_owned(), json!(token(alg, kid, &day))))
            .collect();
    println!("{}", json!({"jwks": jwt::jwks(false), "tokens": tokens}));
}
