//! `jwt-authn`: wasp's JWT authentication filter. It verifies the bearer
//! token of a request against the configured providers' keys (inline or
//! fetched JWKS), answers 401 when a token is bad, and publishes the
//! verified identity as properties (`request.auth.*`) and, as configured,
//! headers for the upstream. Configuration: `README.md` of this crate.
//!
//! `config` reads the configuration, `extract` finds tokens, `token` parses
//! them, `jwk` reads key sets, `verify` checks signatures, `claims` checks
//! the registered claims, `verified` holds what a verified token establishes
//! and `token_cache` keeps it, `jwks_fetch` keeps fetched key sets in shared
//! data, `filter` is the per-request filter, `reject` names the reasons.

pub mod claims;
pub mod config;
pub mod extract;
pub mod filter;
pub mod jwk;
pub mod jwks_fetch;
pub mod reject;
pub mod token;
pub mod token_cache;
pub mod verified;
pub mod verify;

use config::Config;
use filter::JwtAuthn;
use jwk::{KeySet, Source};
use jwks_fetch::{Fetched, millis};
use reject::Metrics;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};
use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::{info, warn};

/// Where a provider's keys come from.
#[derive(Debug)]
pub enum Keys {
    /// The inline `jwks`.
    Inline(Rc<KeySet>),
    /// `jwks_uri`, through shared data.
    Fetched(RefCell<Fetched>),
}

/// The configured plugin, shared by the root and every stream of a VM.
#[derive(Debug)]
pub struct Plugin {
    /// The configuration.
    pub config: Config,
    /// The keys of each provider, in `config.providers` order.
    pub keys: Vec<Keys>,
    /// Where each provider reads tokens, in `config.providers` order.
    pub locations: Vec<extract::Locations>,
    /// The counters.
    pub metrics: Metrics,
    /// Per provider: tokens that verified.
    pub tokens: Vec<RefCell<token_cache::TokenCache>>,
}

/// The root filter: configuration, counters and JWKS fetches.
#[derive(Default)]
pub struct Root {
    plugin: Option<Rc<Plugin>>,
}

/// Milliseconds since the epoch on the host's clock.
pub fn now_ms() -> u64 {
    millis(
        wasp_filter_sdk::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

impl RootFilter for Root {
    type Config = serde_json::Value;
    type Http = JwtAuthn;

    fn on_configure(
        &mut self,
        ctx: &mut RootCtx<Self>,
        config: serde_json::Value,
    ) -> Result<(), String> {
        let config = config::parse(config)?;
        let mut keys = Vec::new();
        let mut shortest_refresh: Option<Duration> = None;
        for (i, provider) in config.providers.iter().enumerate() {
            match &provider.jwks {
                Some(text) => {
                    let set = KeySet::parse(text, Source::Inline)
                        .map_err(|e| format!("providers[{i}].jwks: {e}"))?;
                    for skipped in &set.skipped {
                        warn!("jwt-authn: providers[{i}].jwks: {skipped} (skipped)");
                    }
                    keys.push(Keys::Inline(Rc::new(set)));
                }
                None => {
                    let fetched = Fetched::new(provider)
                        .map_err(|e| format!("providers[{i}].jwks_uri: {e}"))?;
                    let refresh = provider.refresh();
                    shortest_refresh = Some(shortest_refresh.map_or(refresh, |s| s.min(refresh)));
                    keys.push(Keys::Fetched(RefCell::new(fetched)));
                }
            }
        }
        let metrics = Metrics::define().map_err(|e| format!("defining metrics: {e}"))?;
        if let Some(refresh) = shortest_refresh {
            // Often enough to notice a due fetch quickly; a tick only reads shared data.
            let period = (refresh / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
            ctx.set_tick_period(period);
        }
        info!(
            "jwt-authn: {} provider(s) configured ({})",
            config.providers.len(),
            config
                .providers
                .iter()
                .map(|p| p.issuer.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let tokens = config
            .providers
            .iter()
            .map(|p| {
                RefCell::new(token_cache::TokenCache::new(
                    p.cache_size(),
                    p.cache_max_token(),
                ))
            })
            .collect();
        self.plugin = Some(Rc::new(Plugin {
            locations: extract::Locations::of(&config),
            config,
            keys,
            metrics,
            tokens,
        }));
        Ok(())
    }

    fn on_tick(&mut self, ctx: &mut RootCtx<Self>) {
        let Some(plugin) = self.plugin.clone() else {
            return;
        };
        let now = now_ms();
        for (i, keys) in plugin.keys.iter().enumerate() {
            let Keys::Fetched(fetched) = keys else {
                continue;
            };
            if fetched.borrow_mut().take_fetch(now) {
                fetch(ctx, &plugin, i);
            }
        }
    }

    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<JwtAuthn> {
        Some(JwtAuthn::new(self.plugin.clone()?))
    }
}

/// GETs provider `i`'s JWKS from the root context and stores it.
fn fetch(ctx: &mut RootCtx<Root>, plugin: &Rc<Plugin>, i: usize) {
    let Keys::Fetched(fetched) = &plugin.keys[i] else {
        return;
    };
    let request = {
        let f = fetched.borrow();
        HttpRequest {
            cluster: f.cluster.clone(),
            headers: vec![
                (":method".into(), "GET".into()),
                (":path".into(), f.path.clone()),
                (":authority".into(), f.authority.clone()),
                ("accept".into(), "application/json".into()),
            ],
            body: Vec::new(),
            trailers: Vec::new(),
            timeout: f.timeout,
        }
    };
    let issuer = plugin.config.providers[i].issuer.clone();
    let callback_issuer = issuer.clone();
    let sent = ctx.http_call(request, move |root: &mut Root, _, response| {
        let issuer = callback_issuer;
        let Some(plugin) = root.plugin.clone() else {
            return;
        };
        let Some(Keys::Fetched(fetched)) = plugin.keys.get(i) else {
            return;
        };
        let mut fetched = fetched.borrow_mut();
        fetched.in_flight = false;
        let outcome = match response.status() {
            Some(200) => fetched.store(now_ms(), &response.body),
            Some(status) => Err(format!("status {status}")),
            None => Err("the call failed".into()),
        };
        match outcome {
            Ok(keys) => {
                plugin.metrics.jwks_fetched.increment(1);
                info!(
                    "jwt-authn: JWKS of `{issuer}` fetched: {} key(s)",
                    keys.keys.len()
                );
                for skipped in &keys.skipped {
                    warn!("jwt-authn: JWKS of `{issuer}`: {skipped} (skipped)");
                }
            }
            Err(e) => {
                plugin.metrics.jwks_fetch_failed.increment(1);
                warn!("jwt-authn: fetching the JWKS of `{issuer}` failed: {e}");
            }
        }
    });
    match sent {
        Ok(_) => fetched.borrow_mut().in_flight = true,
        Err(e) => {
            plugin.metrics.jwks_fetch_failed.increment(1);
            warn!("jwt-authn: fetching the JWKS of `{issuer}` failed: {e}");
        }
    }
}

wasp_filter_sdk::export!(Root);
