//! Load balancing: which endpoint of a cluster takes a request. Policies are
//! weighted round robin, least request (power of two choices), weighted
//! random and ring hash. Every policy skips endpoints that are unhealthy,
//! ejected or already tried by this request, unless none would be left.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::endpoint::Endpoint;
use super::ring::Ring;
use wasp_config::LbPolicy;

/// A policy with the state it needs, built for one endpoint set.
#[derive(Debug)]
pub enum Balancer {
    /// Smooth weighted round robin over a precomputed schedule of indices.
    RoundRobin {
        /// Endpoint indices in serving order.
        schedule: Vec<usize>,
        /// Position in the schedule.
        next: AtomicUsize,
    },
    /// Power of two choices on active requests per weight.
    LeastRequest,
    /// Weighted random.
    Random,
    /// Consistent hashing.
    RingHash(Ring),
}

/// What a pick may use besides the endpoints.
pub struct PickContext<'a> {
    /// The request's hash key, for `ring_hash`.
    pub hash: Option<u64>,
    /// Endpoints this request already tried.
    pub tried: &'a [SocketAddr],
    /// Whether an endpoint may take traffic.
    pub usable: &'a dyn Fn(&Endpoint) -> bool,
}

/// Longest round-robin schedule; larger weights are scaled down to fit.
const MAX_SCHEDULE: u64 = 4096;

impl Balancer {
    /// Builds the policy for these endpoints.
    pub fn new(policy: LbPolicy, endpoints: &[Arc<Endpoint>]) -> Self {
        match policy {
            LbPolicy::RoundRobin => Self::RoundRobin {
                schedule: smooth_schedule(&endpoints.iter().map(|e| e.weight).collect::<Vec<_>>()),
                next: AtomicUsize::new(0),
            },
            LbPolicy::LeastRequest => Self::LeastRequest,
            LbPolicy::Random => Self::Random,
            LbPolicy::RingHash => Self::RingHash(Ring::new(
                &endpoints
                    .iter()
                    .map(|e| (e.addr, e.weight))
                    .collect::<Vec<_>>(),
            )),
        }
    }

    /// Picks an endpoint index, or `None` when there are no endpoints.
    pub fn pick(&self, endpoints: &[Arc<Endpoint>], cx: &PickContext<'_>) -> Option<usize> {
        if endpoints.is_empty() {
            return None;
        }
        let fresh = |i: usize| (cx.usable)(&endpoints[i]) && !cx.tried.contains(&endpoints[i].addr);
        let usable = |i: usize| (cx.usable)(&endpoints[i]);
        // Prefer usable endpoints not tried yet; then usable ones; then any.
        self.pick_where(endpoints, cx, &fresh)
            .or_else(|| self.pick_where(endpoints, cx, &usable))
            .or_else(|| self.pick_where(endpoints, cx, &|_| true))
    }

    fn pick_where(
        &self,
        endpoints: &[Arc<Endpoint>],
        cx: &PickContext<'_>,
        ok: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = endpoints.len();
        match self {
            Self::RoundRobin { schedule, next } => {
                // Every slot looked at is used up, so the turns of skipped
                // endpoints spread over the others instead of all going to
                // the next one in the schedule.
                let len = schedule.len();
                (0..len)
                    .map(|_| schedule[next.fetch_add(1, Ordering::Relaxed) % len])
                    .find(|i| *i < n && ok(*i))
            }
            Self::Random => {
                // A roll over the weights of the allowed endpoints only.
                let weight = |i: usize| u64::from(endpoints[i].weight);
                let total: u64 = (0..n).filter(|i| ok(*i)).map(weight).sum();
                if total == 0 {
                    return None;
                }
                let mut roll = fastrand::u64(0..total);
                (0..n).filter(|i| ok(*i)).find(|i| {
                    if roll < weight(*i) {
                        return true;
                    }
                    roll -= weight(*i);
                    false
                })
            }
            Self::LeastRequest => {
                let candidates: Vec<usize> = (0..n).filter(|i| ok(*i)).collect();
                match candidates.len() {
                    0 => None,
                    1 => Some(candidates[0]),
                    len => {
                        let a = candidates[fastrand::usize(0..len)];
                        let mut b = candidates[fastrand::usize(0..len - 1)];
                        if b == a {
                            b = candidates[len - 1];
                        }
                        let load = |i: usize| {
                            endpoints[i].active_requests() as f64 / f64::from(endpoints[i].weight)
                        };
                        Some(if load(b) < load(a) { b } else { a })
                    }
                }
            }
            Self::RingHash(ring) => match cx.hash {
                Some(key) => ring.walk(key).find(|i| *i < n && ok(*i)),
                None => {
                    let first = fastrand::usize(0..n);
                    (0..n).map(|k| (first + k) % n).find(|i| ok(*i))
                }
            },
        }
    }
}

/// A schedule where each index appears in proportion to its weight, spread
/// out (nginx's smooth weighted round robin).
fn smooth_schedule(weights: &[u32]) -> Vec<usize> {
    if weights.is_empty() {
        return Vec::new();
    }
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let scale = total.div_ceil(MAX_SCHEDULE).max(1);
    let weights: Vec<i64> = weights
        .iter()
        .map(|w| (u64::from(*w) / scale).max(1) as i64)
        .collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&weights) {
            *c += w;
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .expect("non-empty");
        current[best] -= total;
        schedule.push(best);
    }
    schedule
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_schedule_spreads_weights() {
        assert_eq!(smooth_schedule(&[1, 1, 1]), vec![0, 1, 2]);
        let s = smooth_schedule(&[5, 1, 1]);
        assert_eq!(s.len(), 7);
        assert_eq!(s.iter().filter(|i| **i == 0).count(), 5);
        assert_eq!(s, vec![0, 0, 1, 0, 2, 0, 0], "light endpoints interleaved");
    }

    /// Picks `n` times with endpoint `skip` unusable; counts per endpoint.
    fn spread(policy: LbPolicy, skip: usize, n: usize) -> Vec<usize> {
        let endpoints = crate::upstream::test_endpoints(4);
        let balancer = Balancer::new(policy, &endpoints);
        let excluded = endpoints[skip].addr;
        let usable = |e: &Endpoint| e.addr != excluded;
        let cx = PickContext {
            hash: None,
            tried: &[],
            usable: &usable,
        };
        let mut counts = vec![0; endpoints.len()];
        for _ in 0..n {
            counts[balancer.pick(&endpoints, &cx).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn an_unusable_endpoints_share_spreads_over_the_others() {
        assert_eq!(spread(LbPolicy::RoundRobin, 1, 300), vec![100, 0, 100, 100]);
        let counts = spread(LbPolicy::Random, 1, 6000);
        assert_eq!(counts[1], 0);
        for count in [counts[0], counts[2], counts[3]] {
            assert!((1700..2300).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn large_weights_are_scaled_to_a_bounded_schedule() {
        let s = smooth_schedule(&[1_000_000, 3_000_000]);
        assert!(s.len() <= MAX_SCHEDULE as usize + 2);
        let zeros = s.iter().filter(|i| **i == 0).count();
        assert!((zeros as f64 / s.len() as f64 - 0.25).abs() < 0.01);
    }
}
