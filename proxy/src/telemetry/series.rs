//! The series a completed request is counted in
//! (`wasp_requests_total{listener,route,cluster,code}` and
//! `wasp_request_duration_seconds{listener,route}`), resolved once per
//! thread and label set instead of by a label lookup (hashing every label
//! under the metric's lock) per request.
//!
//! Each thread keeps the series of the label sets it saw, keyed by the
//! identity of the names (`Arc<str>` of the running snapshot's listeners,
//! routes and clusters) and the status code. An entry holds those `Arc`s,
//! so no name it is keyed by can be freed and its address reused for
//! another. A thread keeps at most [`MAX_ENTRIES`]; past that it starts
//! over (names of replaced snapshots go that way).

use std::cell::RefCell;
use std::sync::Arc;

use prometheus::{Histogram, IntCounter};

use super::Metrics;

/// Label sets one thread keeps resolved.
const MAX_ENTRIES: usize = 64;

/// The names and code a request is counted under.
pub struct Labels<'a> {
    /// The proxy's metrics.
    pub metrics: &'a Arc<Metrics>,
    /// Listener name.
    pub listener: &'a Arc<str>,
    /// Route name; `None`: `-`.
    pub route: Option<&'a Arc<str>>,
    /// Cluster name; `None`: `-`.
    pub cluster: Option<&'a Arc<str>>,
    /// Status code.
    pub code: http::StatusCode,
}

/// One resolved label set.
struct Entry {
    metrics: Arc<Metrics>,
    listener: Arc<str>,
    route: Option<Arc<str>>,
    cluster: Option<Arc<str>>,
    code: http::StatusCode,
    requests: IntCounter,
    duration: Histogram,
}

fn same(a: Option<&Arc<str>>, b: Option<&Arc<str>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl Entry {
    fn matches(&self, labels: &Labels<'_>) -> bool {
        self.code == labels.code
            && Arc::ptr_eq(&self.listener, labels.listener)
            && same(self.route.as_ref(), labels.route)
            && same(self.cluster.as_ref(), labels.cluster)
            && Arc::ptr_eq(&self.metrics, labels.metrics)
    }

    fn resolve(labels: &Labels<'_>) -> Self {
        let route = labels.route.map_or("-", |r| &**r);
        let cluster = labels.cluster.map_or("-", |c| &**c);
        let listener = &**labels.listener;
        Self {
            metrics: Arc::clone(labels.metrics),
            listener: Arc::clone(labels.listener),
            route: labels.route.cloned(),
            cluster: labels.cluster.cloned(),
            code: labels.code,
            requests: labels.metrics.requests_total.with_label_values(&[
                listener,
                route,
                cluster,
                labels.code.as_str(),
            ]),
            duration: labels
                .metrics
                .request_duration
                .with_label_values(&[listener, route]),
        }
    }
}

thread_local! {
    static RESOLVED: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Counts a completed request that took `seconds` in its series.
pub fn record(labels: &Labels<'_>, seconds: f64) {
    RESOLVED.with_borrow_mut(|resolved| {
        let index = match resolved.iter().position(|e| e.matches(labels)) {
            Some(index) => index,
            None => {
                if resolved.len() >= MAX_ENTRIES {
                    resolved.clear();
                }
                resolved.push(Entry::resolve(labels));
                resolved.len() - 1
            }
        };
        let entry = &resolved[index];
        entry.requests.inc();
        entry.duration.observe(seconds);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(metrics: &Metrics, labels: &[&str]) -> u64 {
        metrics.requests_total.with_label_values(labels).get()
    }

    #[test]
    fn requests_land_in_the_series_of_their_names_and_code() {
        let metrics = Arc::new(Metrics::new());
        let listener: Arc<str> = Arc::from("in");
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let cluster: Arc<str> = Arc::from("up");
        let labels = |route, code| Labels {
            metrics: &metrics,
            listener: &listener,
            route,
            cluster: Some(&cluster),
            code,
        };
        record(&labels(Some(&a), http::StatusCode::OK), 0.001);
        record(&labels(Some(&a), http::StatusCode::OK), 0.001);
        record(&labels(Some(&b), http::StatusCode::OK), 0.001);
        record(&labels(Some(&a), http::StatusCode::NOT_FOUND), 0.001);
        record(&labels(None, http::StatusCode::NOT_FOUND), 0.001);
        assert_eq!(count(&metrics, &["in", "a", "up", "200"]), 2);
        assert_eq!(count(&metrics, &["in", "b", "up", "200"]), 1);
        assert_eq!(count(&metrics, &["in", "a", "up", "404"]), 1);
        assert_eq!(count(&metrics, &["in", "-", "up", "404"]), 1);
        let duration = metrics.request_duration.with_label_values(&["in", "a"]);
        assert_eq!(duration.get_sample_count(), 3);
    }

    #[test]
    fn equal_names_of_another_snapshot_count_in_the_same_series() {
        let metrics = Arc::new(Metrics::new());
        for _ in 0..3 {
            // A reload makes new names with the same text.
            let listener: Arc<str> = Arc::from("in");
            let route: Arc<str> = Arc::from("r");
            record(
                &Labels {
                    metrics: &metrics,
                    listener: &listener,
                    route: Some(&route),
                    cluster: None,
                    code: http::StatusCode::OK,
                },
                0.001,
            );
        }
        assert_eq!(count(&metrics, &["in", "r", "-", "200"]), 3);
    }

    #[test]
    fn a_full_thread_cache_starts_over_and_still_counts() {
        let metrics = Arc::new(Metrics::new());
        let listener: Arc<str> = Arc::from("in");
        let routes: Vec<Arc<str>> = (0..MAX_ENTRIES * 2)
            .map(|i| Arc::from(format!("r{i}")))
            .collect();
        for route in routes.iter().chain(routes.iter()) {
            record(
                &Labels {
                    metrics: &metrics,
                    listener: &listener,
                    route: Some(route),
                    cluster: None,
                    code: http::StatusCode::OK,
                },
                0.001,
            );
        }
        for i in 0..MAX_ENTRIES * 2 {
            assert_eq!(count(&metrics, &["in", &format!("r{i}"), "-", "200"]), 2);
        }
        RESOLVED.with_borrow(|resolved| assert!(resolved.len() <= MAX_ENTRIES));
    }
}
