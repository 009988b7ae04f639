//! Metrics: the ones filters define (`proxy_define_metric`), exported through
//! the proxy's Prometheus registry as `wasp_filter_metric_<name>`, and the
//! host's own per-plugin counters (traps, timeouts, restarts, health).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use wasp_abi::{MetricType, Status};

enum Handle {
    Counter(IntCounter),
    Gauge(IntGauge),
    Histogram(Histogram),
}

impl Handle {
    fn kind(&self) -> MetricType {
        match self {
            Self::Counter(_) => MetricType::Counter,
            Self::Gauge(_) => MetricType::Gauge,
            Self::Histogram(_) => MetricType::Histogram,
        }
    }
}

#[derive(Default)]
struct Defined {
    handles: Vec<Handle>,
    by_name: HashMap<String, u32>,
}

/// Metrics defined by filters, process-wide (ids are shared by all VMs).
pub(crate) struct FilterMetrics {
    registry: Registry,
    defined: Mutex<Defined>,
    /// `wasp_filter_traps_total{plugin}`.
    pub traps: IntCounterVec,
    /// `wasp_filter_timeouts_total{plugin}`.
    pub timeouts: IntCounterVec,
    /// `wasp_filter_restarts_total{plugin}`.
    pub restarts: IntCounterVec,
    /// `wasp_filter_healthy{plugin}`: 1 healthy, 0 crash-looping.
    pub healthy: IntGaugeVec,
    /// `wasp_filter_vms{plugin}`: live VMs.
    pub vms: IntGaugeVec,
}

/// Turns a filter's metric name into a Prometheus-safe one.
fn prometheus_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("wasp_filter_metric_{cleaned}")
}

impl FilterMetrics {
    /// Registers the host's metrics in `registry`.
    pub fn new(registry: Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let vec = IntCounterVec::new(Opts::new(name, help), &["plugin"])?;
            registry.register(Box::new(vec.clone()))?;
            Ok(vec)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGaugeVec, prometheus::Error> {
            let vec = IntGaugeVec::new(Opts::new(name, help), &["plugin"])?;
            registry.register(Box::new(vec.clone()))?;
            Ok(vec)
        };
        Ok(Self {
            traps: counter(
                "wasp_filter_traps_total",
                "VMs killed by a trap or out-of-memory",
            )?,
            timeouts: counter(
                "wasp_filter_timeouts_total",
                "Callbacks cut off at their CPU deadline",
            )?,
            restarts: counter(
                "wasp_filter_restarts_total",
                "VMs re-created after a failure",
            )?,
            healthy: gauge(
                "wasp_filter_healthy",
                "1 when the plugin is healthy, 0 when crash-looping",
            )?,
            vms: gauge("wasp_filter_vms", "Live VMs of the plugin")?,
            registry,
            defined: Mutex::default(),
        })
    }

    /// Defines (or looks up) a metric; the same name with another type is an error.
    pub fn define(&self, kind: MetricType, name: &str) -> Result<u32, Status> {
        let mut defined = self.defined.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = defined.by_name.get(name).copied() {
            return if defined.handles[id as usize].kind() == kind {
                Ok(id)
            } else {
                Err(Status::BadArgument)
            };
        }
        let full = prometheus_name(name);
        let help = format!("filter metric {name}");
        let handle = match kind {
            MetricType::Counter => IntCounter::new(&full, &help).map(Handle::Counter),
            MetricType::Gauge => IntGauge::new(&full, &help).map(Handle::Gauge),
            MetricType::Histogram => {
                Histogram::with_opts(HistogramOpts::new(&full, &help)).map(Handle::Histogram)
            }
        }
        .map_err(|_| Status::BadArgument)?;
        let collector: Box<dyn prometheus::core::Collector> = match &handle {
            Handle::Counter(c) => Box::new(c.clone()),
            Handle::Gauge(g) => Box::new(g.clone()),
            Handle::Histogram(h) => Box::new(h.clone()),
        };
        if let Err(err) = self.registry.register(collector) {
            tracing::warn!(metric = %full, error = %err, "filter metric not exported");
        }
        let id = defined.handles.len() as u32;
        defined.handles.push(handle);
        defined.by_name.insert(name.to_owned(), id);
        Ok(id)
    }

    fn with<R>(&self, id: u32, f: impl FnOnce(&Handle) -> Result<R, Status>) -> Result<R, Status> {
        let defined = self.defined.lock().unwrap_or_else(PoisonError::into_inner);
        f(defined.handles.get(id as usize).ok_or(Status::NotFound)?)
    }

    /// Adds `offset` to a counter (non-negative) or gauge.
    pub fn increment(&self, id: u32, offset: i64) -> Result<(), Status> {
        self.with(id, |h| match h {
            Handle::Counter(c) if offset >= 0 => {
                c.inc_by(offset as u64);
                Ok(())
            }
            Handle::Gauge(g) => {
                g.add(offset);
                Ok(())
            }
            _ => Err(Status::BadArgument),
        })
    }

    /// Sets a gauge, or records a histogram sample.
    pub fn record(&self, id: u32, value: u64) -> Result<(), Status> {
        self.with(id, |h| match h {
            Handle::Gauge(g) => {
                g.set(value as i64);
                Ok(())
            }
            Handle::Histogram(hist) => {
                hist.observe(value as f64);
                Ok(())
            }
            Handle::Counter(c) => {
                let current = c.get();
                if value >= current {
                    c.inc_by(value - current);
                    Ok(())
                } else {
                    Err(Status::BadArgument)
                }
            }
        })
    }

    /// The current value of a counter or gauge.
    pub fn get(&self, id: u32) -> Result<u64, Status> {
        self.with(id, |h| match h {
            Handle::Counter(c) => Ok(c.get()),
            Handle::Gauge(g) => Ok(g.get() as u64),
            Handle::Histogram(_) => Err(Status::BadArgument),
        })
    }
}
