//! Tokens whose signature already verified, per VM: the expensive step of a
//! request (an RSA-2048 verification costs tens to hundreds of microseconds
//! in Wasm) is done once per token and key set, as Envoy's `jwt_cache_config`
//! does. An entry records the exact token bytes and the key set that
//! verified it, so a refreshed key set (another `Rc`) never reuses an entry
//! and a token differing by one byte is verified afresh. Only the signature
//! is cached: time, issuer and audience are checked on every request.

use crate::jwk::KeySet;
use std::collections::HashMap;
use std::rc::Rc;

/// Tokens kept per provider unless `jwt_cache_size` says otherwise.
pub const DEFAULT_SIZE: usize = 100;

/// A bounded map of verified tokens, least recently used evicted first.
#[derive(Debug, Default)]
pub struct SignatureCache {
    capacity: usize,
    clock: u64,
    entries: HashMap<Box<str>, Entry>,
}

#[derive(Debug)]
struct Entry {
    keys: Rc<KeySet>,
    used: u64,
}

impl SignatureCache {
    /// A cache of at most `capacity` tokens (`0`: nothing is cached).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    /// True when `token`'s signature verified with exactly `keys`.
    pub fn verified(&mut self, token: &str, keys: &Rc<KeySet>) -> bool {
        self.clock += 1;
        match self.entries.get_mut(token) {
            Some(entry) if Rc::ptr_eq(&entry.keys, keys) => {
                entry.used = self.clock;
                true
            }
            _ => false,
        }
    }

    /// Records that `token`'s signature verified with `keys`.
    pub fn insert(&mut self, token: &str, keys: &Rc<KeySet>) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(token) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(t, _)| t.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.clock += 1;
        let entry = Entry {
            keys: Rc::clone(keys),
            used: self.clock,
        };
        self.entries.insert(token.into(), entry);
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
    use crate::jwk::Source;

    fn keys() -> Rc<KeySet> {
        Rc::new(KeySet::parse(r#"{"keys": []}"#, Source::Inline).unwrap())
    }

    #[test]
    fn a_token_is_verified_only_with_the_key_set_that_verified_it() {
        let (first, refreshed) = (keys(), keys());
        let mut cache = SignatureCache::new(10);
        assert!(!cache.verified("a.b.c", &first));
        cache.insert("a.b.c", &first);
        assert!(cache.verified("a.b.c", &first));
        assert!(!cache.verified("a.b.c", &refreshed), "a refreshed key set");
        assert!(!cache.verified("a.b.d", &first), "another token");
    }

    #[test]
    fn the_least_recently_used_token_goes_first_and_size_zero_keeps_none() {
        let keys = keys();
        let mut cache = SignatureCache::new(2);
        cache.insert("one", &keys);
        cache.insert("two", &keys);
        assert!(cache.verified("one", &keys));
        cache.insert("three", &keys);
        assert_eq!(cache.len(), 2);
        assert!(cache.verified("one", &keys));
        assert!(!cache.verified("two", &keys), "least recently used");
        assert!(cache.verified("three", &keys));

        let mut none = SignatureCache::new(0);
        none.insert("one", &keys);
        assert!(none.is_empty());
    }
}
