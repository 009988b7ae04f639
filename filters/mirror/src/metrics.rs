//! The filter's counters, named after the plugin:
//! `mirror.<plugin>.mirrored` (copies sent), `headers_only` (copies sent
//! without their body, which exceeded `max_body_bytes`), `skipped`
//! (requests not mirrored: not sampled, or ended before their body did) and
//! `failed` (copies the shadow did not answer — refused, reset, timed out —
//! or answered with a 5xx). On `/metrics`: `mirror_<plugin>_mirrored`, ….

use wasp_filter_sdk::Counter;

/// The counters of one plugin.
#[derive(Clone, Copy)]
pub(crate) struct Metrics {
    pub(crate) mirrored: Counter,
    pub(crate) headers_only: Counter,
    pub(crate) skipped: Counter,
    pub(crate) failed: Counter,
}

impl Metrics {
    /// Defines (or finds) the counters of plugin `plugin`.
    pub(crate) fn define(plugin: &str) -> Result<Metrics, String> {
        let counter = |stat: &str| {
            let name = format!("mirror.{plugin}.{stat}");
            Counter::define(&name).map_err(|e| format!("defining the metric `{name}`: {e}"))
        };
        Ok(Metrics {
            mirrored: counter("mirrored")?,
            headers_only: counter("headers_only")?,
            skipped: counter("skipped")?,
            failed: counter("failed")?,
        })
    }
}
