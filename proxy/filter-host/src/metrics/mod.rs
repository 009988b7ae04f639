//! Metrics: the ones filters define (`proxy_define_metric`), exported through
//! the proxy's Prometheus registry under the filter's own name (see [`name`]
//! for sanitizing, the labeled form and the reserved `wasp_` prefix), and the
//! host's own per-plugin counters (traps, timeouts, restarts, health).
//!
//! Filter metrics are process-wide and keyed by their exported series: every
//! plugin (and every VM of it) defining the same series gets the same id and
//! updates it, as Envoy's plugins share one stat per name. A name in the
//! labeled form `family{k="v"}` is one series of the labeled family
//! `family`; all series of a family have one type and one set of label
//! names, and a family holds at most [`FilterMetrics::max_series_per_family`]
//! series: defining more is refused and counted in
//! `wasp_filter_metric_series_dropped_total{family}`.
//!
//! Update semantics follow Envoy 1.40 (checked against its binary):
//! `proxy_increment_metric` adds to a counter (a negative offset is refused)
//! or a gauge; `proxy_record_metric` sets a gauge, records a histogram
//! sample, and *adds* its value to a counter. Histograms have Envoy's
//! default buckets ([`HISTOGRAM_BUCKETS`]), which are also Istio's.

mod name;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use wasp_abi::{MetricType, Status};

use name::{MetricName, NameError};

/// Envoy's default histogram bucket bounds (`supported_buckets`), used by
/// Istio for its duration and size histograms.
pub(crate) const HISTOGRAM_BUCKETS: &[f64] = &[
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Default most series per labeled family (`--metric-series-per-family`).
pub const DEFAULT_MAX_SERIES_PER_FAMILY: usize = 1000;

/// Why `proxy_define_metric` refused a name; every case answers `BadArgument`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DefineError {
    /// The name cannot be exported.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The exported name is already a metric of another type.
    #[error("`{exported}` is already defined as a {defined:?}")]
    TypeMismatch {
        /// The family name.
        exported: String,
        /// The type it was first defined with.
        defined: MetricType,
    },
    /// The family already has series with other label names.
    #[error("family `{family}` has labels {defined:?}, not {asked:?}")]
    LabelMismatch {
        /// The family name.
        family: String,
        /// The label names its first series had.
        defined: Vec<String>,
        /// The label names of the refused series.
        asked: Vec<String>,
    },
    /// `le` is the bucket label of a histogram's series.
    #[error("histogram `{family}` may not have an `le` label (it names the buckets)")]
    BucketLabel {
        /// The family name.
        family: String,
    },
    /// The family already holds the most series allowed.
    #[error("family `{family}` already has {max} series, the most allowed; series dropped")]
    TooManySeries {
        /// The family name.
        family: String,
        /// The cap.
        max: usize,
    },
    /// The registry refused the metric (e.g. a name registered by the proxy).
    #[error("`{exported}` cannot be registered: {source}")]
    Registry {
        /// The family name.
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

    /// A short key per kind of refusal, for rate-limiting warnings.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Name(_) => "name",
            Self::TypeMismatch { .. } => "type",
            Self::LabelMismatch { .. } => "labels",
            Self::BucketLabel { .. } => "le",
            Self::TooManySeries { .. } => "cardinality",
            Self::Registry { .. } => "registry",
        }
    }
}

/// One series a filter updates.
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

/// The registered collector of a family.
enum FamilyVec {
    Counter(IntCounterVec),
    Gauge(IntGaugeVec),
    Histogram(HistogramVec),
}

impl FamilyVec {
    fn new(kind: MetricType, family: &str, labels: &[&str]) -> Result<Self, prometheus::Error> {
        let help = format!("filter metric {family}");
        Ok(match kind {
            MetricType::Counter => {
                Self::Counter(IntCounterVec::new(Opts::new(family, help), labels)?)
            }
            MetricType::Gauge => Self::Gauge(IntGaugeVec::new(Opts::new(family, help), labels)?),
            MetricType::Histogram => Self::Histogram(HistogramVec::new(
                HistogramOpts::new(family, help).buckets(HISTOGRAM_BUCKETS.to_vec()),
                labels,
            )?),
        })
    }

    fn collector(&self) -> Box<dyn prometheus::core::Collector> {
        match self {
            Self::Counter(v) => Box::new(v.clone()),
            Self::Gauge(v) => Box::new(v.clone()),
            Self::Histogram(v) => Box::new(v.clone()),
        }
    }

    fn series(&self, values: &[&str]) -> Handle {
        match self {
            Self::Counter(v) => Handle::Counter(v.with_label_values(values)),
            Self::Gauge(v) => Handle::Gauge(v.with_label_values(values)),
            Self::Histogram(v) => Handle::Histogram(v.with_label_values(values)),
        }
    }
}

/// A family and how many series it has.
struct Family {
    kind: MetricType,
    label_names: Vec<String>,
    vec: FamilyVec,
    series: usize,
}

#[derive(Default)]
struct Defined {
    handles: Vec<Handle>,
    /// Canonical series name → id.
    by_series: HashMap<String, u32>,
    families: HashMap<String, Family>,
}

/// Metrics defined by filters, process-wide (ids are shared by all VMs).
pub(crate) struct FilterMetrics {
    registry: Registry,
    defined: Mutex<Defined>,
    /// Most series one family may hold.
    pub max_series_per_family: usize,
    /// `wasp_filter_metric_series_dropped_total{family}`: series definitions
    /// refused because their family was full.
    pub series_dropped: IntCounterVec,
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
    /// Registers the host's metrics in `registry`; a family of filter
    /// metrics may hold at most `max_series_per_family` series.
    pub fn new(
        registry: Registry,
        max_series_per_family: usize,
    ) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| labelled(&registry, name, help, &["plugin"]);
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
            series_dropped: labelled(
                &registry,
                "wasp_filter_metric_series_dropped_total",
                "Filter metric series not defined because their family reached its series cap",
                &["family"],
            )?,
            max_series_per_family,
            registry,
            defined: Mutex::default(),
        })
    }

    /// Defines (or looks up) the series a filter names: the same series
    /// gives the same id whichever plugin asks. Refused: another type or
    /// other label names for a defined family, a malformed name, one in the
    /// proxy's `wasp_` namespace, and a new series of a full family.
    pub fn define(&self, kind: MetricType, defined_name: &str) -> Result<u32, DefineError> {
        let name = MetricName::parse(defined_name)?;
        let canonical = name.canonical();
        let mut defined = self.defined.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = defined.by_series.get(&canonical).copied() {
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
        let label_names = name.label_names();
        if kind == MetricType::Histogram && label_names.contains(&"le") {
            return Err(DefineError::BucketLabel {
                family: name.family,
            });
        }
        let Defined {
            handles,
            by_series,
            families,
        } = &mut *defined;
        let family = match families.get_mut(&name.family) {
            Some(family) => {
                if family.kind != kind {
                    return Err(DefineError::TypeMismatch {
                        exported: name.family,
                        defined: family.kind,
                    });
                }
                if family.label_names != label_names {
                    return Err(DefineError::LabelMismatch {
                        family: name.family.clone(),
                        defined: family.label_names.clone(),
                        asked: label_names.iter().map(|s| (*s).to_owned()).collect(),
                    });
                }
                if family.series >= self.max_series_per_family {
                    self.series_dropped
                        .with_label_values(&[name.family.as_str()])
                        .inc();
                    return Err(DefineError::TooManySeries {
                        family: name.family,
                        max: self.max_series_per_family,
                    });
                }
                family
            }
            None => {
                let registry_error = |source| DefineError::Registry {
                    exported: name.family.clone(),
                    source,
                };
                let vec =
                    FamilyVec::new(kind, &name.family, &label_names).map_err(registry_error)?;
                self.registry
                    .register(vec.collector())
                    .map_err(registry_error)?;
                families.entry(name.family.clone()).or_insert(Family {
                    kind,
                    label_names: label_names.iter().map(|s| (*s).to_owned()).collect(),
                    vec,
                    series: 0,
                })
            }
        };
        let values: Vec<&str> = name.labels.iter().map(|(_, v)| v.as_str()).collect();
        let id = handles.len() as u32;
        handles.push(family.vec.series(&values));
        family.series += 1;
        by_series.insert(canonical, id);
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

    /// Sets a gauge, records a histogram sample, or adds to a counter (as
    /// Envoy does).
    pub fn record(&self, id: u32, value: u64) -> Result<(), Status> {
        self.with(id, |h| {
            match h {
                Handle::Gauge(g) => g.set(value as i64),
                Handle::Histogram(hist) => hist.observe(value as f64),
                Handle::Counter(c) => c.inc_by(value),
            }
            Ok(())
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
