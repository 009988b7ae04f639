//! The `mirror` filter: sends a copy of a share of requests to a shadow
//! cluster, as Istio's VirtualService `mirror` and `mirrorPercentage` do
//! (Envoy's request mirror policy): same method, path, headers (authority
//! suffixed `-shadow`) and body. The copy is a detached HTTP callout sent
//! once the request body has been seen; the original request streams on
//! untouched and never waits for the copy. See `README.md`.

mod config;
mod copy;
mod metrics;
mod stream;

pub use config::{Config, DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, Percentage};
pub use copy::shadow_authority;
pub use stream::Mirror;

use std::rc::Rc;
use wasp_filter_sdk::prelude::*;

/// What every stream of a configured plugin shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) metrics: metrics::Metrics,
}

/// The plugin's root: configuration, metrics and the random source that
/// picks the mirrored requests.
pub struct MirrorRoot {
    shared: Option<Rc<Shared>>,
    rng: fastrand::Rng,
}

impl Default for MirrorRoot {
    /// A root seeded from the host's randomness (WASI `random_get`).
    fn default() -> Self {
        MirrorRoot {
            shared: None,
            rng: fastrand::Rng::new(),
        }
    }
}

impl MirrorRoot {
    /// A root whose sampling draws from a seeded generator (for tests).
    pub fn with_seed(seed: u64) -> MirrorRoot {
        MirrorRoot {
            shared: None,
            rng: fastrand::Rng::with_seed(seed),
        }
    }
}

impl RootFilter for MirrorRoot {
    type Config = Config;
    type Http = Mirror;

    fn on_configure(&mut self, ctx: &mut RootCtx<Self>, config: Config) -> Result<(), String> {
        config.validate()?;
        let plugin = ctx.plugin_name().unwrap_or_else(|| "mirror".to_owned());
        let metrics = metrics::Metrics::define(&plugin)?;
        self.shared = Some(Rc::new(Shared { config, metrics }));
        Ok(())
    }

    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Mirror> {
        let shared = Rc::clone(self.shared.as_ref()?);
        let selected = self.rng.f64() * 100.0 < shared.config.percentage.value;
        if !selected {
            // Nothing to do for this request: no stream context, so the
            // SDK answers its callbacks without running filter code.
            shared.metrics.skipped.increment(1);
            return None;
        }
        Some(Mirror::new(shared))
    }
}

wasp_filter_sdk::export!(MirrorRoot);
