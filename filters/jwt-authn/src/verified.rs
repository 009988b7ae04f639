//! [`Verified`]: what a token whose signature verified establishes, read
//! from its claims once: its date claims (checked against the clock on every
//! request), its audiences, and everything the filter publishes for it
//! (properties, output headers). Built after verification and kept in the
//! token cache, so a cached token is admitted without parsing it again.

use crate::claims::{self, Dates};
use crate::config::Provider;
use crate::jwk::KeySet;
use crate::reject::Reason;
use crate::token::Token;
use serde_json::Value;
use std::rc::Rc;
use std::time::Duration;

/// A token whose signature verified with `keys` for `provider`.
#[derive(Debug)]
pub struct Verified {
    /// The provider (index in the configuration) whose keys verified it.
    pub provider: usize,
    /// The key set that verified it: a refreshed set is another `Rc`.
    pub keys: Rc<KeySet>,
    /// `iat`, `exp`, `nbf`.
    pub dates: Dates,
    /// The `aud` values, or why they are malformed.
    pub audiences: Result<Vec<String>, (Reason, String)>,
    /// `request.auth.principal`: `iss/sub`, when both are strings.
    pub principal: Option<String>,
    /// `request.auth.audiences`: the audiences as a JSON array.
    pub audiences_json: Vec<u8>,
    /// `request.auth.presenter`: `azp`, when a string.
    pub presenter: Option<String>,
    /// `request.auth.claims`: the payload as JSON text.
    pub claims_json: Vec<u8>,
    /// The payload segment, for `output_payload_to_header`.
    pub payload_b64: String,
    /// Per `output_claim_to_headers` entry (by index): the claim's text when
    /// it is present and fit for a header.
    pub claim_headers: Vec<Option<String>>,
}

/// True when `value` may be a header value (no control characters but tab).
fn header_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

impl Verified {
    /// The facts of `token`, whose signature verified with `keys` of
    /// provider `index` (`provider`).
    pub fn new(token: Token<'_>, index: usize, provider: &Provider, keys: Rc<KeySet>) -> Verified {
        let claims = &token.claims;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let principal = match (text("iss"), text("sub")) {
            (Some(iss), Some(sub)) => Some(format!("{iss}/{sub}")),
            _ => None,
        };
        let audiences = claims::audiences(claims);
        let listed = audiences.clone().unwrap_or_default();
        let claim_headers = provider
            .output_claim_to_headers
            .iter()
            .map(|out| claims::claim_text(claims, &out.claim).filter(|v| header_safe(v)))
            .collect();
        Verified {
            provider: index,
            keys,
            dates: Dates::read(claims),
            audiences_json: serde_json::to_vec(&listed).unwrap_or_default(),
            audiences,
            principal,
            presenter: text("azp").map(str::to_owned),
            payload_b64: token.payload_b64.to_owned(),
            claim_headers,
            claims_json: token.payload_json,
        }
    }

    /// Checks what may change from one request to the next or depends on
    /// the provider's settings: the dates against `now` with the provider's
    /// skew, then the audiences.
    pub fn check(&self, provider: &Provider, now: Duration) -> Result<(), (Reason, String)> {
        self.dates.check(now, provider.skew())?;
        let audiences = self.audiences.as_ref().map_err(Clone::clone)?;
        claims::check_audience(&provider.audiences, audiences)
    }
}
