//! The declarative configuration model: what operators write in YAML or JSON.
//!
//! Every struct rejects unknown fields so a typo is an error, not a silently
//! ignored setting. Semantic checks (references, formats, exclusivity) live in
//! `validate.rs`; this file only says what can be written and the defaults.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::defaults;
use crate::filters::FilterChainConfig;
use crate::mesh::{ClusterTls, ListenerMtls, MeshConfig, OutboundTrafficPolicy};

/// The whole configuration of one wasp process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The admin server (`/ready`, `/metrics`, `/config_dump`); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminConfig>,
    /// The listeners: addresses the proxy accepts requests on, each with its routes.
    pub listeners: Vec<ListenerConfig>,
    /// The upstream clusters routes forward to.
    #[serde(default)]
    pub clusters: Vec<ClusterConfig>,
    /// Named chains of Wasm filters routes and listeners refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter_chains: Vec<FilterChainConfig>,
    /// Shutdown behaviour.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Who this proxy is (Envoy's bootstrap `node`): filters read it as
    /// `node.*` and `xds.node`.
    #[serde(default, skip_serializing_if = "NodeConfig::is_empty")]
    pub node: NodeConfig,
    /// The workload identity for mutual TLS and the trusted roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<MeshConfig>,
    /// What outbound listeners do with requests that match no route.
    #[serde(default, skip_serializing_if = "OutboundTrafficPolicy::is_default")]
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// Destinations outside the registry that outbound listeners may reach:
    /// `host`, `*.domain`, either with `:port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<String>,
}

/// The proxy's node identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `node.id`, e.g. `sidecar~10.0.0.5~web-1.prod~prod.svc.cluster.local`.
    #[serde(default)]
    pub id: String,
    /// `node.cluster`, e.g. the service the proxy runs beside.
    #[serde(default)]
    pub cluster: String,
    /// `node.metadata.<key>`: string values.
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// The workload's labels, as Istio's bootstrap carries them: filters
    /// read them as `node.metadata.LABELS.<key>` (keys may hold `.` and
    /// `/`, e.g. `service.istio.io/canonical-name`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl NodeConfig {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
            && self.cluster.is_empty()
            && self.metadata.is_empty()
            && self.labels.is_empty()
    }
}

/// The admin server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `IP:port` to serve on, e.g. `127.0.0.1:9901`.
    pub address: String,
}

/// Graceful shutdown settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long in-flight requests may run after SIGTERM/SIGINT before the
    /// process exits anyway.
    #[serde(with = "humantime_serde", default = "defaults::drain_timeout")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_timeout: defaults::drain_timeout(),
        }
    }
}

/// One listener: a socket and the routes requests on it are matched against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Unique name, used in metrics and logs.
    pub name: String,
    /// `IP:port` to bind.
    pub address: String,
    /// TLS termination; plain text (HTTP/1.1 and h2c) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Mutual TLS with the mesh certificate (STRICT, PERMISSIVE, DISABLE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<ListenerMtls>,
    /// The listener captures the workload's outbound traffic: a request
    /// that matches no route goes to the cluster named like its host, or is
    /// subject to `outbound_traffic_policy` and `egress`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outbound: bool,
    /// Emit one access log line per request on this listener.
    #[serde(default)]
    pub access_log: bool,
    /// A client connection with no request in flight for this long is
    /// closed; zero: never.
    #[serde(with = "humantime_serde", default = "defaults::idle_timeout")]
    pub idle_timeout: Duration,
    /// Largest request header block, in KiB (method, request target and
    /// every header name and value), HTTP/1.1 and HTTP/2 alike; over it: 431.
    #[serde(default = "defaults::max_request_headers_kb")]
    pub max_request_headers_kb: u32,
    /// Most request header fields; over it: 431.
    #[serde(default = "defaults::max_request_headers_count")]
    pub max_request_headers_count: u32,
    /// Time from a request's start until it has been received completely
    /// (headers and body); past it: 408 (or a reset once the response
    /// started). Zero (the default, as Envoy's): none.
    #[serde(with = "humantime_serde", default)]
    pub request_timeout: Duration,
    /// A request with no bytes received or sent for this long ends: 408
    /// (or a reset once the response started). Zero: none.
    #[serde(with = "humantime_serde", default = "defaults::stream_idle_timeout")]
    pub stream_idle_timeout: Duration,
    /// Proxies in front of this listener whose `x-forwarded-for` entries
    /// and `x-forwarded-proto` are trusted (Envoy's `xff_num_trusted_hops`).
    /// Zero (an edge): both are overwritten from the connection.
    #[serde(default)]
    pub trusted_hops: u32,
    /// Filter chain for routes that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_chain: Option<String>,
    /// Routes, tried in order; the first match wins.
    pub routes: Vec<RouteConfig>,
}

/// TLS termination for a listener. ALPN offers `h2` and `http/1.1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM file with the certificate chain, leaf first.
    pub cert_file: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

/// One route: a match and exactly one action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name used in metrics and logs; defaults to `route<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What a request must look like; an empty match takes every request.
    #[serde(rename = "match", default)]
    pub matcher: RouteMatch,
    /// Filter chain run on requests of this route (overrides the listener's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_chain: Option<String>,
    /// Forward to a cluster (or weighted clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<ForwardAction>,
    /// Answer directly with a fixed response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<DirectResponse>,
    /// Answer with a redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
}

/// Conditions a request must meet, all of them, for a route to match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Host names (`api.example.com`, or `*.example.com` for any subdomain);
    /// any one may match. The port, if present in the request, is ignored.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub authority: Vec<String>,
    /// Path prefix, starting with `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Exact path, starting with `/` (the query string is not part of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Regular expression the whole path must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// HTTP methods; any one may match.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub method: Vec<String>,
    /// Header conditions; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
    /// Query parameter conditions; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<ValueMatch>,
}

/// A condition on a named header or query parameter. With neither `exact`,
/// `regex` nor `present`, the value must be present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatch {
    /// Header or parameter name (headers are case-insensitive).
    pub name: String,
    /// The value must equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The whole value must match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// `true`: must be present; `false`: must be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

/// Forwarding to upstream clusters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAction {
    /// The cluster to forward to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Clusters to split traffic between, by weight (canary releases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weighted_clusters: Vec<WeightedCluster>,
    /// Replace the matched prefix (route `match.prefix`) with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_rewrite: Option<String>,
    /// Replace the request's host (`Host` / `:authority`) with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rewrite: Option<String>,
    /// Time from the end of the request to the upstream's response headers,
    /// across every retry; expiry answers 504. `0s` disables it.
    #[serde(with = "humantime_serde", default = "defaults::route_timeout")]
    pub timeout: Duration,
    /// Retries of failed attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Protocols a request may switch to (`Connection: upgrade` with
    /// `Upgrade: <protocol>`, compared case-insensitively); any other
    /// upgrade is refused with 403. `h2c` is never proxied: its upgrade
    /// headers are removed and the request forwarded as HTTP/1.1. Empty
    /// disables upgrades.
    #[serde(default = "defaults::route_upgrades")]
    pub upgrade: Vec<String>,
    /// How to derive the key a `ring_hash` cluster hashes; the first policy
    /// that yields a value is used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hash_policy: Vec<HashPolicy>,
}

/// When and how a failed attempt is retried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    #[serde(default = "defaults::num_retries")]
    pub num_retries: u32,
    /// Conditions that allow a retry.
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<RetryOn>,
    /// Status codes retried under `retriable-status-codes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retriable_status_codes: Vec<u16>,
    /// Time limit of each attempt (to response headers); unlimited when absent.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub per_try_timeout: Option<Duration>,
    /// First back-off interval; later ones double, with full jitter.
    #[serde(with = "humantime_serde", default = "defaults::retry_base_interval")]
    pub base_interval: Duration,
    /// Longest back-off interval; ten times `base_interval` when absent.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_interval: Option<Duration>,
    /// Request bodies up to this many bytes (with a `content-length`) are
    /// buffered so they can be sent again; larger or unsized bodies are only
    /// retried when they were not sent yet (connect failures).
    #[serde(default = "defaults::retry_buffer_limit")]
    pub buffer_limit: u64,
}

/// `retry_on` when a retry policy does not say: `[5xx]` (Envoy's default).
fn default_retry_on() -> Vec<RetryOn> {
    vec![RetryOn::FiveXx]
}

/// A retry condition (Envoy's `retry_on` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// Any 5xx response, connect failure, reset or per-try timeout.
    #[serde(rename = "5xx")]
    FiveXx,
    /// 502, 503, 504, connect failure, reset or per-try timeout.
    GatewayError,
    /// The connection could not be established.
    ConnectFailure,
    /// The upstream reset or closed before response headers, or a per-try timeout.
    Reset,
    /// A status listed in `retriable_status_codes`.
    RetriableStatusCodes,
    /// 409 Conflict.
    #[serde(rename = "retriable-4xx")]
    Retriable4xx,
}

/// A source of the hash key for `ring_hash` clusters, written as a map with
/// one key: `{header: NAME}`, `{cookie: NAME}` or `{source_ip: true}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "HashPolicySpec")]
pub enum HashPolicy {
    /// The value of this request header.
    Header(String),
    /// The value of this cookie.
    Cookie(String),
    /// The client's IP address (`source_ip: true`).
    SourceIp(bool),
}

/// A hash policy as written (YAML maps, not tagged enums).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashPolicySpec {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    cookie: Option<String>,
    #[serde(default)]
    source_ip: Option<bool>,
}

impl TryFrom<HashPolicySpec> for HashPolicy {
    type Error = String;

    fn try_from(spec: HashPolicySpec) -> Result<Self, Self::Error> {
        match (spec.header, spec.cookie, spec.source_ip) {
            (Some(header), None, None) => Ok(Self::Header(header)),
            (None, Some(cookie), None) => Ok(Self::Cookie(cookie)),
            (None, None, Some(source_ip)) => Ok(Self::SourceIp(source_ip)),
            _ => Err("exactly one of 'header', 'cookie', 'source_ip' is required".to_owned()),
        }
    }
}

/// One cluster of a weighted split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedCluster {
    /// Cluster name.
    pub cluster: String,
    /// Relative weight (> 0).
    pub weight: u32,
}

/// A fixed response sent by the proxy itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponse {
    /// Status code (100–599).
    pub status: u16,
    /// Response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// A redirect sent by the proxy itself; unset parts keep the request's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// New scheme (`http` or `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// New host (may include a port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// New path (the query string is kept unless `strip_query`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Drop the query string.
    #[serde(default)]
    pub strip_query: bool,
    /// 301, 302, 303, 307 or 308.
    #[serde(default = "defaults::redirect_status")]
    pub status: u16,
}

/// An upstream cluster: a named set of endpoints and how to talk to them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Unique name routes refer to.
    pub name: String,
    /// `IP:port` or `hostname:port` endpoints, each optionally with a weight
    /// (`{address: "10.0.0.1:80", weight: 3}`); host names are resolved at
    /// start and every `dns_refresh_rate`.
    pub endpoints: Vec<EndpointConfig>,
    /// How requests are spread over the endpoints.
    #[serde(default)]
    pub lb_policy: LbPolicy,
    /// Protocol spoken to the endpoints.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Time allowed to establish a TCP connection.
    #[serde(with = "humantime_serde", default = "defaults::connect_timeout")]
    pub connect_timeout: Duration,
    /// How often host names are resolved again.
    #[serde(with = "humantime_serde", default = "defaults::dns_refresh_rate")]
    pub dns_refresh_rate: Duration,
    /// Idle keep-alive connections kept per endpoint (HTTP/1.1).
    #[serde(default = "defaults::max_idle_per_endpoint")]
    pub max_idle_per_endpoint: usize,
    /// A pooled connection unused for this long is closed.
    #[serde(with = "humantime_serde", default = "defaults::idle_timeout")]
    pub idle_timeout: Duration,
    /// Limits beyond which requests fail fast with 503.
    #[serde(default)]
    pub circuit_breakers: CircuitBreakers,
    /// Retries may be at most this share of active requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
    /// Passive health: eject endpoints that keep failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Active health: probe every endpoint over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// When fewer than this percentage of endpoints are healthy, every
    /// endpoint is used (panic mode).
    #[serde(default = "defaults::panic_threshold")]
    pub panic_threshold: u32,
    /// TLS origination to the endpoints (ISTIO_MUTUAL, SIMPLE, DISABLE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClusterTls>,
}

/// One endpoint: an address and its load-balancing weight.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointConfig {
    /// `IP:port` or `hostname:port`.
    pub address: String,
    /// Relative weight (> 0).
    pub weight: u32,
}

impl<'de> Deserialize<'de> for EndpointConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            address: String,
            #[serde(default = "one")]
            weight: u32,
        }
        fn one() -> u32 {
            1
        }
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "\"host:port\" or {address, weight}")]
        enum Either {
            Address(String),
            Full(Full),
        }
        Ok(match Either::deserialize(deserializer)? {
            Either::Address(address) => Self { address, weight: 1 },
            Either::Full(full) => Self {
                address: full.address,
                weight: full.weight,
            },
        })
    }
}

/// Load-balancing policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Weighted round robin.
    #[default]
    RoundRobin,
    /// The less loaded of two random endpoints (power of two choices),
    /// load being active requests divided by weight.
    LeastRequest,
    /// Weighted random.
    Random,
    /// Consistent hashing on the route's `hash_policy` key (session affinity).
    RingHash,
}

/// Circuit-breaker limits of a cluster (Envoy's defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakers {
    /// Open connections to the cluster.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Requests waiting for a connection.
    #[serde(default = "defaults::max_pending_requests")]
    pub max_pending_requests: usize,
    /// Requests in flight.
    #[serde(default = "defaults::max_requests")]
    pub max_requests: usize,
    /// Retries in flight (unless a `retry_budget` is set).
    #[serde(default = "defaults::max_retries")]
    pub max_retries: usize,
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        Self {
            max_connections: defaults::max_connections(),
            max_pending_requests: defaults::max_pending_requests(),
            max_requests: defaults::max_requests(),
            max_retries: defaults::max_retries(),
        }
    }
}

/// Retries allowed as a share of the cluster's active requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudget {
    /// Percentage of active requests that may be retries.
    #[serde(default = "defaults::budget_percent")]
    pub budget_percent: f64,
    /// Retries always allowed in flight, whatever the percentage gives.
    #[serde(default = "defaults::min_retry_concurrency")]
    pub min_retry_concurrency: usize,
}

/// Passive health checking (Envoy's outlier detection).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    /// Consecutive 5xx responses (connect failures and resets included) that eject.
    #[serde(default = "defaults::consecutive_5xx")]
    pub consecutive_5xx: u32,
    /// Ejection time for the first ejection; the n-th lasts n times as long.
    #[serde(with = "humantime_serde", default = "defaults::base_ejection_time")]
    pub base_ejection_time: Duration,
    /// At most this percentage of endpoints is ejected at once (at least one).
    #[serde(default = "defaults::max_ejection_percent")]
    pub max_ejection_percent: u32,
}

/// Active HTTP health checking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Path requested with GET; a 200 answer is healthy.
    pub path: String,
    /// Time between probes of an endpoint.
    #[serde(with = "humantime_serde", default = "defaults::health_interval")]
    pub interval: Duration,
    /// Time a probe may take.
    #[serde(with = "humantime_serde", default = "defaults::health_timeout")]
    pub timeout: Duration,
    /// Consecutive successes that make an unhealthy endpoint healthy.
    #[serde(default = "defaults::healthy_threshold")]
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy endpoint unhealthy.
    #[serde(default = "defaults::unhealthy_threshold")]
    pub unhealthy_threshold: u32,
}

/// Protocol spoken to a cluster's endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive connection pooling.
    #[default]
    Http1,
    /// HTTP/2 (prior knowledge, h2c), streams multiplexed on one connection.
    Http2,
}

/// Accepts either a single string or a list of strings.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}
