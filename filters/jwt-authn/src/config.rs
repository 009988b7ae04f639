//! The filter's configuration: Istio's `RequestAuthentication.jwtRules` in
//! snake_case, deserialized with `deny_unknown_fields` and checked so that a
//! bad configuration fails `on_configure` with an error naming the field
//! (`providers[0].clock_skew: …`).

use serde::Deserialize;
use std::time::Duration;

/// How often a provider's `jwks_uri` is fetched again (`jwks_refresh`).
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
/// The least time between two fetches of one provider's JWKS triggered by
/// tokens naming an unknown `kid`.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Leeway for `exp` and `nbf` (`clock_skew`).
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Largest token accepted (`max_token_bytes`).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Most tokens `jwt_cache_size` may keep per provider and VM.
pub const MAX_JWT_CACHE_SIZE: usize = 10_000;
/// Timeout of a JWKS fetch (`jwks_timeout`).
pub const DEFAULT_JWKS_TIMEOUT: Duration = Duration::from_secs(5);

/// The plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The token issuers this filter accepts.
    pub providers: Vec<Provider>,
    /// Reject requests that carry no token (401). Default false: like
    /// Istio, a request without a token passes and authorization decides.
    #[serde(default)]
    pub require: bool,
    /// The realm named in `www-authenticate` (default: the request's
    /// `scheme://host/path`, as Envoy does).
    #[serde(default)]
    pub realm: Option<String>,
}

/// One issuer (one entry of Istio's `jwtRules`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// The `iss` tokens of this provider carry.
    pub issuer: String,
    /// Accepted `aud` values; empty: `aud` is not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// An inline JWK Set (JSON text).
    #[serde(default)]
    pub jwks: Option<String>,
    /// Where to fetch the JWK Set (`http://host[:port]/path`).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The cluster the JWKS fetch goes to.
    #[serde(default)]
    pub jwks_cluster: Option<String>,
    /// How often the JWKS is fetched again (e.g. `5m`).
    #[serde(default, with = "duration_opt")]
    pub jwks_refresh: Option<Duration>,
    /// Timeout of one JWKS fetch (e.g. `5s`).
    #[serde(default, with = "duration_opt")]
    pub jwks_timeout: Option<Duration>,
    /// Headers holding a token after a prefix.
    #[serde(default)]
    pub from_headers: Vec<FromHeader>,
    /// Query parameters holding a token.
    #[serde(default)]
    pub from_params: Vec<String>,
    /// Cookies holding a token.
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// Keep the token in the request sent upstream.
    #[serde(default)]
    pub forward_original_token: bool,
    /// Header that receives the verified payload (base64url, as Envoy).
    #[serde(default)]
    pub output_payload_to_header: Option<String>,
    /// Claims copied to request headers.
    #[serde(default)]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// Leeway for `exp` and `nbf` (e.g. `60s`).
    #[serde(default, with = "duration_opt")]
    pub clock_skew: Option<Duration>,
    /// Largest token accepted, in bytes.
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    /// Verified tokens each VM remembers (Envoy's
    /// `jwt_cache_config.jwt_cache_size`); `0` verifies every request.
    #[serde(default)]
    pub jwt_cache_size: Option<usize>,
    /// Longest token the cache keeps, in bytes (Envoy's
    /// `jwt_cache_config.jwt_max_token_size`); longer ones are verified on
    /// every request.
    #[serde(default)]
    pub jwt_cache_max_token_bytes: Option<usize>,
}

/// A header that carries a token after `prefix`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FromHeader {
    /// Header name.
    pub name: String,
    /// What precedes the token (compared ignoring ASCII case), e.g. `Bearer `.
    #[serde(default)]
    pub prefix: String,
}

/// A claim copied to a request header.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeader {
    /// The request header to set.
    pub header: String,
    /// The claim; `.` separates the names of nested claims (`realm.role`).
    pub claim: String,
}

impl Provider {
    /// The header locations, with Istio's default (`Authorization: Bearer `)
    /// when no location of any kind is configured.
    pub fn header_locations(&self) -> Vec<FromHeader> {
        if self.has_no_location() {
            vec![FromHeader {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            }]
        } else {
            self.from_headers.clone()
        }
    }

    /// The query parameters, with Istio's default (`access_token`) when no
    /// location of any kind is configured.
    pub fn param_locations(&self) -> Vec<String> {
        if self.has_no_location() {
            vec!["access_token".into()]
        } else {
            self.from_params.clone()
        }
    }

    fn has_no_location(&self) -> bool {
        self.from_headers.is_empty() && self.from_params.is_empty() && self.from_cookies.is_empty()
    }

    /// `jwks_refresh` or its default.
    pub fn refresh(&self) -> Duration {
        self.jwks_refresh.unwrap_or(DEFAULT_JWKS_REFRESH)
    }

    /// `clock_skew` or its default.
    pub fn skew(&self) -> Duration {
        self.clock_skew.unwrap_or(DEFAULT_CLOCK_SKEW)
    }

    /// `max_token_bytes` or its default.
    pub fn max_token(&self) -> usize {
        self.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES)
    }

    /// `jwt_cache_size` or its default.
    pub fn cache_size(&self) -> usize {
        self.jwt_cache_size
            .unwrap_or(crate::token_cache::DEFAULT_SIZE)
    }

    /// `jwt_cache_max_token_bytes` or its default.
    pub fn cache_max_token(&self) -> usize {
        self.jwt_cache_max_token_bytes
            .unwrap_or(crate::token_cache::DEFAULT_MAX_TOKEN_BYTES)
    }
}

/// Reads and checks the configuration; the error names the field.
pub fn parse(value: serde_json::Value) -> Result<Config, String> {
    let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        format!("{path}: {}", e.into_inner())
    })?;
    validate(&config)?;
    Ok(config)
}

fn validate(config: &Config) -> Result<(), String> {
    if config.providers.is_empty() {
        return Err("providers: at least one provider is needed".into());
    }
    for (i, p) in config.providers.iter().enumerate() {
        let at = |field: &str| format!("providers[{i}].{field}");
        if p.issuer.is_empty() {
            return Err(format!("{}: must not be empty", at("issuer")));
        }
        if config.providers[..i].iter().any(|o| o.issuer == p.issuer) {
            return Err(format!(
                "{}: `{}` is already a provider",
                at("issuer"),
                p.issuer
            ));
        }
        match (&p.jwks, &p.jwks_uri, &p.jwks_cluster) {
            (Some(_), None, None) => {}
            (None, Some(uri), Some(cluster)) => {
                crate::jwks_fetch::split_uri(uri)
                    .map_err(|e| format!("{}: {e}", at("jwks_uri")))?;
                if cluster.is_empty() {
                    return Err(format!("{}: must not be empty", at("jwks_cluster")));
                }
            }
            (None, Some(_), None) => {
                return Err(format!("{}: needed with jwks_uri", at("jwks_cluster")));
            }
            (None, None, Some(_)) => {
                return Err(format!("{}: needed with jwks_cluster", at("jwks_uri")));
            }
            (None, None, None) => {
                return Err(format!("{}: one of jwks or jwks_uri is needed", at("jwks")));
            }
            (Some(_), _, _) => {
                return Err(format!("{}: give jwks or jwks_uri, not both", at("jwks")));
            }
        }
        if p.cache_size() > MAX_JWT_CACHE_SIZE {
            return Err(format!(
                "{}: {} is more than {MAX_JWT_CACHE_SIZE}",
                at("jwt_cache_size"),
                p.cache_size()
            ));
        }
        if p.cache_max_token() == 0 {
            return Err(format!(
                "{}: must be more than zero (jwt_cache_size: 0 turns the cache off)",
                at("jwt_cache_max_token_bytes")
            ));
        }
        if let Some(text) = &p.jwks {
            let set = crate::jwk::KeySet::parse(text, crate::jwk::Source::Inline)
                .map_err(|e| format!("{}: {e}", at("jwks")))?;
            if set.is_empty() {
                return Err(format!("{}: holds no usable key", at("jwks")));
            }
        }
        if p.refresh().is_zero() {
            return Err(format!("{}: must be more than zero", at("jwks_refresh")));
        }
        if p.max_token() == 0 {
            return Err(format!("{}: must be more than zero", at("max_token_bytes")));
        }
        for (j, h) in p.from_headers.iter().enumerate() {
            if h.name.is_empty() {
                return Err(format!(
                    "{}: must not be empty",
                    at(&format!("from_headers[{j}].name"))
                ));
            }
        }
        for (j, c) in p.output_claim_to_headers.iter().enumerate() {
            if c.header.is_empty() || c.claim.is_empty() {
                let field = format!("output_claim_to_headers[{j}]");
                return Err(format!(
                    "{}: header and claim must not be empty",
                    at(&field)
                ));
            }
        }
    }
    Ok(())
}

/// Durations written as `30s`, `5m`, `1h 30m` (humantime).
mod duration_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration ({e})")))
    }
}
