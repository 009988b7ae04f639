//! What a filter may make the host allocate on its behalf: header maps, body
//! buffers and properties per request, shared data and queues per `vm_id`
//! (the plugin's [`PluginLimits`](crate::PluginLimits)).
//!
//! A hostcall that would pass a limit changes nothing and answers
//! `BadArgument` (the ABI has no "out of range" status; its `BadArgument` is
//! documented as "did not conform to the required range"), counts
//! `wasp_filter_limit_exceeded_total{plugin,limit}` and logs a rate-limited
//! warning. Data that is already larger (a big upstream response) is never
//! refused: only a change that grows past a limit is.

use wasp_abi::Status;

use crate::plugin::PluginCore;
use crate::stream::HeaderList;

/// One of a plugin's host limits; the name is the configuration field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    HeaderBytes,
    HeaderCount,
    BufferedBodyBytes,
    PropertyBytes,
    SharedDataBytes,
    SharedDataKeys,
    QueueDepth,
    QueueBytes,
    CalloutRequestBytes,
    CalloutResponseBytes,
    CalloutsInFlight,
}

impl Limit {
    /// The `limits:` field (and the metric's `limit` label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HeaderBytes => "max_header_bytes",
            Self::HeaderCount => "max_header_count",
            Self::BufferedBodyBytes => "max_buffered_body_bytes",
            Self::PropertyBytes => "max_property_bytes",
            Self::SharedDataBytes => "max_shared_data_bytes",
            Self::SharedDataKeys => "max_shared_data_keys",
            Self::QueueDepth => "max_queue_depth",
            Self::QueueBytes => "max_queue_bytes",
            Self::CalloutRequestBytes => "max_callout_request_bytes",
            Self::CalloutResponseBytes => "max_callout_response_bytes",
            Self::CalloutsInFlight => "max_callouts_in_flight",
        }
    }

    /// The plugin's value of this limit.
    pub fn value(self, core: &PluginCore) -> u64 {
        let l = &core.spec.limits;
        match self {
            Self::HeaderBytes => l.max_header_bytes,
            Self::HeaderCount => l.max_header_count,
            Self::BufferedBodyBytes => l.max_buffered_body_bytes,
            Self::PropertyBytes => l.max_property_bytes,
            Self::SharedDataBytes => l.max_shared_data_bytes,
            Self::SharedDataKeys => l.max_shared_data_keys,
            Self::QueueDepth => l.max_queue_depth,
            Self::QueueBytes => l.max_queue_bytes,
            Self::CalloutRequestBytes => l.max_callout_request_bytes,
            Self::CalloutResponseBytes => l.max_callout_response_bytes,
            Self::CalloutsInFlight => l.max_callouts_in_flight,
        }
    }
}

/// Counts and (rate-limited) logs that `call` of the plugin was refused at
/// `limit`; returns the status the filter gets.
pub(crate) fn exceeded(core: &PluginCore, call: &str, limit: Limit) -> Status {
    let plugin = core.spec.name.as_str();
    core.services
        .metrics
        .limit_exceeded
        .with_label_values(&[plugin, limit.as_str()])
        .inc();
    if let Some(suppressed) = core.warnings.admit(&format!("{call}/{}", limit.as_str())) {
        tracing::warn!(
            plugin,
            call,
            limit = limit.as_str(),
            value = limit.value(core),
            suppressed,
            "filter hit a host limit; the call was refused with BadArgument"
        );
    }
    Status::BadArgument
}

/// Counts and (rate-limited) logs that a callout's response was dropped
/// for passing `max_callout_response_bytes`; the callout fails.
pub(crate) fn response_too_large(core: &PluginCore, call: &str) {
    let _ = exceeded(core, call, Limit::CalloutResponseBytes);
}

/// Bytes of a callout's request or response: header and trailer names plus
/// values, and the body.
pub(crate) fn callout_size(headers: &HeaderList, body: usize, trailers: &HeaderList) -> u64 {
    (map_size(headers).0 + body + map_size(trailers).0) as u64
}

/// Whether growing a value from `before` to `after` passes `max`: a change
/// that does not grow it is always allowed.
pub(crate) fn grows_past(before: u64, after: u64, max: u64) -> bool {
    after > max && after > before
}

/// Checks a header map after a filter's change against the plugin's limits,
/// given its size before.
pub(crate) fn check_headers(
    core: &PluginCore,
    before: (usize, usize),
    after: &HeaderList,
) -> Result<(), Limit> {
    check_size(core, before, map_size(after))
}

/// Checks a header map's size `after` a change against the plugin's limits,
/// given its size `before`; both `(bytes, entries)`.
pub(crate) fn check_size(
    core: &PluginCore,
    before: (usize, usize),
    (bytes, count): (usize, usize),
) -> Result<(), Limit> {
    let limits = &core.spec.limits;
    if grows_past(before.1 as u64, count as u64, limits.max_header_count) {
        return Err(Limit::HeaderCount);
    }
    if grows_past(before.0 as u64, bytes as u64, limits.max_header_bytes) {
        return Err(Limit::HeaderBytes);
    }
    Ok(())
}

/// Bytes (names plus values) and entries of a header map.
pub(crate) fn map_size(list: &HeaderList) -> (usize, usize) {
    let bytes = list.iter().map(|(k, v)| k.len() + v.len()).sum();
    (bytes, list.len())
}
