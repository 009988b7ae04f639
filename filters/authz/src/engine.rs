//! The decision, as Istio takes it: a matching DENY policy denies; then, if
//! any ALLOW policy exists, the request must match one; otherwise it is
//! allowed. AUDIT policies are only reported. Dry-run policies are weighed
//! the same way among themselves, apart from the enforced ones, and only
//! reported.

use crate::attributes::{Host, Request};
use crate::config::Action;
use crate::policy::Policy;

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The request goes on.
    Allowed,
    /// The request is answered with the denied response.
    Denied,
}

/// An outcome and the policy that decided it (by index), if one did: the
/// matching DENY or ALLOW policy; none when no policy applies or no ALLOW
/// policy matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Allowed or denied.
    pub outcome: Outcome,
    /// The deciding policy.
    pub policy: Option<usize>,
}

/// Everything the policies say about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The enforced decision.
    pub enforced: Decision,
    /// What the dry-run policies would decide (when there are any).
    pub dry_run: Option<Decision>,
    /// AUDIT policies that matched.
    pub audited: Vec<usize>,
}

/// The compiled policies, ready to judge requests.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    policies: Vec<Policy>,
    has_dry_run: bool,
}

impl Engine {
    /// An engine over `policies`, in configuration order.
    pub fn new(policies: Vec<Policy>) -> Engine {
        let has_dry_run = policies
            .iter()
            .any(|p| p.dry_run && p.action != Action::Audit);
        Engine {
            policies,
            has_dry_run,
        }
    }

    /// The policies.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Judges one request.
    pub fn evaluate<H: Host>(&self, request: &Request<'_, H>) -> Verdict {
        let enforced = self.decide(request, false);
        let dry_run = self.has_dry_run.then(|| self.decide(request, true));
        let audited = self
            .policies
            .iter()
            .enumerate()
            .filter(|(_, p)| p.action == Action::Audit && p.matches(request))
            .map(|(i, _)| i)
            .collect();
        Verdict {
            enforced,
            dry_run,
            audited,
        }
    }

    /// The decision of the enforced (`dry_run` false) or dry-run policies.
    fn decide<H: Host>(&self, request: &Request<'_, H>, dry_run: bool) -> Decision {
        let of = |action: Action| {
            self.policies
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.dry_run == dry_run && p.action == action)
        };
        if let Some((i, _)) = of(Action::Deny).find(|(_, p)| p.matches(request)) {
            return Decision {
                outcome: Outcome::Denied,
                policy: Some(i),
            };
        }
        let mut allows = of(Action::Allow).peekable();
        if allows.peek().is_none() {
            return Decision {
                outcome: Outcome::Allowed,
                policy: None,
            };
        }
        match allows.find(|(_, p)| p.matches(request)) {
            Some((i, _)) => Decision {
                outcome: Outcome::Allowed,
                policy: Some(i),
            },
            None => Decision {
                outcome: Outcome::Denied,
                policy: None,
            },
        }
    }
}
