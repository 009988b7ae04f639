//! Metric handles (`proxy_define_metric`): counters, gauges and histograms
//! the host exports (on wasp: `/metrics`). Define them once (for example in
//! `on_configure`) and keep the handle; updates are cheap host calls.

use crate::abi::hostcalls;
use crate::error::Result;
use wasp_abi::MetricType;

fn report(result: Result<()>) {
    if let Err(e) = result {
        crate::log::report(&e);
    }
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

    /// Records one value (failures are logged).
    pub fn record(&self, value: u64) {
        report(hostcalls::record_metric(self.id, value));
    }
}
