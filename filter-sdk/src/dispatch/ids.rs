//! Maps keyed by context ids and tokens. The host numbers them from 1
//! upwards, so a multiplicative hash spreads them well; std's default
//! (SipHash with random keys) costs several times more per lookup inside a
//! Wasm VM, and every host callback looks its context up.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by a host-assigned id (a context id, a callout token;
/// a timer id is a `u64`): no random keys to draw when a map is made, and
/// one multiplication per lookup.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// An empty [`IdMap`], in a constant context.
pub(crate) const fn new_map<K, V>() -> IdMap<K, V> {
    HashMap::with_hasher(BuildHasherDefault::new())
}

/// Fibonacci hashing of integer keys.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_are_found_and_spread() {
        let mut map: IdMap<u32, u32> = IdMap::default();
        for id in 1..=1000 {
            map.insert(id, id * 2);
        }
        assert!((1..=1000).all(|id| map[&id] == id * 2));
        let hash = |n: u32| {
            let mut h = IdHasher::default();
            h.write_u32(n);
            h.finish()
        };
        // The top bits (hashbrown's control bytes) differ between neighbours.
        assert_ne!(hash(1) >> 57, hash(2) >> 57);
    }
}
