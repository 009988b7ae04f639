//! Compiled policies and how one matches a request: a rule matches when one
//! of its `from` entries, one of its `to` entries and all of its `when`
//! conditions match (a missing part matches); every entry and condition is
//! a list of [`Check`]s that must all hold.

use ipnet::IpNet;

use crate::attributes::{Attribute, Host, Request};
use crate::config::Action;
use crate::pattern::{OneOf, Pattern, cidr_contains};

/// One field of a source, operation or condition against its attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// String patterns against a string attribute.
    Strings(Attribute, OneOf<Pattern>),
    /// CIDR blocks against an address attribute.
    Addresses(Attribute, OneOf<IpNet>),
    /// Port numbers against `destination.port`.
    Ports(OneOf<u16>),
}

impl Check {
    /// True when the request's attribute satisfies the field.
    pub fn matches<H: Host>(&self, request: &Request<'_, H>) -> bool {
        match self {
            Check::Strings(attribute, field) => request.with_strings(attribute, |values| {
                field.matches_all(values, |pattern, value| pattern.matches(value))
            }),
            Check::Addresses(attribute, field) => {
                let address = request.ip(attribute);
                field.matches_all(address.as_slice(), cidr_contains)
            }
            Check::Ports(field) => {
                let port = request.destination_port();
                field.matches_all(port.as_slice(), |expected, port| *expected == port)
            }
        }
    }
}

/// Checks that must all hold (a `source`, an `operation`, the `when` list).
pub type AllOf = Vec<Check>;

fn all<H: Host>(checks: &AllOf, request: &Request<'_, H>) -> bool {
    checks.iter().all(|check| check.matches(request))
}

/// A compiled rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// `from` entries, one of which must match (none given: any source).
    pub from: Vec<AllOf>,
    /// `to` entries, one of which must match (none given: any operation).
    pub to: Vec<AllOf>,
    /// `when` conditions, all of which must match.
    pub when: AllOf,
}

impl Rule {
    /// True when the request matches the rule.
    pub fn matches<H: Host>(&self, request: &Request<'_, H>) -> bool {
        let any_of = |entries: &Vec<AllOf>| {
            entries.is_empty() || entries.iter().any(|checks| all(checks, request))
        };
        any_of(&self.from) && any_of(&self.to) && all(&self.when, request)
    }
}

/// A compiled policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// What it does when it matches.
    pub action: Action,
    /// Log and count only.
    pub dry_run: bool,
    /// Its rules; none: the policy matches nothing.
    pub rules: Vec<Rule>,
}

impl Policy {
    /// True when some rule matches the request.
    pub fn matches<H: Host>(&self, request: &Request<'_, H>) -> bool {
        self.rules.iter().any(|rule| rule.matches(request))
    }
}
