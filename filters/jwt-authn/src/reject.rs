//! Why a request is refused: one [`Reason`] per kind of failure, each with a
//! counter (`jwt_authn_rejected_<reason>_total`) and a name for the log, and
//! the 401 answer with `www-authenticate` (RFC 6750 §3).

use wasp_filter_sdk::Counter;

/// Why a token (or a request) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No token and `require: true`.
    Missing,
    /// Not a well-formed JWS/JWT.
    Malformed,
    /// Longer than `max_token_bytes`.
    TooLarge,
    /// Two different tokens in one request.
    MultipleTokens,
    /// `alg: none` in any spelling.
    AlgNone,
    /// An `alg` this filter does not verify.
    UnsupportedAlg,
    /// The key (by `kid`, or every key) does not fit the token's `alg`.
    KeyMismatch,
    /// A `kid` that is not in the key set.
    UnknownKid,
    /// The signature does not verify.
    BadSignature,
    /// `exp` has passed (beyond the clock skew).
    Expired,
    /// `nbf` is ahead (beyond the clock skew).
    NotYetValid,
    /// No provider has the token's `iss`.
    WrongIssuer,
    /// No audience in common with the provider's.
    WrongAudience,
    /// A `crit` header parameter (no extension is understood).
    UnknownCrit,
    /// The provider's key set could not be fetched yet.
    JwksUnavailable,
}

impl Reason {
    /// Every reason, in counter order.
    pub const ALL: [Reason; 15] = [
        Reason::Missing,
        Reason::Malformed,
        Reason::TooLarge,
        Reason::MultipleTokens,
        Reason::AlgNone,
        Reason::UnsupportedAlg,
        Reason::KeyMismatch,
        Reason::UnknownKid,
        Reason::BadSignature,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::WrongIssuer,
        Reason::WrongAudience,
        Reason::UnknownCrit,
        Reason::JwksUnavailable,
    ];

    /// The reason's name in logs and metric names.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::TooLarge => "too_large",
            Reason::MultipleTokens => "multiple_tokens",
            Reason::AlgNone => "alg_none",
            Reason::UnsupportedAlg => "unsupported_alg",
            Reason::KeyMismatch => "key_mismatch",
            Reason::UnknownKid => "unknown_kid",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::WrongAudience => "wrong_audience",
            Reason::UnknownCrit => "unknown_crit",
            Reason::JwksUnavailable => "jwks_unavailable",
        }
    }

    /// The counter of this reason.
    pub fn metric_name(self) -> String {
        format!("jwt_authn_rejected_{}_total", self.name())
    }
}

/// The filter's counters.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// One counter per [`Reason`], in [`Reason::ALL`] order.
    rejected: Vec<Counter>,
    /// Requests whose token verified.
    pub allowed: Counter,
    /// Requests without a token that passed (`require: false`).
    pub no_token: Counter,
    /// JWKS fetches that brought a usable key set.
    pub jwks_fetched: Counter,
    /// JWKS fetches that failed (or brought nothing usable).
    pub jwks_fetch_failed: Counter,
}

impl Metrics {
    /// Defines every counter.
    pub fn define() -> wasp_filter_sdk::Result<Metrics> {
        let rejected = Reason::ALL
            .iter()
            .map(|r| Counter::define(&r.metric_name()))
            .collect::<Result<_, _>>()?;
        Ok(Metrics {
            rejected,
            allowed: Counter::define("jwt_authn_allowed_total")?,
            no_token: Counter::define("jwt_authn_no_token_total")?,
            jwks_fetched: Counter::define("jwt_authn_jwks_fetched_total")?,
            jwks_fetch_failed: Counter::define("jwt_authn_jwks_fetch_failed_total")?,
        })
    }

    /// Counts a refusal.
    pub fn reject(&self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            self.rejected[i].increment(1);
        }
    }
}

/// The `www-authenticate` value of a refusal: with `error="invalid_token"`
/// when a token was presented, without an error when none was (RFC 6750 §3.1).
pub fn www_authenticate(realm: &str, reason: Reason) -> String {
    let realm = realm.replace(['"', '\\'], "");
    match reason {
        Reason::Missing => format!("Bearer realm=\"{realm}\""),
        _ => format!("Bearer realm=\"{realm}\", error=\"invalid_token\""),
    }
}

/// The body of a refusal (Envoy's wording).
pub fn body(reason: Reason) -> &'static str {
    match reason {
        Reason::Missing => "Jwt is missing",
        _ => "Jwt verification fails",
    }
}
