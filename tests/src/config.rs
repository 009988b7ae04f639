//! A small typed builder for the wasp configuration a test needs.
//!
//! ```ignore
//! let config = Config::new()
//!     .listener(Listener::new("main", listen).route(Route::prefix("/").cluster("up")))
//!     .cluster(Cluster::new("up").endpoint(upstream.addr));
//! let wasp = Wasp::start(&config).await;
//! ```
//!
//! Each part is kept as JSON and written as one top-level YAML key per line
//! (`listeners: [...]`), so the harness can still append its `admin`
//! section. The builders name the settings tests use most (see the
//! configuration reference in the top-level README); any other setting goes
//! through `set(key, json!(...))`, and [`Config::raw`] appends YAML text.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value, json};

/// A whole configuration: listeners, clusters, filter chains.
#[derive(Clone, Debug, Default)]
pub struct Config {
    listeners: Vec<Value>,
    clusters: Vec<Value>,
    filter_chains: Vec<Value>,
    raw: String,
}

impl Config {
    /// An empty configuration.
    pub fn new() -> Config {
        Config::default()
    }

    /// Adds a listener.
    pub fn listener(mut self, listener: Listener) -> Config {
        self.listeners.push(Value::Object(listener.0));
        self
    }

    /// Adds a cluster.
    pub fn cluster(mut self, cluster: Cluster) -> Config {
        self.clusters.push(Value::Object(cluster.0));
        self
    }

    /// Adds a filter chain.
    pub fn filter_chain(mut self, chain: FilterChain) -> Config {
        self.filter_chains
            .push(json!({ "name": chain.name, "plugins": chain.plugins }));
        self
    }

    /// Appends YAML text at the top level (e.g. `shutdown: {drain_timeout: 1s}`).
    pub fn raw(mut self, yaml: &str) -> Config {
        self.raw.push_str(yaml.trim_end());
        self.raw.push('\n');
        self
    }
}

/// The YAML text: `listeners`, `clusters` and `filter_chains` (those that
/// have entries), each as JSON on one line, then the raw text.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, items) in [
            ("listeners", &self.listeners),
            ("clusters", &self.clusters),
            ("filter_chains", &self.filter_chains),
        ] {
            if !items.is_empty() || key == "listeners" {
                writeln!(f, "{key}: {}", Value::Array(items.clone()))?;
            }
        }
        f.write_str(&self.raw)
    }
}

/// Sets `key` in `map` to `value` serialized.
fn put(map: &mut Map<String, Value>, key: &str, value: impl Serialize) {
    let value = serde_json::to_value(value).expect("configuration values serialize");
    map.insert(key.to_owned(), value);
}

/// A listener: name, address, routes in order.
#[derive(Clone, Debug)]
pub struct Listener(Map<String, Value>);

impl Listener {
    /// A listener `name` on `address` (usually from [`crate::free_addr`]).
    pub fn new(name: &str, address: impl ToString) -> Listener {
        let mut map = Map::new();
        put(&mut map, "name", name);
        put(&mut map, "address", address.to_string());
        put(&mut map, "routes", Vec::<Value>::new());
        Listener(map)
    }

    /// Appends a route (routes are tried in order).
    pub fn route(mut self, route: Route) -> Listener {
        let routes = self.0.get_mut("routes").and_then(Value::as_array_mut);
        routes.expect("routes list").push(route.into_value());
        self
    }

    /// The filter chain for routes that name none.
    pub fn filter_chain(self, chain: &str) -> Listener {
        self.set("filter_chain", chain)
    }

    /// `idle_timeout`, e.g. `"500ms"`.
    pub fn idle_timeout(self, timeout: &str) -> Listener {
        self.set("idle_timeout", timeout)
    }

    /// `access_log: true`.
    pub fn access_log(self) -> Listener {
        self.set("access_log", true)
    }

    /// TLS with this certificate chain and key (PEM files).
    pub fn tls(self, cert_file: impl ToString, key_file: impl ToString) -> Listener {
        let tls = json!({ "cert_file": cert_file.to_string(), "key_file": key_file.to_string() });
        self.set("tls", tls)
    }

    /// Any other setting.
    pub fn set(mut self, key: &str, value: impl Serialize) -> Listener {
        put(&mut self.0, key, value);
        self
    }
}

/// A route: a match, then a cluster, a direct response or a redirect.
#[derive(Clone, Debug, Default)]
pub struct Route {
    top: Map<String, Value>,
    matcher: Map<String, Value>,
    route: Map<String, Value>,
}

impl Route {
    /// Matches every request.
    pub fn any() -> Route {
        Route::default()
    }

    /// Matches paths starting with `prefix`.
    pub fn prefix(prefix: &str) -> Route {
        Route::any().matching("prefix", prefix)
    }

    /// Matches exactly `path`.
    pub fn path(path: &str) -> Route {
        Route::any().matching("path", path)
    }

    /// Matches paths matching `regex` as a whole.
    pub fn regex(regex: &str) -> Route {
        Route::any().matching("regex", regex)
    }

    /// Adds a match condition, e.g. `matching("method", ["POST"])`.
    pub fn matching(mut self, key: &str, value: impl Serialize) -> Route {
        put(&mut self.matcher, key, value);
        self
    }

    /// The route's name (default `route<index>`).
    pub fn name(self, name: &str) -> Route {
        self.set("name", name)
    }

    /// Forwards to `cluster`.
    pub fn cluster(self, cluster: &str) -> Route {
        self.forward("cluster", cluster)
    }

    /// Splits between clusters by weight.
    pub fn weighted(self, clusters: &[(&str, u32)]) -> Route {
        let list: Vec<Value> = clusters
            .iter()
            .map(|(cluster, weight)| json!({ "cluster": cluster, "weight": weight }))
            .collect();
        self.forward("weighted_clusters", list)
    }

    /// The route timeout, e.g. `"500ms"` (`"0s"`: none).
    pub fn timeout(self, timeout: &str) -> Route {
        self.forward("timeout", timeout)
    }

    /// The retry policy.
    pub fn retry(self, retry: Retry) -> Route {
        self.forward("retry_policy", retry)
    }

    /// Sets `key` under `route:` (e.g. `prefix_rewrite`, `hash_policy`).
    pub fn forward(mut self, key: &str, value: impl Serialize) -> Route {
        put(&mut self.route, key, value);
        self
    }

    /// Runs the filter chain `chain`.
    pub fn filter_chain(self, chain: &str) -> Route {
        self.set("filter_chain", chain)
    }

    /// Answers `status` with `body` itself.
    pub fn direct(self, status: u16, body: &str) -> Route {
        self.set("direct_response", json!({ "status": status, "body": body }))
    }

    /// Any other setting of the route (`direct_response`, `redirect`...).
    pub fn set(mut self, key: &str, value: impl Serialize) -> Route {
        put(&mut self.top, key, value);
        self
    }

    fn into_value(self) -> Value {
        let mut map = self.top;
        if !self.matcher.is_empty() {
            map.insert("match".into(), Value::Object(self.matcher));
        }
        if !self.route.is_empty() {
            map.insert("route".into(), Value::Object(self.route));
        }
        Value::Object(map)
    }
}

/// A route's retry policy; unset fields keep wasp's defaults.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Retry {
    num_retries: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    retry_on: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    retriable_status_codes: Vec<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_try_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    buffer_limit: Option<u64>,
}

impl Retry {
    /// Up to `num_retries` retries.
    pub fn new(num_retries: u32) -> Retry {
        Retry {
            num_retries,
            ..Retry::default()
        }
    }

    /// `retry_on` conditions (default `5xx`).
    pub fn on(mut self, conditions: &[&str]) -> Retry {
        self.retry_on = conditions.iter().map(|c| c.to_string()).collect();
        self
    }

    /// `retriable_status_codes`.
    pub fn status_codes(mut self, codes: &[u16]) -> Retry {
        self.retriable_status_codes = codes.to_vec();
        self
    }

    /// `per_try_timeout`.
    pub fn per_try_timeout(mut self, timeout: &str) -> Retry {
        self.per_try_timeout = Some(timeout.into());
        self
    }

    /// `base_interval` of the back-off.
    pub fn base_interval(mut self, interval: &str) -> Retry {
        self.base_interval = Some(interval.into());
        self
    }

    /// `max_interval` of the back-off.
    pub fn max_interval(mut self, interval: &str) -> Retry {
        self.max_interval = Some(interval.into());
        self
    }

    /// `buffer_limit`: bodies up to this size are kept for replay.
    pub fn buffer_limit(mut self, bytes: u64) -> Retry {
        self.buffer_limit = Some(bytes);
        self
    }
}

/// A cluster: name, endpoints and policies.
#[derive(Clone, Debug)]
pub struct Cluster(Map<String, Value>);

impl Cluster {
    /// A cluster `name` without endpoints.
    pub fn new(name: &str) -> Cluster {
        let mut map = Map::new();
        put(&mut map, "name", name);
        put(&mut map, "endpoints", Vec::<Value>::new());
        Cluster(map)
    }

    /// Adds an endpoint (`IP:port` or `host:port`).
    pub fn endpoint(self, address: impl ToString) -> Cluster {
        self.push_endpoint(json!(address.to_string()))
    }

    /// Adds endpoints.
    pub fn endpoints<A: ToString>(self, addresses: impl IntoIterator<Item = A>) -> Cluster {
        addresses.into_iter().fold(self, Cluster::endpoint)
    }

    /// Adds an endpoint with a weight.
    pub fn weighted_endpoint(self, address: impl ToString, weight: u32) -> Cluster {
        self.push_endpoint(json!({ "address": address.to_string(), "weight": weight }))
    }

    fn push_endpoint(mut self, endpoint: Value) -> Cluster {
        let endpoints = self.0.get_mut("endpoints").and_then(Value::as_array_mut);
        endpoints.expect("endpoints list").push(endpoint);
        self
    }

    /// `lb_policy`: `round_robin`, `least_request`, `random` or `ring_hash`.
    pub fn lb_policy(self, policy: &str) -> Cluster {
        self.set("lb_policy", policy)
    }

    /// `protocol: http2` (h2c to the endpoints).
    pub fn http2(self) -> Cluster {
        self.set("protocol", "http2")
    }

    /// `connect_timeout`.
    pub fn connect_timeout(self, timeout: &str) -> Cluster {
        self.set("connect_timeout", timeout)
    }

    /// `idle_timeout` of pooled connections.
    pub fn idle_timeout(self, timeout: &str) -> Cluster {
        self.set("idle_timeout", timeout)
    }

    /// `circuit_breakers`, e.g. `json!({"max_requests": 20})`.
    pub fn circuit_breakers(self, limits: Value) -> Cluster {
        self.set("circuit_breakers", limits)
    }

    /// `retry_budget`.
    pub fn retry_budget(self, budget_percent: u32, min_retry_concurrency: u32) -> Cluster {
        let budget = json!({
            "budget_percent": budget_percent,
            "min_retry_concurrency": min_retry_concurrency,
        });
        self.set("retry_budget", budget)
    }

    /// `outlier_detection` after `consecutive_5xx` failures.
    pub fn outlier_detection(
        self,
        consecutive_5xx: u32,
        base_ejection_time: &str,
        max_ejection_percent: u32,
    ) -> Cluster {
        let outlier = json!({
            "consecutive_5xx": consecutive_5xx,
            "base_ejection_time": base_ejection_time,
            "max_ejection_percent": max_ejection_percent,
        });
        self.set("outlier_detection", outlier)
    }

    /// An active `health_check`.
    pub fn health_check(self, check: HealthCheck) -> Cluster {
        self.set("health_check", check)
    }

    /// Any other setting (`panic_threshold`, `dns_refresh_rate`...).
    pub fn set(mut self, key: &str, value: impl Serialize) -> Cluster {
        put(&mut self.0, key, value);
        self
    }
}

/// An active health check: `GET path`, 200 means healthy.
#[derive(Clone, Debug, Serialize)]
pub struct HealthCheck {
    path: String,
    interval: String,
    timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthy_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unhealthy_threshold: Option<u32>,
}

impl HealthCheck {
    /// Checks `path` every `interval` with `timeout`; the thresholds keep
    /// wasp's defaults unless set.
    pub fn new(path: &str, interval: &str, timeout: &str) -> HealthCheck {
        HealthCheck {
            path: path.into(),
            interval: interval.into(),
            timeout: timeout.into(),
            healthy_threshold: None,
            unhealthy_threshold: None,
        }
    }

    /// Successes in a row that make an endpoint healthy.
    pub fn healthy_threshold(mut self, answers: u32) -> HealthCheck {
        self.healthy_threshold = Some(answers);
        self
    }

    /// Failures in a row that make an endpoint unhealthy.
    pub fn unhealthy_threshold(mut self, answers: u32) -> HealthCheck {
        self.unhealthy_threshold = Some(answers);
        self
    }
}

/// A named, ordered list of Wasm plugins.
#[derive(Clone, Debug)]
pub struct FilterChain {
    name: String,
    plugins: Vec<Value>,
}

impl FilterChain {
    /// An empty chain `name`.
    pub fn new(name: &str) -> FilterChain {
        FilterChain {
            name: name.into(),
            plugins: Vec::new(),
        }
    }

    /// Appends a plugin.
    pub fn plugin(mut self, plugin: Plugin) -> FilterChain {
        self.plugins.push(Value::Object(plugin.0));
        self
    }
}

/// A Wasm plugin of a filter chain.
#[derive(Clone, Debug)]
pub struct Plugin(Map<String, Value>);

impl Plugin {
    /// Plugin `name` running the module file at `module` (`.wasm` or `.wat`).
    pub fn new(name: &str, module: impl AsRef<std::path::Path>) -> Plugin {
        let mut map = Map::new();
        put(&mut map, "name", name);
        put(&mut map, "module", module.as_ref().display().to_string());
        Plugin(map)
    }

    /// `failure_policy: fail_open` (the default is `fail_closed`).
    pub fn fail_open(self) -> Plugin {
        self.set("failure_policy", "fail_open")
    }

    /// `configuration`, given to `proxy_on_configure`.
    pub fn configuration(self, configuration: impl Serialize) -> Plugin {
        self.set("configuration", configuration)
    }

    /// Any other setting (`root_id`, `vm_config`, `limits`...).
    pub fn set(mut self, key: &str, value: impl Serialize) -> Plugin {
        put(&mut self.0, key, value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_yaml_key_per_part() {
        let config = Config::new()
            .listener(
                Listener::new("main", "127.0.0.1:1")
                    .route(Route::prefix("/").cluster("up").retry(Retry::new(2))),
            )
            .cluster(Cluster::new("up").endpoint("127.0.0.1:2"))
            .raw("shutdown: {drain_timeout: 1s}");
        let text = config.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let json = |line: &str, key: &str| -> Value {
            let value = line.strip_prefix(key).expect(key);
            serde_json::from_str(value).expect("JSON")
        };
        assert_eq!(
            json(lines[0], "listeners: "),
            json!([{
                "name": "main",
                "address": "127.0.0.1:1",
                "routes": [{
                    "match": { "prefix": "/" },
                    "route": { "cluster": "up", "retry_policy": { "num_retries": 2 } },
                }],
            }])
        );
        assert_eq!(
            json(lines[1], "clusters: "),
            json!([{ "name": "up", "endpoints": ["127.0.0.1:2"] }])
        );
        assert_eq!(lines[2..], ["shutdown: {drain_timeout: 1s}"]);
    }
}
