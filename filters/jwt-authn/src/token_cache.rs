//! Verified tokens, per provider and VM, as Envoy's `jwt_cache_config`
//! keeps them: the expensive part of a request (base64 and strict JSON
//! parsing, and the signature: an RSA-2048 verification costs tens to
//! hundreds of microseconds in Wasm) is done once per token and key set.
//! An entry is keyed by the exact token text and remembers the key set that
//! verified it, so a refreshed key set (another `Rc`) never reuses an entry
//! and a token differing by one byte is verified afresh. What can change
//! between requests is checked on every request, cached or not: `exp` and
//! `nbf` against the clock, and the audience. Tokens longer than
//! `jwt_cache_max_token_bytes` are not kept, so the cache holds at most
//! `jwt_cache_size` × that many bytes of tokens (plus their claims).

use crate::jwk::KeySet;
use crate::verified::Verified;
use rustc_hash::FxHasher;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

/// Tokens kept per provider unless `jwt_cache_size` says otherwise (Envoy's default).
pub const DEFAULT_SIZE: usize = 100;
/// Longest token kept unless `jwt_cache_max_token_bytes` says otherwise (Envoy's default).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 4096;

/// A bounded map of verified tokens, least recently used evicted first.
///
/// Entries are found by a hash of the token and then compared with it in
/// full, word by word (Wasm's `memcmp` goes byte by byte). Two tokens with
/// the same hash share a slot: the later one replaces the earlier, which is
/// then verified afresh when it comes back.
#[derive(Debug, Default)]
pub struct TokenCache {
    capacity: usize,
    max_token_bytes: usize,
    clock: u64,
    entries: HashMap<u64, Entry, BuildHasherDefault<FxHasher>>,
}

#[derive(Debug)]
struct Entry {
    token: Box<[u8]>,
    verified: Rc<Verified>,
    used: u64,
}

/// The slot of `token`.
fn hash(token: &str) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write(token.as_bytes());
    hasher.finish()
}

/// True when `a` and `b` hold the same bytes, compared eight at a time.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tails_equal = wa.remainder() == wb.remainder();
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or_default());
    tails_equal && wa.zip(wb).all(|(x, y)| word(x) == word(y))
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (`0`: nothing is cached) of at
    /// most `max_token_bytes` each.
    pub fn new(capacity: usize, max_token_bytes: usize) -> Self {
        Self {
            capacity,
            max_token_bytes,
            ..Self::default()
        }
    }

    /// The facts of `token` if it verified with exactly `keys`.
    pub fn get(&mut self, token: &str, keys: &Rc<KeySet>) -> Option<Rc<Verified>> {
        if self.entries.is_empty() {
            return None;
        }
        self.clock += 1;
        match self.entries.get_mut(&hash(token)) {
            Some(entry)
                if same(&entry.token, token.as_bytes())
                    && Rc::ptr_eq(&entry.verified.keys, keys) =>
            {
                entry.used = self.clock;
                Some(Rc::clone(&entry.verified))
            }
            _ => None,
        }
    }

    /// Keeps the facts of `token` (unless caching is off or the token is
    /// longer than the limit), evicting the least recently used when full.
    pub fn insert(&mut self, token: &str, verified: &Rc<Verified>) {
        if self.capacity == 0 || token.len() > self.max_token_bytes {
            return;
        }
        let slot = hash(token);
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&slot) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(slot, _)| *slot);
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.clock += 1;
        let entry = Entry {
            token: token.as_bytes().into(),
            verified: Rc::clone(verified),
            used: self.clock,
        };
        self.entries.insert(slot, entry);
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no token is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Provider;
    use crate::jwk::Source;
    use crate::token::Token;

    fn keys() -> Rc<KeySet> {
        Rc::new(KeySet::parse(r#"{"keys": []}"#, Source::Inline).unwrap())
    }

    fn verified(keys: &Rc<KeySet>) -> Rc<Verified> {
        let token = Token {
            alg: crate::token::Alg::Hs256,
            kid: None,
            claims: serde_json::from_str(r#"{"iss": "i", "sub": "s"}"#).unwrap(),
            signing_input: b"",
            payload_b64: "",
            payload_json: Vec::new(),
            signature: vec![1],
        };
        let provider: Provider = serde_json::from_str(r#"{"issuer": "i", "jwks": "{}"}"#).unwrap();
        Rc::new(Verified::new(token, 0, &provider, Rc::clone(keys)))
    }

    #[test]
    fn a_token_is_found_only_with_the_key_set_that_verified_it() {
        let (first, refreshed) = (keys(), keys());
        let mut cache = TokenCache::new(10, 100);
        assert!(cache.get("a.b.c", &first).is_none());
        cache.insert("a.b.c", &verified(&first));
        let found = cache.get("a.b.c", &first).expect("cached");
        assert_eq!(found.principal.as_deref(), Some("i/s"));
        assert!(
            cache.get("a.b.c", &refreshed).is_none(),
            "a refreshed key set"
        );
        assert!(cache.get("a.b.d", &first).is_none(), "another token");
    }

    #[test]
    fn tokens_compare_in_full() {
        let long = "x".repeat(150);
        for (a, b, equal) in [
            ("", "", true),
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("abc", "abcd", false),
            (long.as_str(), long.as_str(), true),
        ] {
            assert_eq!(same(a.as_bytes(), b.as_bytes()), equal, "{a:?} {b:?}");
        }
        for at in 0..long.len() {
            let mut other = long.clone().into_bytes();
            other[at] = b'y';
            assert!(!same(long.as_bytes(), &other), "differs at {at}");
        }
        let keys = keys();
        let mut cache = TokenCache::new(10, 200);
        cache.insert(&long, &verified(&keys));
        let mut near = long.clone().into_bytes();
        near[149] = b'y';
        let near = String::from_utf8(near).unwrap();
        assert!(cache.get(&long, &keys).is_some());
        assert!(cache.get(&near, &keys).is_none(), "one byte off");
    }

    #[test]
    fn the_least_recently_used_token_goes_first_and_limits_hold() {
        let keys = keys();
        let v = verified(&keys);
        let mut cache = TokenCache::new(2, 100);
        cache.insert("one", &v);
        cache.insert("two", &v);
        assert!(cache.get("one", &keys).is_some());
        cache.insert("three", &v);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("one", &keys).is_some());
        assert!(cache.get("two", &keys).is_none(), "least recently used");
        assert!(cache.get("three", &keys).is_some());

        let mut none = TokenCache::new(0, 100);
        none.insert("one", &v);
        assert!(none.is_empty());

        let mut short = TokenCache::new(10, 4);
        short.insert("fits", &v);
        short.insert("too long", &v);
        assert_eq!(short.len(), 1, "tokens over the size limit are not kept");
    }
}
