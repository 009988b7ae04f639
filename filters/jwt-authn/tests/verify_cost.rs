//! Verification cost per request in the filter, for RS256, ES256 and EdDSA:
//! median over 10 000 distinct tokens of one `on_request_headers` on the
//! mock host (parse, signature, claims, publishing). Figures, not a pass/fail
//! check (distinct tokens, so each signature is verified; and one token
//! repeated, whose signature the filter's cache holds); run with
//! `cargo test -p jwt-authn --release --test verify_cost -- --ignored --nocapture`.

mod common;

use common::*;
use serde_json::json;
use std::time::Instant;

const TOKENS: usize = 10_000;

fn median_micros(alg: &str, kid: &str, signer: Signer<'_>, distinct: bool) -> f64 {
    let tokens: Vec<String> = (0..TOKENS)
        .map(|i| {
            let mut c = claims();
            c["jti"] = json!(if distinct { i } else { 0 });
            token(alg, Some(kid), signer, &c)
        })
        .collect();
    let mut host = host(&config(json!({})));
    let mut times: Vec<f64> = tokens
        .iter()
        .map(|t| {
            let value = format!("Bearer {t}");
            let headers = [
                (":method", "GET"),
                (":path", "/data"),
                (":authority", "api.test"),
                ("authorization", value.as_str()),
            ];
            let mut stream = host.stream();
            let start = Instant::now();
            stream.request_headers(&headers, true);
            let spent = start.elapsed().as_secs_f64() * 1e6;
            assert!(stream.local_reply().is_none(), "{:?}", host.logs().last());
            stream.finish();
            spent
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[test]
#[ignore = "prints figures; run in release"]
fn verification_cost_per_request() {
    let k = keys();
    for (alg, kid, signer) in [
        ("RS256", "rsa", Signer::Rsa(&k.rsa)),
        ("ES256", "p256", Signer::P256),
        ("EdDSA", "ed", Signer::Ed),
    ] {
        let fresh = median_micros(alg, kid, signer, true);
        let cached = median_micros(alg, kid, signer, false);
        eprintln!(
            "jwt-authn native {alg}: median {fresh:.1} µs per request over {TOKENS} distinct tokens, \
             {cached:.1} µs for a token whose signature is cached"
        );
    }
}
