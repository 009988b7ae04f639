//! Checks of the registered claims (RFC 7519 §4.1): `iss` (picks the
//! provider), `aud` against the provider's audiences, `exp` and `nbf` with
//! the clock skew; `iat` must be a NumericDate when present. Also reads
//! claims by dotted path for `output_claim_to_headers`.

use crate::reject::Reason;
use serde_json::{Map, Value};
use std::time::Duration;

type Claims = Map<String, Value>;

/// The token's `iss`.
pub fn issuer(claims: &Claims) -> Result<&str, (Reason, String)> {
    match claims.get("iss") {
        Some(Value::String(iss)) => Ok(iss),
        Some(_) => Err((Reason::Malformed, "iss is not a string".into())),
        None => Err((Reason::WrongIssuer, "no iss".into())),
    }
}

/// The token's `aud` values (a string or an array of strings).
pub fn audiences(claims: &Claims) -> Result<Vec<String>, (Reason, String)> {
    let bad = || {
        (
            Reason::Malformed,
            "aud is not a string or an array of strings".into(),
        )
    };
    match claims.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(aud)) => Ok(vec![aud.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|a| a.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// Checks that the token shares an audience with `accepted` (any token
/// passes when `accepted` is empty).
pub fn check_audience(accepted: &[String], token: &[String]) -> Result<(), (Reason, String)> {
    if accepted.is_empty() || token.iter().any(|a| accepted.contains(a)) {
        Ok(())
    } else {
        Err((Reason::WrongAudience, format!("aud {token:?} not accepted")))
    }
}

fn numeric_date(claims: &Claims, name: &str) -> Result<Option<f64>, (Reason, String)> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err((Reason::Malformed, format!("{name} is not a NumericDate"))),
    }
}

/// A token's `iat`, `exp` and `nbf`, each read once (a NumericDate, absent,
/// or not a number), so that a cached token is checked against the clock
/// without its claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Dates {
    iat: Result<Option<f64>, (Reason, String)>,
    exp: Result<Option<f64>, (Reason, String)>,
    nbf: Result<Option<f64>, (Reason, String)>,
}

impl Dates {
    /// The date claims of `claims`.
    pub fn read(claims: &Claims) -> Dates {
        Dates {
            iat: numeric_date(claims, "iat"),
            exp: numeric_date(claims, "exp"),
            nbf: numeric_date(claims, "nbf"),
        }
    }

    /// Checks `exp` and `nbf` against `now` (since the epoch) with `skew`;
    /// `iat` must be a NumericDate when present.
    pub fn check(&self, now: Duration, skew: Duration) -> Result<(), (Reason, String)> {
        let now = now.as_secs_f64();
        let skew = skew.as_secs_f64();
        self.iat.clone()?;
        if let Some(exp) = self.exp.clone()? {
            if now > exp + skew {
                return Err((Reason::Expired, format!("exp {exp} passed at {now:.0}")));
            }
        }
        if let Some(nbf) = self.nbf.clone()? {
            if now + skew < nbf {
                return Err((Reason::NotYetValid, format!("nbf {nbf} ahead of {now:.0}")));
            }
        }
        Ok(())
    }
}

/// Checks `exp` and `nbf` against `now` (seconds since the epoch) with `skew`.
pub fn check_time(claims: &Claims, now: Duration, skew: Duration) -> Result<(), (Reason, String)> {
    Dates::read(claims).check(now, skew)
}

/// A claim by dotted path (`realm.role`), as header text: strings as they
/// are, numbers and booleans as JSON; other kinds give `None`.
pub fn claim_text(claims: &Claims, path: &str) -> Option<String> {
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Claims {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn exp_and_nbf_allow_the_skew_and_no_more() {
        let skew = Duration::from_secs(60);
        let c = claims(r#"{"exp": 1000, "nbf": 900}"#);
        assert!(check_time(&c, Duration::from_secs(1060), skew).is_ok());
        assert_eq!(
            check_time(&c, Duration::from_secs(1061), skew)
                .unwrap_err()
                .0,
            Reason::Expired
        );
        assert!(check_time(&c, Duration::from_secs(840), skew).is_ok());
        let early = check_time(&c, Duration::from_secs(839), skew).unwrap_err();
        assert_eq!(early.0, Reason::NotYetValid);
    }

    #[test]
    fn non_numeric_dates_are_malformed() {
        let c = claims(r#"{"exp": "1000"}"#);
        let err = check_time(&c, Duration::ZERO, Duration::ZERO).unwrap_err();
        assert_eq!(err.0, Reason::Malformed);
    }

    #[test]
    fn nested_claims_are_read_by_dotted_path() {
        let c = claims(r#"{"a": {"b": {"c": "deep"}}, "n": 5, "t": true, "l": [1]}"#);
        assert_eq!(claim_text(&c, "a.b.c").as_deref(), Some("deep"));
        assert_eq!(claim_text(&c, "n").as_deref(), Some("5"));
        assert_eq!(claim_text(&c, "t").as_deref(), Some("true"));
        assert_eq!(claim_text(&c, "l"), None);
        assert_eq!(claim_text(&c, "a.x"), None);
    }
}
