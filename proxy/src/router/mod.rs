//! Route matching: the first route of a listener whose match holds picks the
//! action — forward to a cluster (or weighted clusters), answer directly, or
//! redirect.

pub mod egress;
mod matcher;

pub use matcher::{CompiledMatch, RequestView};

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;

use crate::upstream::Cluster;
use wasp_config::{ErrorSink, ListenerConfig, Redirect, RouteConfig};

/// The compiled routes of one listener, in order.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
}

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    /// Name used in metrics and logs.
    pub name: Arc<str>,
    matcher: CompiledMatch,
    /// What to do with a matching request.
    pub action: RouteAction,
    /// Filters run on its requests (the route's chain, else the listener's).
    pub filter_chain: Option<Arc<wasp_filter_host::FilterChain>>,
    /// The chain's canary, when a plugin of it has one.
    pub canary: Option<Arc<crate::wasm::canary::Canary>>,
}

/// What a route does with the requests it matches.
#[derive(Debug)]
pub enum RouteAction {
    /// Forward upstream.
    Forward(Box<Forward>),
    /// Answer with a fixed status and body.
    Direct {
        /// Status code.
        status: http::StatusCode,
        /// Body.
        body: Bytes,
    },
    /// Answer with a redirect.
    Redirect(Redirect),
}

/// Forwarding: where to and which rewrites to apply.
#[derive(Debug)]
pub struct Forward {
    /// The cluster(s) to send to.
    pub target: Target,
    /// `(matched prefix, replacement)`.
    pub prefix_rewrite: Option<(String, String)>,
    /// New `Host` / `:authority`.
    pub host_rewrite: Option<HeaderValue>,
    /// Time to response headers after the request ended; zero disables it.
    pub timeout: std::time::Duration,
    /// Retries of failed attempts.
    pub retry_policy: Option<wasp_config::RetryPolicy>,
    /// Sources of the ring-hash key.
    pub hash_policy: Vec<wasp_config::HashPolicy>,
    /// Protocols requests may switch to (`Upgrade`), lowercase.
    pub upgrades: Vec<String>,
}

/// One cluster, or several split by weight.
#[derive(Debug)]
pub enum Target {
    /// Every request goes to this cluster.
    Cluster(Arc<Cluster>),
    /// Requests are split by weight; each entry holds its cumulative weight.
    Weighted {
        /// `(cluster, cumulative weight)` in configuration order.
        clusters: Vec<(Arc<Cluster>, u64)>,
        /// Sum of the weights.
        total: u64,
    },
}

impl Target {
    /// Picks the cluster for one request.
    pub fn pick(&self) -> &Arc<Cluster> {
        match self {
            Self::Cluster(cluster) => cluster,
            Self::Weighted { clusters, total } => {
                let roll = fastrand::u64(0..*total);
                clusters
                    .iter()
                    .find(|(_, cumulative)| roll < *cumulative)
                    .map(|(cluster, _)| cluster)
                    .unwrap_or(&clusters[clusters.len() - 1].0)
            }
        }
    }
}

impl RouteTable {
    /// Compiles a listener's routes against the snapshot's clusters. Errors
    /// (a regex the validator let through, a missing cluster) go to `sink`.
    pub fn build(
        listener: &ListenerConfig,
        at: &str,
        clusters: &HashMap<String, Arc<Cluster>>,
        (chains, canaries): (&crate::wasm::Chains, &crate::wasm::canary::Canaries),
        sink: &mut ErrorSink,
    ) -> Self {
        let routes = listener
            .routes
            .iter()
            .enumerate()
            .filter_map(|(i, route)| {
                let name = route
                    .filter_chain
                    .as_ref()
                    .or(listener.filter_chain.as_ref());
                let mut built =
                    Route::build(route, i, &format!("{at}.routes[{i}]"), clusters, sink)?;
                built.filter_chain = name.and_then(|name| chains.get(name).cloned());
                built.canary = name.and_then(|name| canaries.get(name).cloned());
                Some(built)
            })
            .collect();
        Self { routes }
    }

    /// The first route matching the request.
    pub fn find(&self, req: &RequestView<'_>) -> Option<&Route> {
        self.routes.iter().find(|route| route.matcher.matches(req))
    }
}

impl Route {
    /// A route that forwards every request to `cluster` with the default
    /// route settings (timeout, upgrades), running `filter_chain`: what an
    /// outbound listener uses for a destination it found in the registry or
    /// lets out.
    pub fn to_cluster(
        name: &str,
        cluster: Arc<Cluster>,
        filter_chain: Option<Arc<wasp_filter_host::FilterChain>>,
    ) -> Self {
        let config: RouteConfig = serde_json::from_value(serde_json::json!({
            "name": name,
            "route": {"cluster": &*cluster.name},
        }))
        .expect("a route to a cluster with defaults");
        let clusters = HashMap::from([(cluster.name.to_string(), cluster)]);
        let mut sink = ErrorSink::default();
        let mut route = Self::build(&config, 0, name, &clusters, &mut sink)
            .expect("a route to a known cluster builds");
        route.filter_chain = filter_chain;
        route
    }

    fn build(
        config: &RouteConfig,
        index: usize,
        at: &str,
        clusters: &HashMap<String, Arc<Cluster>>,
        sink: &mut ErrorSink,
    ) -> Option<Self> {
        let matcher = match CompiledMatch::compile(&config.matcher) {
            Ok(m) => m,
            Err(err) => {
                sink.push(
                    format!("{at}.match"),
                    format!("invalid regular expression: {err}"),
                );
                return None;
            }
        };
        let lookup = |name: &str, sink: &mut ErrorSink| {
            let found = clusters.get(name).cloned();
            if found.is_none() {
                sink.push(format!("{at}.route"), format!("unknown cluster '{name}'"));
            }
            found
        };
        let action = if let Some(forward) = &config.route {
            let target = match &forward.cluster {
                Some(name) => Target::Cluster(lookup(name, sink)?),
                None => {
                    let mut cumulative = 0;
                    let mut weighted = Vec::new();
                    for w in &forward.weighted_clusters {
                        cumulative += u64::from(w.weight);
                        weighted.push((lookup(&w.cluster, sink)?, cumulative));
                    }
                    Target::Weighted {
                        clusters: weighted,
                        total: cumulative,
                    }
                }
            };
            RouteAction::Forward(Box::new(Forward {
                target,
                prefix_rewrite: forward
                    .prefix_rewrite
                    .clone()
                    .and_then(|to| Some((matcher.prefix()?.to_owned(), to))),
                host_rewrite: forward
                    .host_rewrite
                    .as_deref()
                    .and_then(|h| HeaderValue::from_str(h).ok()),
                timeout: forward.timeout,
                retry_policy: forward.retry_policy.clone(),
                hash_policy: forward.hash_policy.clone(),
                upgrades: forward
                    .upgrade
                    .iter()
                    .map(|p| p.to_ascii_lowercase())
                    .collect(),
            }))
        } else if let Some(direct) = &config.direct_response {
            RouteAction::Direct {
                status: http::StatusCode::from_u16(direct.status).ok()?,
                body: Bytes::from(direct.body.clone().unwrap_or_default()),
            }
        } else {
            RouteAction::Redirect(config.redirect.clone()?)
        };
        Some(Self {
            name: config
                .name
                .clone()
                .unwrap_or_else(|| format!("route{index}"))
                .into(),
            matcher,
            action,
            filter_chain: None,
            canary: None,
        })
    }
}
