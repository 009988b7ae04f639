//! The filter's counters, defined once per configuration:
//! `<prefix>.allowed` / `.denied` (enforced decisions), `.dry_run_allowed` /
//! `.dry_run_denied` (what the dry-run policies would decide, when there
//! are any), and per policy `<prefix>.policy.<name>.<decision>` for the
//! requests it decided: `allowed`, `denied`, `audited`, `dry_run_allowed`,
//! `dry_run_denied`. wasp and Envoy export `authz.denied` as `authz_denied`.

use wasp_filter_sdk::Counter;

use crate::config::Action;
use crate::engine::{Decision, Outcome};
use crate::policy::Policy;

/// Counters for one allowed/denied pair.
#[derive(Debug, Clone, Copy)]
struct Pair {
    allowed: Counter,
    denied: Counter,
}

impl Pair {
    fn define(prefix: &str, kind: &str) -> Result<Pair, String> {
        Ok(Pair {
            allowed: counter(&format!("{prefix}.{kind}allowed"))?,
            denied: counter(&format!("{prefix}.{kind}denied"))?,
        })
    }

    fn count(&self, outcome: Outcome) {
        match outcome {
            Outcome::Allowed => self.allowed.increment(1),
            Outcome::Denied => self.denied.increment(1),
        }
    }
}

fn counter(name: &str) -> Result<Counter, String> {
    Counter::define(name).map_err(|e| format!("cannot define the metric {name:?}: {e}"))
}

/// Every counter of one configuration.
#[derive(Debug, Clone)]
pub struct Metrics {
    enforced: Pair,
    dry_run: Option<Pair>,
    /// Per policy, by index: the counter of the decision it makes when it matches.
    per_policy: Vec<Counter>,
}

impl Metrics {
    /// Defines the counters for `policies` under `prefix`.
    pub fn define(prefix: &str, policies: &[Policy]) -> Result<Metrics, String> {
        let has_dry_run = policies
            .iter()
            .any(|p| p.dry_run && p.action != Action::Audit);
        let per_policy = policies
            .iter()
            .map(|p| {
                let decision = match (p.action, p.dry_run) {
                    (Action::Audit, _) => "audited",
                    (Action::Allow, false) => "allowed",
                    (Action::Deny, false) => "denied",
                    (Action::Allow, true) => "dry_run_allowed",
                    (Action::Deny, true) => "dry_run_denied",
                };
                counter(&format!("{prefix}.policy.{}.{decision}", p.name))
            })
            .collect::<Result<_, _>>()?;
        Ok(Metrics {
            enforced: Pair::define(prefix, "")?,
            dry_run: if has_dry_run {
                Some(Pair::define(prefix, "dry_run_")?)
            } else {
                None
            },
            per_policy,
        })
    }

    /// Counts an enforced decision (and its policy's share).
    pub fn enforced(&self, decision: Decision) {
        self.enforced.count(decision.outcome);
        self.policy(decision.policy);
    }

    /// Counts a dry-run decision (and its policy's share).
    pub fn dry_run(&self, decision: Decision) {
        if let Some(pair) = &self.dry_run {
            pair.count(decision.outcome);
        }
        self.policy(decision.policy);
    }

    /// Counts a matching AUDIT policy.
    pub fn audited(&self, policy: usize) {
        self.policy(Some(policy));
    }

    fn policy(&self, policy: Option<usize>) {
        if let Some(counter) = policy.and_then(|i| self.per_policy.get(i)) {
            counter.increment(1);
        }
    }
}
