//! Fetched key sets: the root context of every VM GETs a provider's
//! `jwks_uri` on its `jwks_cluster` and stores what it got in shared data,
//! where every VM of the plugin reads it. One VM fetches at a time (a lease
//! in shared data); a fetch is due when the stored set is older than
//! `jwks_refresh` (failed fetches are retried every `min(jwks_refresh, 30 s)`),
//! or when a request named an unknown `kid` and the last fetch started at
//! least 30 s ago. A failed fetch keeps the keys already stored.
//!
//! Shared data, per `jwks_cluster` + `jwks_uri` (`<base>`):
//! `<base>` = fetch time (ms, u64 little-endian) then the JWKS text;
//! `<base>.attempt` = when the last fetch started (ms);
//! `<base>.wanted` = when a request last named an unknown `kid` (ms).

use crate::config::{MIN_REFETCH_INTERVAL, Provider};
use crate::jwk::{KeySet, Source};
use std::rc::Rc;
use std::time::Duration;
use wasp_filter_sdk::shared;

/// Splits `http://host[:port]/path` into its authority and path.
pub fn split_uri(uri: &str) -> Result<(String, String), String> {
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest.as_bytes()[at] == b'/' => (&rest[..at], rest[at..].to_owned()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_owned()),
    };
    if authority.is_empty() || authority.contains(['@', ' ']) {
        return Err(format!("`{authority}` is not a host"));
    }
    Ok((authority.to_owned(), path))
}

/// One fetched provider's key set as this VM last read it from shared data.
#[derive(Debug)]
pub struct Fetched {
    /// Shared-data key of the stored set.
    pub base: String,
    /// `jwks_cluster`.
    pub cluster: String,
    /// Authority of `jwks_uri`.
    pub authority: String,
    /// Path of `jwks_uri`.
    pub path: String,
    /// `jwks_refresh`.
    pub refresh: Duration,
    /// Fetch timeout.
    pub timeout: Duration,
    /// The keys and the shared-data version they were read from.
    cached: Option<(u32, Rc<KeySet>)>,
    /// When the stored set was fetched (ms), 0 if never.
    fetched_at: u64,
    /// A fetch from this VM is outstanding.
    pub in_flight: bool,
}

/// A little-endian `u64` in shared data (0 when unset or unreadable).
fn read_u64(key: &str) -> u64 {
    shared::get(key)
        .ok()
        .flatten()
        .and_then(|v| <[u8; 8]>::try_from(v.value.as_slice()).ok())
        .map_or(0, u64::from_le_bytes)
}

impl Fetched {
    /// The state of a provider with `jwks_uri`.
    pub fn new(provider: &Provider) -> Result<Fetched, String> {
        let uri = provider.jwks_uri.clone().unwrap_or_default();
        let cluster = provider.jwks_cluster.clone().unwrap_or_default();
        let (authority, path) = split_uri(&uri)?;
        Ok(Fetched {
            base: format!("jwt_authn.jwks.{cluster}.{uri}"),
            cluster,
            authority,
            path,
            refresh: provider.refresh(),
            timeout: provider
                .jwks_timeout
                .unwrap_or(crate::config::DEFAULT_JWKS_TIMEOUT),
            cached: None,
            fetched_at: 0,
            in_flight: false,
        })
    }

    /// The keys stored in shared data, re-read only when they changed.
    pub fn keys(&mut self) -> Option<Rc<KeySet>> {
        let stored = match shared::get(&self.base) {
            Ok(Some(stored)) => stored,
            _ => return self.cached.as_ref().map(|(_, k)| k.clone()),
        };
        if let Some((cas, keys)) = &self.cached {
            if *cas == stored.cas {
                return Some(keys.clone());
            }
        }
        let (at, text) = stored.value.split_at(stored.value.len().min(8));
        let at = <[u8; 8]>::try_from(at).map_or(0, u64::from_le_bytes);
        let set = std::str::from_utf8(text)
            .map_err(|e| e.to_string())
            .and_then(|t| KeySet::parse(t, Source::Fetched));
        match set {
            Ok(set) => {
                self.fetched_at = at;
                self.cached = Some((stored.cas, Rc::new(set)));
            }
            Err(e) => wasp_filter_sdk::warn!("jwt-authn: stored JWKS of {}: {e}", self.base),
        }
        self.cached.as_ref().map(|(_, k)| k.clone())
    }

    /// Records that a request named a `kid` the set does not hold.
    pub fn want_refresh(&self, now_ms: u64) {
        let key = format!("{}.wanted", self.base);
        if let Err(e) = shared::set(&key, &now_ms.to_le_bytes(), None) {
            wasp_filter_sdk::warn!("jwt-authn: {key}: {e}");
        }
    }

    /// True when this VM should fetch now; takes the lease if so.
    pub fn take_fetch(&mut self, now_ms: u64) -> bool {
        if self.in_flight {
            return false;
        }
        self.keys();
        let attempt_key = format!("{}.attempt", self.base);
        let attempt = shared::get(&attempt_key).ok().flatten();
        let last_attempt = attempt
            .as_ref()
            .and_then(|v| <[u8; 8]>::try_from(v.value.as_slice()).ok())
            .map_or(0, u64::from_le_bytes);
        let since_attempt = now_ms.saturating_sub(last_attempt);
        let refresh = millis(self.refresh);
        let min_refetch = millis(MIN_REFETCH_INTERVAL);
        let scheduled = (self.fetched_at == 0 || now_ms.saturating_sub(self.fetched_at) >= refresh)
            && (last_attempt == 0 || since_attempt >= refresh.min(min_refetch));
        let wanted = read_u64(&format!("{}.wanted", self.base));
        let for_kid = wanted > self.fetched_at && since_attempt >= min_refetch;
        if !(scheduled || for_kid) {
            return false;
        }
        // The lease: only the VM whose compare-and-swap lands fetches.
        let cas = attempt.map(|a| a.cas).filter(|cas| *cas != 0);
        shared::set(&attempt_key, &now_ms.to_le_bytes(), cas).is_ok()
    }

    /// Stores a fetched set for every VM; `Err` says why it was not usable.
    pub fn store(&mut self, now_ms: u64, body: &[u8]) -> Result<Rc<KeySet>, String> {
        let text = std::str::from_utf8(body).map_err(|_| "the JWKS is not UTF-8".to_owned())?;
        let set = KeySet::parse(text, Source::Fetched)?;
        if set.is_empty() {
            return Err(format!(
                "the JWKS holds no usable key ({})",
                set.skipped.join("; ")
            ));
        }
        let mut value = now_ms.to_le_bytes().to_vec();
        value.extend_from_slice(body);
        shared::set(&self.base, &value, None).map_err(|e| e.to_string())?;
        Ok(self.keys().unwrap_or_else(|| Rc::new(set)))
    }
}

/// Milliseconds of a duration, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::split_uri;

    #[test]
    fn uris_split_into_authority_and_path() {
        let (a, p) = split_uri("http://keys.example:8080/.well-known/jwks.json").unwrap();
        assert_eq!(
            (a.as_str(), p.as_str()),
            ("keys.example:8080", "/.well-known/jwks.json")
        );
        assert_eq!(split_uri("https://k").unwrap().1, "/");
        assert!(split_uri("ftp://k/x").is_err());
        assert!(split_uri("http:///x").is_err());
    }
}
