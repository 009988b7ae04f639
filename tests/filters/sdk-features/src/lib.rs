//! A test filter that exercises every SDK feature through a real host. The
//! request header `x-test` (comma-separated) selects what it does:
//!
//! | `x-test`       | behaviour |
//! |----------------|-----------|
//! | `callout`      | pauses, GETs `x-callout-path` (default `/`) on the `callout_cluster`; response header `x-callout-status` (503 local reply if the call failed) |
//! | `grpc`         | pauses, calls `x-grpc-service`/`x-grpc-method` on the `grpc_cluster` with the request body; response header `x-grpc-status` |
//! | `timer`        | pauses for `x-delay-ms` (default 50) ms; response header `x-timer-fired: yes` |
//! | `shared-data`  | increments shared counter `sdk-features.hits` (CAS); response header `x-shared-hits` |
//! | `queue`        | enqueues `x-message` on queue `sdk-features`; the root stores it in shared data `sdk-features.last-message`; response header `x-queue-last` |
//! | `metrics`      | counter `sdk_features_requests_total`, gauge `sdk_features_active`, histogram `sdk_features_request_body_bytes`; response header `x-metric-requests` |
//! | `ticks`        | response header `x-ticks`: the root's tick count so far (shared counter `sdk-features.ticks`) |
//! | `tick-callout` | response header `x-tick-callout`: the status of the last callout the root context made on a tick (shared data `sdk-features.tick-callout`; empty before one answered) |
//! | `properties`   | response headers `x-prop-path`, `x-prop-principal`, `x-prop-plugin` |
//! | `local-reply`  | answers 418 with header `x-local-reply: yes` and body `short and stout` |
//! | `body-rewrite` | upper-cases the request body; appends ` [rewritten]` to the response body |
//! | `log`          | logs `sdk-features: <path>` at info level |
//! | `panic`        | panics with `sdk-features asked to panic` |
//!
//! Configuration (JSON, every field optional): `callout_cluster` (default
//! `callout`), `grpc_cluster` (default `grpc`), `tick_ms` (root tick
//! period; each tick increments shared counter `sdk-features.ticks`),
//! `tick_callout_path` (when set, each tick on which no such callout is
//! outstanding GETs this path on the `callout_cluster` from the root
//! context and stores the response status in `sdk-features.tick-callout`).

use serde::Deserialize;
use std::time::Duration;
use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::{info, shared};

mod stream;

pub use stream::Features;

/// Shared-data key of the request counter.
pub const HITS_KEY: &str = "sdk-features.hits";
/// Shared-data key of the tick counter.
pub const TICKS_KEY: &str = "sdk-features.ticks";
/// Shared-data key of the status of the root context's last tick callout.
pub const TICK_CALLOUT_KEY: &str = "sdk-features.tick-callout";
/// Shared-data key of the last queue message.
pub const LAST_MESSAGE_KEY: &str = "sdk-features.last-message";
/// Name of the shared queue.
pub const QUEUE: &str = "sdk-features";

/// The plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Cluster for HTTP callouts.
    pub callout_cluster: String,
    /// Cluster for gRPC callouts.
    pub grpc_cluster: String,
    /// Root tick period in milliseconds (0: no ticks).
    pub tick_ms: u64,
    /// Path the root context GETs on the callout cluster on ticks ("": none).
    pub tick_callout_path: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            callout_cluster: "callout".into(),
            grpc_cluster: "grpc".into(),
            tick_ms: 0,
            tick_callout_path: String::new(),
        }
    }
}

/// Metric handles shared by every stream.
#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    /// Requests seen with `x-test: metrics`.
    pub requests: Counter,
    /// Streams currently open with `x-test: metrics`.
    pub active: Gauge,
    /// Request body sizes.
    pub body_bytes: Histogram,
}

/// The root filter: configuration, metrics, the queue and ticks.
#[derive(Default)]
pub struct Root {
    config: Config,
    metrics: Option<Metrics>,
    queue: Option<SharedQueue>,
    /// A tick callout is outstanding.
    tick_callout_pending: bool,
}

impl RootFilter for Root {
    type Config = Config;
    type Http = Features;

    fn on_configure(&mut self, ctx: &mut RootCtx<Self>, config: Config) -> Result<(), String> {
        let metrics = Metrics {
            requests: Counter::define("sdk_features_requests_total").map_err(|e| e.to_string())?,
            active: Gauge::define("sdk_features_active").map_err(|e| e.to_string())?,
            body_bytes: Histogram::define("sdk_features_request_body_bytes")
                .map_err(|e| e.to_string())?,
        };
        self.queue = Some(SharedQueue::register(QUEUE).map_err(|e| e.to_string())?);
        self.metrics = Some(metrics);
        ctx.set_tick_period(Duration::from_millis(config.tick_ms));
        info!("sdk-features configured: {config:?}");
        self.config = config;
        Ok(())
    }

    fn on_tick(&mut self, ctx: &mut RootCtx<Self>) {
        if let Err(e) = shared::increment(TICKS_KEY, 1) {
            wasp_filter_sdk::warn!("tick counter: {e}");
        }
        if !self.config.tick_callout_path.is_empty() && !self.tick_callout_pending {
            self.tick_callout(ctx);
        }
    }

    fn on_queue_ready(&mut self, _: &mut RootCtx<Self>, queue: SharedQueue) {
        loop {
            match queue.dequeue() {
                Ok(Some(message)) => {
                    if let Err(e) = shared::set(LAST_MESSAGE_KEY, &message, None) {
                        wasp_filter_sdk::warn!("storing queue message: {e}");
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    wasp_filter_sdk::warn!("dequeue: {e}");
                    break;
                }
            }
        }
    }

    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Features> {
        Some(Features::new(
            self.config.clone(),
            self.metrics?,
            self.queue?,
        ))
    }
}

impl Root {
    /// GETs `tick_callout_path` from the root context; the response's status
    /// (or `failed`) goes to shared data.
    fn tick_callout(&mut self, ctx: &mut RootCtx<Self>) {
        let cluster = self.config.callout_cluster.as_str();
        let request = HttpRequest::new(cluster, "GET", &self.config.tick_callout_path);
        let sent = ctx.http_call(request, |root: &mut Root, _, response| {
            root.tick_callout_pending = false;
            let status = response
                .status()
                .map_or_else(|| "failed".to_owned(), |s| s.to_string());
            if let Err(e) = shared::set(TICK_CALLOUT_KEY, status.as_bytes(), None) {
                wasp_filter_sdk::warn!("storing the tick callout status: {e}");
            }
        });
        match sent {
            Ok(_) => self.tick_callout_pending = true,
            Err(e) => wasp_filter_sdk::warn!("tick callout: {e}"),
        }
    }
}

wasp_filter_sdk::export!(Root);
