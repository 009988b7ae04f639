//! The hash ring of `ring_hash` clusters: each endpoint owns points on a
//! 64-bit ring in proportion to its weight; a key goes to the first point at
//! or after its hash. Removing one of N endpoints moves only its ~1/N keys.

use std::net::SocketAddr;

use xxhash_rust::xxh64::xxh64;

/// Points per unit of weight. Fixed (not derived from the endpoint count) so
/// that adding or removing an endpoint leaves every other endpoint's points
/// where they were.
const POINTS_PER_WEIGHT: u64 = 128;
/// Largest ring; bigger total weights are scaled down to fit.
const MAX_POINTS: u64 = 65_536;

/// A consistent-hash ring over endpoint indices.
#[derive(Debug, Default)]
pub struct Ring {
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// Builds the ring for `(address, weight)` endpoints, in index order.
    pub fn new(endpoints: &[(SocketAddr, u32)]) -> Self {
        let total: u64 = endpoints.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Self::default();
        }
        let scale = (total * POINTS_PER_WEIGHT).div_ceil(MAX_POINTS).max(1);
        let mut points =
            Vec::with_capacity((total * POINTS_PER_WEIGHT / scale) as usize + endpoints.len());
        for (index, (addr, weight)) in endpoints.iter().enumerate() {
            let replicas = (u64::from(*weight) * POINTS_PER_WEIGHT / scale).max(1);
            for replica in 0..replicas {
                let point = xxh64(format!("{addr}_{replica}").as_bytes(), 0);
                points.push((point, index));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// Endpoint indices in ring order starting at the key's position; the
    /// caller takes the first usable one.
    pub fn walk(&self, key: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|(point, _)| *point < key);
        let (after, before) = self.points.split_at(start);
        before.iter().chain(after.iter()).map(|(_, index)| *index)
    }
}

/// The ring position of a hash key.
pub fn hash_key(bytes: &[u8]) -> u64 {
    xxh64(bytes, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<(SocketAddr, u32)> {
        (0..n)
            .map(|i| (SocketAddr::from(([10, 0, 0, 1], 8000 + i)), 1))
            .collect()
    }

    fn owner(ring: &Ring, endpoints: &[(SocketAddr, u32)], key: &str) -> SocketAddr {
        endpoints[ring.walk(hash_key(key.as_bytes())).next().unwrap()].0
    }

    #[test]
    fn same_key_same_endpoint() {
        let endpoints = addrs(4);
        let ring = Ring::new(&endpoints);
        for key in ["alice", "bob", "carol"] {
            let first = owner(&ring, &endpoints, key);
            assert!((0..100).all(|_| owner(&ring, &endpoints, key) == first));
        }
    }

    #[test]
    fn removing_one_of_n_endpoints_moves_about_one_nth_of_keys() {
        let endpoints = addrs(5);
        let ring = Ring::new(&endpoints);
        let fewer: Vec<_> = endpoints[..4].to_vec();
        let smaller = Ring::new(&fewer);
        let keys: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
        let moved = keys
            .iter()
            .filter(|k| owner(&ring, &endpoints, k) != owner(&smaller, &fewer, k))
            .count();
        let removed = keys
            .iter()
            .filter(|k| owner(&ring, &endpoints, k) == endpoints[4].0)
            .count();
        assert_eq!(moved, removed, "only the removed endpoint's keys move");
        assert!(moved < 10_000 * 30 / 100, "moved {moved} of 10000");
    }

    #[test]
    fn weights_shape_the_share_of_keys() {
        let mut endpoints = addrs(2);
        endpoints[1].1 = 3;
        let ring = Ring::new(&endpoints);
        let heavy = (0..10_000)
            .filter(|i| owner(&ring, &endpoints, &format!("k{i}")) == endpoints[1].0)
            .count();
        assert!(
            (6_500..8_500).contains(&heavy),
            "weight 3 of 4 got {heavy} of 10000"
        );
    }
}
