//! Metric handles (`proxy_define_metric`): counters, gauges and histograms
//! the host exports (on wasp: `/metrics`). Define them once (for example in
//! `on_configure`) and keep the handle; updates are cheap host calls.
//!
//! Labeled series: `Counter::with_labels("requests_total", &[("code", "200")])`
//! defines the series `requests_total{code="200"}` of the labeled family
//! `requests_total` (wasp exports it as one series of that family; hosts
//! without labeled metrics, such as Envoy, export the whole name as one
//! sanitized metric). Ids are cached per label set, so calling
//! `with_labels` on every request costs one name build and one map lookup
//! after the first time. See [`labeled_name`] for the name's form.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::abi::hostcalls;
use crate::error::Result;
use wasp_abi::MetricType;

fn report(result: Result<()>) {
    if let Err(e) = result {
        crate::log::report(&e);
    }
}

thread_local! {
    /// Ids of labeled series already defined, by type and full name.
    static LABELED: RefCell<HashMap<(u32, String), u32>> = RefCell::default();
}

/// Forgets the cached ids (a new mock host in native tests).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn reset_cache() {
    LABELED.with(|cache| cache.borrow_mut().clear());
}

/// The Prometheus-form name of one series: `family{k1="v1",k2="v2"}`, with
/// labels sorted by name and values escaped (`\\`, `\"`, `\n`). With no
/// labels, the family alone.
pub fn labeled_name(family: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return family.to_owned();
    }
    let mut sorted: Vec<&(&str, &str)> = labels.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut name = String::with_capacity(
        family.len()
            + 2
            + labels
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>(),
    );
    name.push_str(family);
    name.push('{');
    for (i, (key, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            name.push(',');
        }
        name.push_str(key);
        name.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => name.push_str("\\\\"),
                '"' => name.push_str("\\\""),
                '\n' => name.push_str("\\n"),
                c => name.push(c),
            }
        }
        name.push('"');
    }
    name.push('}');
    name
}

/// Defines the series of `family` with `labels`, or finds its cached id.
fn define_labeled(kind: MetricType, family: &str, labels: &[(&str, &str)]) -> Result<u32> {
    let key = (kind as u32, labeled_name(family, labels));
    if let Some(id) = LABELED.with(|cache| cache.borrow().get(&key).copied()) {
        return Ok(id);
    }
    let id = hostcalls::define_metric(kind, &key.1)?;
    LABELED.with(|cache| cache.borrow_mut().insert(key, id));
    Ok(id)
}

/// A monotonically increasing counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    id: u32,
}

impl Counter {
    /// Defines (or finds) the counter `name`.
    pub fn define(name: &str) -> Result<Counter> {
        Ok(Counter {
            id: hostcalls::define_metric(MetricType::Counter, name)?,
        })
    }

    /// The series of the labeled counter family `family` with `labels`
    /// (defined on first use, then cached). Fails when the host refuses it,
    /// e.g. a malformed label name or a family at its series cap.
    pub fn with_labels(family: &str, labels: &[(&str, &str)]) -> Result<Counter> {
        Ok(Counter {
            id: define_labeled(MetricType::Counter, family, labels)?,
        })
    }

    /// Adds `by` (failures are logged).
    pub fn increment(&self, by: u64) {
        report(hostcalls::increment_metric(
            self.id,
            i64::try_from(by).unwrap_or(i64::MAX),
        ));
    }

    /// The current value.
    pub fn value(&self) -> Result<u64> {
        hostcalls::get_metric(self.id)
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge {
    id: u32,
}

impl Gauge {
    /// Defines (or finds) the gauge `name`.
    pub fn define(name: &str) -> Result<Gauge> {
        Ok(Gauge {
            id: hostcalls::define_metric(MetricType::Gauge, name)?,
        })
    }

    /// The series of the labeled gauge family `family` with `labels`
    /// (defined on first use, then cached).
    pub fn with_labels(family: &str, labels: &[(&str, &str)]) -> Result<Gauge> {
        Ok(Gauge {
            id: define_labeled(MetricType::Gauge, family, labels)?,
        })
    }

    /// Sets the value (failures are logged).
    pub fn set(&self, value: u64) {
        report(hostcalls::record_metric(self.id, value));
    }

    /// Adds `delta`, which may be negative (failures are logged).
    pub fn add(&self, delta: i64) {
        report(hostcalls::increment_metric(self.id, delta));
    }

    /// The current value.
    pub fn value(&self) -> Result<u64> {
        hostcalls::get_metric(self.id)
    }
}

/// A distribution of recorded values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    id: u32,
}

impl Histogram {
    /// Defines (or finds) the histogram `name`.
    pub fn define(name: &str) -> Result<Histogram> {
        Ok(Histogram {
            id: hostcalls::define_metric(MetricType::Histogram, name)?,
        })
    }

    /// The series of the labeled histogram family `family` with `labels`
    /// (defined on first use, then cached).
    pub fn with_labels(family: &str, labels: &[(&str, &str)]) -> Result<Histogram> {
        Ok(Histogram {
            id: define_labeled(MetricType::Histogram, family, labels)?,
        })
    }

    /// Records one value (failures are logged).
    pub fn record(&self, value: u64) {
        report(hostcalls::record_metric(self.id, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labeled_names_sort_labels_and_escape_values() {
        assert_eq!(labeled_name("plain_total", &[]), "plain_total");
        assert_eq!(
            labeled_name("req_total", &[("b", "2"), ("a", "x\"y\\z\nw")]),
            r#"req_total{a="x\"y\\z\nw",b="2"}"#
        );
    }
}
