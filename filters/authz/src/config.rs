//! The plugin configuration as written: Istio's `AuthorizationPolicy` in
//! snake_case (`policies[].rules[].from[].source`, `to[].operation`, `when[]`),
//! plus the denied response and the client-address setting. Every struct
//! denies unknown fields; `compile` turns this into matchers and reports
//! what is wrong with a path (`policies[0].rules[1].from[0].source.ip_blocks[2]`).

use serde::Deserialize;

/// The status a denied request gets unless `denied_status` says otherwise.
pub const DEFAULT_DENIED_STATUS: u16 = 403;
/// The body a denied request gets unless `denied_body` says otherwise (Envoy's RBAC body).
pub const DEFAULT_DENIED_BODY: &str = "RBAC: access denied";
/// The prefix of the filter's metric names unless `stat_prefix` says otherwise.
pub const DEFAULT_STAT_PREFIX: &str = "authz";

/// The whole plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The policies, evaluated as Istio does (DENY, then ALLOW; AUDIT logs).
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// Status of the local reply to a denied request (default 403).
    #[serde(default = "default_denied_status")]
    pub denied_status: u16,
    /// Body of the local reply to a denied request (default `RBAC: access denied`).
    #[serde(default = "default_denied_body")]
    pub denied_body: String,
    /// Trusted proxies in front of this one: 0 (default) makes the client
    /// address of `remote_ip_blocks` / `remote.ip` the connection's peer;
    /// N takes the Nth address from the right of `x-forwarded-for`.
    #[serde(default)]
    pub xff_num_trusted_hops: u32,
    /// Prefix of the metric names (default `authz`).
    #[serde(default = "default_stat_prefix")]
    pub stat_prefix: String,
}

fn default_denied_status() -> u16 {
    DEFAULT_DENIED_STATUS
}

fn default_denied_body() -> String {
    DEFAULT_DENIED_BODY.to_owned()
}

fn default_stat_prefix() -> String {
    DEFAULT_STAT_PREFIX.to_owned()
}

/// What a matching policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Action {
    /// The request must match some ALLOW policy (when any exists).
    #[serde(rename = "ALLOW")]
    Allow,
    /// A matching request is denied, whatever the ALLOW policies say.
    #[serde(rename = "DENY")]
    Deny,
    /// A matching request is logged and counted; the decision is unchanged.
    #[serde(rename = "AUDIT")]
    Audit,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
        })
    }
}

/// One `AuthorizationPolicy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Unique name, used in logs and metric names.
    pub name: String,
    /// `ALLOW` (default), `DENY` or `AUDIT`.
    #[serde(default = "default_action")]
    pub action: Action,
    /// The rules; the policy matches a request matching any of them. No
    /// rules: the policy matches nothing (so an ALLOW policy without rules
    /// denies every request no other ALLOW policy matches).
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Log and count what the policy would do, and let the request through.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_action() -> Action {
    Action::Allow
}

/// A rule: every part that is given must match; `{}` matches everything.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Who sends the request: matches when any entry matches.
    #[serde(default)]
    pub from: Vec<FromConfig>,
    /// What the request does: matches when any entry matches.
    #[serde(default)]
    pub to: Vec<ToConfig>,
    /// Extra conditions: all must match.
    #[serde(default)]
    pub when: Vec<ConditionConfig>,
}

/// One `from` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromConfig {
    /// The source's attributes.
    pub source: SourceConfig,
}

/// Source attributes; every field given must match (`not_*`: must not).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SourceConfig {
    #[serde(default)]
    pub principals: Vec<String>,
    #[serde(default)]
    pub not_principals: Vec<String>,
    #[serde(default)]
    pub request_principals: Vec<String>,
    #[serde(default)]
    pub not_request_principals: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub not_namespaces: Vec<String>,
    #[serde(default)]
    pub ip_blocks: Vec<String>,
    #[serde(default)]
    pub not_ip_blocks: Vec<String>,
    #[serde(default)]
    pub remote_ip_blocks: Vec<String>,
    #[serde(default)]
    pub not_remote_ip_blocks: Vec<String>,
}

/// One `to` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToConfig {
    /// The operation's attributes.
    pub operation: OperationConfig,
}

/// Operation attributes; every field given must match (`not_*`: must not).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct OperationConfig {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub not_hosts: Vec<String>,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub not_ports: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub not_methods: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub not_paths: Vec<String>,
}

/// One `when` condition: `key` matches one of `values` and none of `not_values`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// The attribute, e.g. `request.headers[x-user]` or `request.auth.claims[groups]`.
    pub key: String,
    /// Values of which one must match.
    #[serde(default)]
    pub values: Vec<String>,
    /// Values none of which may match.
    #[serde(default)]
    pub not_values: Vec<String>,
}
