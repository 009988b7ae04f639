//! The declarative configuration model: what operators write in YAML or JSON.
//!
//! Every struct rejects unknown fields so a typo is an error, not a silently
//! ignored setting. Semantic checks (references, formats, exclusivity) live in
//! `validate.rs`; this file only says what can be written and the defaults.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::defaults;

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
    /// Shutdown behaviour.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
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
    /// Emit one access log line per request on this listener.
    #[serde(default)]
    pub access_log: bool,
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// `IP:port` or `hostname:port` endpoints; host names are resolved at
    /// start and every `dns_refresh_rate`.
    pub endpoints: Vec<String>,
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
