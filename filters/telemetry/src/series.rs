//! The metric series of one set of request facts, resolved once: a
//! request's labels are a function of a few facts (the peer, the
//! principals, the authority, the codes, the flags), so the series ids are
//! cached by those facts, and a request whose facts were seen before costs
//! a map lookup instead of 25 label strings, a sorted name and four
//! `proxy_define_metric` lookups. Refused series (a family at its series
//! cap) are not cached: they are asked for again, as the host counts each
//! refusal.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::rc::Rc;

use wasp_filter_sdk::{Counter, Histogram};

use crate::labels::{
    REQUEST_BYTES, REQUEST_DURATION, REQUESTS_TOTAL, RESPONSE_BYTES, RequestFacts,
};
use crate::peer::Workload;

/// Most fact sets cached per VM; past it the cache starts afresh.
pub const MAX_CACHED: usize = 1024;

/// Everything that varies the labels of a request (besides the
/// configuration and this proxy's own workload).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    /// The peer's workload, from the exchange header.
    pub peer: Option<Rc<Workload>>,
    /// `source.principal` as read (destination reporter).
    pub source_principal: Option<String>,
    /// `connection.uri_san_local_certificate` as read (destination reporter).
    pub destination_principal: Option<String>,
    /// `connection.mtls` (destination reporter).
    pub mtls: bool,
    /// The request's `:authority` (or `host`).
    pub authority: Option<String>,
    /// A gRPC request (`content-type: application/grpc…`).
    pub grpc: bool,
    /// `response.code` (0 when unknown).
    pub response_code: u64,
    /// `response.grpc_status` (gRPC requests only).
    pub grpc_status: Option<u64>,
    /// `response.flags`.
    pub flags: u64,
}

/// The four series of one label set.
#[derive(Clone, Copy, Debug)]
pub struct Series {
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

impl Series {
    /// Counts a request and records its duration and sizes.
    pub fn record(&self, duration_ms: u64, request_bytes: u64, response_bytes: u64) {
        self.requests.increment(1);
        self.duration.record(duration_ms);
        self.request_bytes.record(request_bytes);
        self.response_bytes.record(response_bytes);
    }
}

/// The series each fact set resolved to.
#[derive(Debug, Default)]
pub struct SeriesCache {
    series: HashMap<SeriesKey, Series, BuildHasherDefault<rustc_hash::FxHasher>>,
}

impl SeriesCache {
    /// Records a request with the facts `key`: `facts` builds its labels
    /// when `key` was not seen before. A series the host refuses is
    /// skipped (the others of the request are still recorded).
    pub fn record(
        &mut self,
        key: SeriesKey,
        facts: impl FnOnce(&SeriesKey) -> RequestFacts,
        duration_ms: u64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        if let Some(series) = self.series.get(&key) {
            series.record(duration_ms, request_bytes, response_bytes);
            return;
        }
        let facts = facts(&key);
        let owned = facts.labels();
        let labels: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let requests = Counter::with_labels(REQUESTS_TOTAL, &labels);
        let histogram = |family| Histogram::with_labels(family, &labels);
        let (duration, request_size, response_size) = (
            histogram(REQUEST_DURATION),
            histogram(REQUEST_BYTES),
            histogram(RESPONSE_BYTES),
        );
        match (requests, duration, request_size, response_size) {
            (Ok(requests), Ok(duration), Ok(request_size), Ok(response_size)) => {
                let series = Series {
                    requests,
                    duration,
                    request_bytes: request_size,
                    response_bytes: response_size,
                };
                series.record(duration_ms, request_bytes, response_bytes);
                if self.series.len() >= MAX_CACHED {
                    self.series.clear();
                }
                self.series.insert(key, series);
            }
            (requests, duration, request_size, response_size) => {
                if let Ok(counter) = requests {
                    counter.increment(1);
                }
                for (histogram, value) in [
                    (duration, duration_ms),
                    (request_size, request_bytes),
                    (response_size, response_bytes),
                ] {
                    if let Ok(histogram) = histogram {
                        histogram.record(value);
                    }
                }
            }
        }
    }

    /// Fact sets cached.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}
