//! Turns the configuration as written into [`Policy`] matchers, checking it
//! as Istio validates an `AuthorizationPolicy`; every error names its place
//! (`policies[0].rules[1].from[0].source.ip_blocks[2]: "10.0.0.0/33" is not
//! a CIDR block …`).

use std::collections::HashSet;

use crate::attributes::Attribute;
use crate::config::{ConditionConfig, Config, FromConfig, PolicyConfig, RuleConfig, ToConfig};
use crate::pattern::{OneOf, Pattern, parse_cidr, parse_port};
use crate::policy::{AllOf, Check, Policy, Rule};

/// Istio compares principals with the peer's SPIFFE URI with this in front.
const SPIFFE_PREFIX: &str = "spiffe://";

/// A configuration mistake and where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Where: `policies[0].rules[1].to[0].operation.ports[0]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn error(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// Compiles every policy of `config`, or the first mistake found.
pub fn compile(config: &Config) -> Result<Vec<Policy>, ConfigError> {
    if !(100..=599).contains(&config.denied_status) {
        return Err(error(
            "denied_status",
            format!("{} is not an HTTP status (100-599)", config.denied_status),
        ));
    }
    if config.stat_prefix.is_empty() {
        return Err(error("stat_prefix", "must not be empty"));
    }
    let mut names = HashSet::new();
    let mut policies = Vec::with_capacity(config.policies.len());
    for (i, policy) in config.policies.iter().enumerate() {
        let at = format!("policies[{i}]");
        if policy.name.is_empty() {
            return Err(error(format!("{at}.name"), "must not be empty"));
        }
        if !names.insert(policy.name.as_str()) {
            return Err(error(
                format!("{at}.name"),
                format!("{:?} is the name of an earlier policy", policy.name),
            ));
        }
        policies.push(compile_policy(&at, policy)?);
    }
    Ok(policies)
}

fn compile_policy(at: &str, policy: &PolicyConfig) -> Result<Policy, ConfigError> {
    let rules = policy
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| compile_rule(&format!("{at}.rules[{i}]"), rule))
        .collect::<Result<_, _>>()?;
    Ok(Policy {
        name: policy.name.clone(),
        action: policy.action,
        dry_run: policy.dry_run,
        rules,
    })
}

fn compile_rule(at: &str, rule: &RuleConfig) -> Result<Rule, ConfigError> {
    let from = rule
        .from
        .iter()
        .enumerate()
        .map(|(i, from)| compile_from(&format!("{at}.from[{i}].source"), from))
        .collect::<Result<_, _>>()?;
    let to = rule
        .to
        .iter()
        .enumerate()
        .map(|(i, to)| compile_to(&format!("{at}.to[{i}].operation"), to))
        .collect::<Result<_, _>>()?;
    let when = rule
        .when
        .iter()
        .enumerate()
        .map(|(i, condition)| compile_condition(&format!("{at}.when[{i}]"), condition))
        .collect::<Result<_, _>>()?;
    Ok(Rule { from, to, when })
}

/// A field and its `not_` form, named for error paths.
struct Field<'a> {
    at: &'a str,
    name: &'a str,
    values: &'a [String],
    not_values: &'a [String],
}

impl Field<'_> {
    fn given(&self) -> bool {
        !self.values.is_empty() || !self.not_values.is_empty()
    }

    /// Parses both lists with `parse`, naming the bad entry on error.
    fn parse<M>(&self, parse: impl Fn(&str) -> Result<M, String>) -> Result<OneOf<M>, ConfigError> {
        let list = |name: String, values: &[String]| -> Result<Vec<M>, ConfigError> {
            values
                .iter()
                .enumerate()
                .map(|(i, value)| {
                    let here = || format!("{}.{name}[{i}]", self.at);
                    if value.is_empty() {
                        return Err(error(here(), "must not be empty"));
                    }
                    parse(value).map_err(|message| error(here(), message))
                })
                .collect()
        };
        Ok(OneOf {
            any: list(self.name.to_owned(), self.values)?,
            none: list(format!("not_{}", self.name), self.not_values)?,
        })
    }

    fn strings(
        &self,
        attribute: Attribute,
        adapt: fn(Pattern) -> Pattern,
    ) -> Result<Check, ConfigError> {
        let field = self.parse(|v| Pattern::parse(v).map(adapt))?;
        Ok(Check::Strings(attribute, field))
    }

    fn addresses(&self, attribute: Attribute) -> Result<Check, ConfigError> {
        Ok(Check::Addresses(attribute, self.parse(parse_cidr)?))
    }

    fn ports(&self) -> Result<Check, ConfigError> {
        Ok(Check::Ports(self.parse(parse_port)?))
    }
}

fn field<'a>(
    at: &'a str,
    name: &'a str,
    values: &'a [String],
    not_values: &'a [String],
) -> Field<'a> {
    Field {
        at,
        name,
        values,
        not_values,
    }
}

fn same(pattern: Pattern) -> Pattern {
    pattern
}

fn spiffe(pattern: Pattern) -> Pattern {
    pattern.anchored(SPIFFE_PREFIX)
}

fn path_pattern(value: &str) -> Result<Pattern, String> {
    if value.contains('{') {
        return Err(format!(
            "{value:?}: path templates ({{*}}, {{**}}) are not supported; use `prefix*` or `*suffix`"
        ));
    }
    Pattern::parse(value)
}

fn compile_from(at: &str, from: &FromConfig) -> Result<AllOf, ConfigError> {
    let s = &from.source;
    let fields = [
        field(at, "principals", &s.principals, &s.not_principals),
        field(
            at,
            "request_principals",
            &s.request_principals,
            &s.not_request_principals,
        ),
        field(at, "namespaces", &s.namespaces, &s.not_namespaces),
        field(at, "ip_blocks", &s.ip_blocks, &s.not_ip_blocks),
        field(
            at,
            "remote_ip_blocks",
            &s.remote_ip_blocks,
            &s.not_remote_ip_blocks,
        ),
    ];
    let mut checks = Vec::new();
    for f in fields.iter().filter(|f| f.given()) {
        checks.push(match f.name {
            "principals" => f.strings(Attribute::SourcePrincipal, spiffe)?,
            "request_principals" => f.strings(Attribute::RequestPrincipal, same)?,
            "namespaces" => f.strings(Attribute::SourceNamespace, same)?,
            "ip_blocks" => f.addresses(Attribute::SourceIp)?,
            _ => f.addresses(Attribute::RemoteIp)?,
        });
    }
    if checks.is_empty() {
        return Err(error(
            at,
            "must set at least one field (an empty source is an Istio validation error)",
        ));
    }
    Ok(checks)
}

fn compile_to(at: &str, to: &ToConfig) -> Result<AllOf, ConfigError> {
    let o = &to.operation;
    let fields = [
        field(at, "hosts", &o.hosts, &o.not_hosts),
        field(at, "ports", &o.ports, &o.not_ports),
        field(at, "methods", &o.methods, &o.not_methods),
        field(at, "paths", &o.paths, &o.not_paths),
    ];
    let mut checks = Vec::new();
    for f in fields.iter().filter(|f| f.given()) {
        checks.push(match f.name {
            "hosts" => f.strings(Attribute::Host, Pattern::lowercase)?,
            "ports" => f.ports()?,
            "methods" => f.strings(Attribute::Method, same)?,
            _ => Check::Strings(Attribute::Path, f.parse(path_pattern)?),
        });
    }
    if checks.is_empty() {
        return Err(error(
            at,
            "must set at least one field (an empty operation is an Istio validation error)",
        ));
    }
    Ok(checks)
}

/// The keys a `when` condition may name.
const CONDITION_KEYS: &str = "request.headers[NAME], source.ip, remote.ip, source.principal, \
    source.namespace, request.auth.principal, request.auth.audiences, request.auth.presenter, \
    request.auth.claims[NAME]…, destination.ip, destination.port, connection.sni";

fn compile_condition(at: &str, condition: &ConditionConfig) -> Result<Check, ConfigError> {
    let key = condition.key.as_str();
    let field = Field {
        at,
        name: "values",
        values: &condition.values,
        not_values: &condition.not_values,
    };
    if !field.given() {
        return Err(error(
            at,
            format!("condition on {key:?} needs `values` or `not_values`"),
        ));
    }
    let key_error = |message: String| error(format!("{at}.key"), message);
    let check = match key {
        "source.ip" => field.addresses(Attribute::SourceIp)?,
        "remote.ip" => field.addresses(Attribute::RemoteIp)?,
        "destination.ip" => field.addresses(Attribute::DestinationIp)?,
        "destination.port" => field.ports()?,
        "source.principal" => field.strings(Attribute::SourcePrincipal, spiffe)?,
        "source.namespace" => field.strings(Attribute::SourceNamespace, same)?,
        "request.auth.principal" => field.strings(Attribute::RequestPrincipal, same)?,
        "request.auth.audiences" => field.strings(Attribute::Audiences, same)?,
        "request.auth.presenter" => field.strings(Attribute::Presenter, same)?,
        "connection.sni" => field.strings(Attribute::Sni, same)?,
        _ => {
            if let Some(rest) = key.strip_prefix("request.headers") {
                let names = bracketed(rest).map_err(&key_error)?;
                let [name] = names.as_slice() else {
                    return Err(key_error(format!(
                        "{key:?}: name one header, as request.headers[x-user]"
                    )));
                };
                field.strings(Attribute::Header(name.to_ascii_lowercase()), same)?
            } else if let Some(rest) = key.strip_prefix("request.auth.claims") {
                let path = bracketed(rest).map_err(&key_error)?;
                field.strings(Attribute::Claim(path), same)?
            } else {
                return Err(key_error(format!(
                    "unknown key {key:?}; one of {CONDITION_KEYS}"
                )));
            }
        }
    };
    Ok(check)
}

/// `[a][b]` → `["a", "b"]`; at least one non-empty name, nothing else.
fn bracketed(text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let inner = rest
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .filter(|(name, _)| !name.is_empty() && !name.contains('['));
        let Some((name, after)) = inner else {
            return Err(format!("{text:?} is not a list of [name] parts"));
        };
        names.push(name.to_owned());
        rest = after;
    }
    if names.is_empty() {
        return Err("a name in brackets is missing, as in [name]".to_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_name_nested_parts() {
        assert_eq!(bracketed("[a]").unwrap(), ["a"]);
        assert_eq!(bracketed("[a][b]").unwrap(), ["a", "b"]);
        for bad in ["", "[]", "[a", "a]", "[a]x", "[a][", ".a"] {
            assert!(bracketed(bad).is_err(), "{bad}");
        }
    }
}
