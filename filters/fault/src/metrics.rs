//! The filter's metrics, named after the plugin as Envoy names its fault
//! filter's stats: `fault.<plugin>.delays_injected`, `aborts_injected`,
//! `active_faults` (gauge) and `faults_overflow` (faults not injected
//! because `max_active_faults` were active). On `/metrics` the dots become
//! underscores (`fault_<plugin>_delays_injected`).

use wasp_filter_sdk::{Counter, Gauge};

/// The metric handles of one plugin.
pub(crate) struct Metrics {
    pub(crate) delays_injected: Counter,
    pub(crate) aborts_injected: Counter,
    pub(crate) active_faults: Gauge,
    pub(crate) faults_overflow: Counter,
}

impl Metrics {
    /// Defines (or finds) the metrics of plugin `plugin`.
    pub(crate) fn define(plugin: &str) -> Result<Metrics, String> {
        let name = |stat: &str| format!("fault.{plugin}.{stat}");
        let failed = |stat: &str, e: wasp_filter_sdk::Error| {
            format!("defining the metric `{}`: {e}", name(stat))
        };
        Ok(Metrics {
            delays_injected: Counter::define(&name("delays_injected"))
                .map_err(|e| failed("delays_injected", e))?,
            aborts_injected: Counter::define(&name("aborts_injected"))
                .map_err(|e| failed("aborts_injected", e))?,
            active_faults: Gauge::define(&name("active_faults"))
                .map_err(|e| failed("active_faults", e))?,
            faults_overflow: Counter::define(&name("faults_overflow"))
                .map_err(|e| failed("faults_overflow", e))?,
        })
    }
}
