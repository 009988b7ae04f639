//! The `telemetry` filter: Istio's standard HTTP metrics
//! (`istio_requests_total`, `istio_request_duration_milliseconds`,
//! `istio_request_bytes`, `istio_response_bytes`) with Istio's labels, as
//! labeled series of the host; workload labels from the node metadata and,
//! for the peer, from Istio's metadata exchange headers; and W3C / B3 trace
//! propagation with the ids published as properties. Works with no
//! configuration. See `README.md`.

mod config;
mod labels;
mod peer;
mod series;
mod stream;
mod text;
mod trace;

pub use config::{B3Single, Config, Exchange, Reporter, Tracing};
pub use labels::{REQUEST_BYTES, REQUEST_DURATION, REQUESTS_TOTAL, RESPONSE_BYTES, response_flags};
pub use peer::{METADATA_HEADER, METADATA_ID_HEADER, PeerCache, Workload};
pub use series::{SeriesCache, SeriesKey};
pub use stream::{Telemetry, properties};
pub use text::Text;
pub use trace::{
    Incoming, Parent, Sampling, Span, SpanTexts, extract, parse_b3_single, parse_traceparent,
};

use std::cell::RefCell;
use std::rc::Rc;
use wasp_filter_sdk::prelude::*;

/// What every stream of a configured plugin shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// This proxy's workload.
    pub(crate) local: Workload,
    /// `x-envoy-peer-metadata` describing this proxy.
    pub(crate) exchange: String,
    /// `x-envoy-peer-metadata-id`: the node id.
    pub(crate) node_id: String,
    /// Peers' exchange headers, decoded.
    pub(crate) peers: RefCell<PeerCache>,
    /// The metric series of the fact sets seen so far.
    pub(crate) series: RefCell<SeriesCache>,
}

/// The plugin's root: the configuration, this proxy's workload, and the
/// random source of span ids and sampling.
pub struct TelemetryRoot {
    shared: Option<Rc<Shared>>,
    rng: fastrand::Rng,
}

impl Default for TelemetryRoot {
    /// A root seeded from the host's randomness (WASI `random_get`).
    fn default() -> Self {
        TelemetryRoot {
            shared: None,
            rng: fastrand::Rng::new(),
        }
    }
}

impl TelemetryRoot {
    /// A root whose ids and sampling draw from a seeded generator (tests).
    pub fn with_seed(seed: u64) -> TelemetryRoot {
        TelemetryRoot {
            shared: None,
            rng: fastrand::Rng::with_seed(seed),
        }
    }
}

impl RootFilter for TelemetryRoot {
    type Config = Config;
    type Http = Telemetry;

    fn on_configure(&mut self, ctx: &mut RootCtx<Self>, config: Config) -> Result<(), String> {
        config.validate()?;
        // `node.*` in wasp; Envoy 1.40 answers only under `xds.node`.
        let node = |path: &[&str]| {
            ctx.property_string(["node"].iter().chain(path))
                .or_else(|| ctx.property_string(["xds", "node"].iter().chain(path)))
        };
        let local = Workload::from_node(
            |path| node(&[&["metadata"], path].concat()),
            node(&["cluster"]),
        );
        let node_id = node(&["id"]).unwrap_or_default();
        self.shared = Some(Rc::new(Shared {
            config,
            exchange: local.encode(),
            local,
            node_id,
            peers: RefCell::default(),
            series: RefCell::default(),
        }));
        Ok(())
    }

    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Telemetry> {
        let shared = Rc::clone(self.shared.as_ref()?);
        Some(Telemetry::new(shared, self.rng.u64(..)))
    }
}

wasp_filter_sdk::export!(TelemetryRoot);
