//! The `fault` filter: injects delays and aborts into requests, with the
//! semantics of Istio's VirtualService `fault` (Envoy's fault filter): a
//! fixed delay and/or an abort (HTTP or gRPC status), each on a percentage of
//! requests, optionally only for requests whose headers match, optionally
//! asked for by the request itself (`header_control`), bounded by
//! `max_active_faults`. See `README.md` for the configuration.
//!
//! A delay pauses the stream on a timer and resumes it (no thread is held);
//! an abort is a local reply.

mod config;
mod matcher;
mod metrics;
mod plan;
mod stream;

pub use config::{Abort, Config, Delay, GrpcStatus, Percentage};
pub use matcher::{HeaderMatch, Match};
pub use plan::{Injected, Plan, Rolls};
pub use stream::Fault;

use std::rc::Rc;
use wasp_filter_sdk::prelude::*;

/// What every stream of a configured plugin shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) metrics: metrics::Metrics,
}

/// The plugin's root: the validated configuration, its metrics, and the
/// random source that decides which requests get faults.
pub struct FaultRoot {
    shared: Option<Rc<Shared>>,
    rng: fastrand::Rng,
}

impl Default for FaultRoot {
    /// A root seeded from the host's randomness (WASI `random_get`).
    fn default() -> Self {
        FaultRoot {
            shared: None,
            rng: fastrand::Rng::new(),
        }
    }
}

impl FaultRoot {
    /// A root whose percentages draw from a seeded generator (for tests).
    pub fn with_seed(seed: u64) -> FaultRoot {
        FaultRoot {
            shared: None,
            rng: fastrand::Rng::with_seed(seed),
        }
    }
}

impl RootFilter for FaultRoot {
    type Config = Config;
    type Http = Fault;

    fn on_configure(&mut self, ctx: &mut RootCtx<Self>, config: Config) -> Result<(), String> {
        config.validate()?;
        let plugin = ctx.plugin_name().unwrap_or_else(|| "fault".to_owned());
        let metrics = metrics::Metrics::define(&plugin)?;
        self.shared = Some(Rc::new(Shared { config, metrics }));
        Ok(())
    }

    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Fault> {
        let shared = Rc::clone(self.shared.as_ref()?);
        let rolls = Rolls {
            delay: self.rng.f64() * 100.0,
            abort: self.rng.f64() * 100.0,
        };
        Some(Fault::new(shared, rolls))
    }
}

wasp_filter_sdk::export!(FaultRoot);
