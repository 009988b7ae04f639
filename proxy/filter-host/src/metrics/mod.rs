//! Metrics: the ones filters define (`proxy_define_metric`), exported through
//! the proxy's Prometheus registry under the filter's own name (see [`name`]
//! for sanitizing and the reserved `wasp_` prefix), and the host's own
//! per-plugin counters (traps, timeouts, restarts, health).
//!
//! Filter metrics are process-wide and keyed by their exported name: every
//! plugin (and every VM of it) defining the same name gets the same id and
//! updates the same series, as Envoy's plugins share one stat per name. The
//! same name defined with another type is refused.

mod name;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use wasp_abi::{MetricType, Status};

use name::{MetricName, NameError};

/// Why `proxy_define_metric` refused a name; every case answers `BadArgument`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DefineError {
    /// The name cannot be exported.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The exported name is already a metric of another type.
    #[error("`{exported}` is already defined as a {defined:?}")]
    TypeMismatch {
        /// The sanitized name.
        exported: String,
        /// The type it was first defined with.
        defined: MetricType,
    },
    /// The registry refused the metric (e.g. a name registered by the proxy).
    #[error("`{exported}` cannot be registered: {source}")]
    Registry {
        /// The sanitized name.
        exported: String,
        /// The registry's reason.
        source: prometheus::Error,
    },
}

impl DefineError {
    /// The ABI status the filter gets.
    pub fn status(&self) -> Status {
        Status::BadArgument
    }
}

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
    /// `wasp_filter_limit_exceeded_total{plugin,limit}`: host allocations
    /// refused because a limit of the plugin would be exceeded.
    pub limit_exceeded: IntCounterVec,
    /// `wasp_filter_abi_misuse_total{plugin,call}`: hostcalls the filter
    /// misused (warnings are rate-limited, this counts every one).
    pub abi_misuse: IntCounterVec,
}

/// Registers a counter with the given labels.
fn labelled(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(vec.clone()))?;
    Ok(vec)
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
            limit_exceeded: labelled(
                &registry,
                "wasp_filter_limit_exceeded_total",
                "Host allocations refused because a plugin limit would be exceeded",
                &["plugin", "limit"],
            )?,
            abi_misuse: labelled(
                &registry,
                "wasp_filter_abi_misuse_total",
                "Hostcalls a filter misused (bad pointer, argument or enum value)",
                &["plugin", "call"],
            )?,
            registry,
            defined: Mutex::default(),
        })
    }

    /// Defines (or looks up) the metric a filter names: the same exported
    /// name gives the same id whichever plugin asks; another type, an empty
    /// name or one in the proxy's `wasp_` namespace is refused.
    pub fn define(&self, kind: MetricType, defined_name: &str) -> Result<u32, DefineError> {
        let name = MetricName::parse(defined_name)?;
        let mut defined = self.defined.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = defined.by_name.get(&name.family).copied() {
            let existing = defined.handles[id as usize].kind();
            return if existing == kind {
                Ok(id)
            } else {
                Err(DefineError::TypeMismatch {
                    exported: name.family,
                    defined: existing,
                })
            };
        }
        let full = &name.family;
        let registry_error = |source| DefineError::Registry {
            exported: full.clone(),
            source,
        };
        let help = format!("filter metric {defined_name}");
        let handle = match kind {
            MetricType::Counter => IntCounter::new(full, &help).map(Handle::Counter),
            MetricType::Gauge => IntGauge::new(full, &help).map(Handle::Gauge),
            MetricType::Histogram => {
                Histogram::with_opts(HistogramOpts::new(full, &help)).map(Handle::Histogram)
            }
        }
        .map_err(registry_error)?;
        let collector: Box<dyn prometheus::core::Collector> = match &handle {
            Handle::Counter(c) => Box::new(c.clone()),
            Handle::Gauge(g) => Box::new(g.clone()),
            Handle::Histogram(h) => Box::new(h.clone()),
        };
        self.registry.register(collector).map_err(registry_error)?;
        let id = defined.handles.len() as u32;
        defined.handles.push(handle);
        defined.by_name.insert(name.family, id);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Host metrics on a fresh registry, as the proxy's would be.
    fn metrics() -> (FilterMetrics, Registry) {
        let registry = Registry::new();
        (FilterMetrics::new(registry.clone()).unwrap(), registry)
    }

    /// The exported families of `registry`: name and the sum of their values.
    fn exported(registry: &Registry) -> Vec<(String, f64)> {
        registry
            .gather()
            .iter()
            .map(|family| {
                let sum = family
                    .get_metric()
                    .iter()
                    .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
                    .sum();
                (family.name().to_owned(), sum)
            })
            .collect()
    }

    #[test]
    fn a_filter_metric_is_exported_under_its_own_sanitized_name() {
        let (metrics, registry) = metrics();
        let id = metrics
            .define(MetricType::Counter, "compat.requests_total")
            .unwrap();
        metrics.increment(id, 3).unwrap();
        let families = exported(&registry);
        assert!(
            families.contains(&("compat_requests_total".to_owned(), 3.0)),
            "{families:?}"
        );
        assert!(
            !families
                .iter()
                .any(|(name, _)| name.contains("filter_metric")),
            "{families:?}"
        );
    }

    #[test]
    fn a_name_in_the_proxys_namespace_is_refused_and_the_proxys_metric_kept() {
        let (metrics, registry) = metrics();
        let proxy =
            IntCounterVec::new(Opts::new("wasp_requests_total", "proxy"), &["code"]).unwrap();
        registry.register(Box::new(proxy.clone())).unwrap();
        proxy.with_label_values(&["200"]).inc();
        for name in [
            "wasp_requests_total",
            "wasp.requests_total",
            "wasp_new_total",
        ] {
            let refused = metrics.define(MetricType::Counter, name);
            assert!(
                matches!(refused, Err(DefineError::Name(NameError::Reserved { .. }))),
                "{name}: {refused:?}"
            );
            assert_eq!(refused.unwrap_err().status(), Status::BadArgument);
        }
        let families = exported(&registry);
        assert!(families.contains(&("wasp_requests_total".to_owned(), 1.0)));
        assert!(!families.iter().any(|(name, _)| name == "wasp_new_total"));
    }

    #[test]
    fn a_name_the_registry_already_holds_is_refused() {
        let (metrics, registry) = metrics();
        let other = IntGauge::new("process_open_fds", "registered by someone else").unwrap();
        registry.register(Box::new(other)).unwrap();
        let refused = metrics.define(MetricType::Gauge, "process_open_fds");
        assert!(
            matches!(refused, Err(DefineError::Registry { .. })),
            "{refused:?}"
        );
        // A refused name is not remembered: defining it stays refused.
        assert!(
            metrics
                .define(MetricType::Gauge, "process_open_fds")
                .is_err()
        );
    }

    #[test]
    fn another_type_for_a_defined_name_is_refused() {
        let (metrics, _) = metrics();
        metrics.define(MetricType::Gauge, "compat.active").unwrap();
        let refused = metrics.define(MetricType::Counter, "compat_active");
        assert!(
            matches!(
                refused,
                Err(DefineError::TypeMismatch {
                    defined: MetricType::Gauge,
                    ..
                })
            ),
            "{refused:?}"
        );
    }
}
