//! The registry's side of rollouts: the rollouts a version starts are
//! stored with it, proxies' reports are summed per rollout, a newer
//! version for the same proxies supersedes a running rollout, and a
//! periodic tick ([`run`]) ends each rollout its [`decide`] says to end,
//! as a new configuration version, and stores the counts.

use std::sync::Arc;
use std::time::Duration;

use wasp_controlplane_api as api;

use super::edit::{self, End};
use super::{AUTHOR, Counts, Decision, RolloutRecord, RolloutState, decide};
use crate::configs::{self, Resolver};
use crate::error::CpError;
use crate::registry::Registry;
use crate::store::{ConfigRecord, NewConfig};
use crate::{targeting, time};

/// How often running rollouts are decided and their counts stored.
pub const TICK: Duration = Duration::from_millis(250);

/// A report's counts for one rollout: (rollout id, stable, canary).
pub type Matched = (String, Counts, Counts);

fn counts(counts: Option<&api::VersionCounts>) -> Counts {
    counts.map_or_else(Counts::default, |c| Counts {
        requests: c.requests,
        errors: c.errors,
        traps: c.traps,
    })
}

impl Registry {
    /// Every rollout, newest first.
    pub fn rollouts(&self) -> Vec<RolloutRecord> {
        let mut all = self.rollouts.lock().expect("lock").records.clone();
        all.sort_by(|a, b| {
            (b.started_ms, &b.id)
                .cmp(&(a.started_ms, &a.id))
                .then(b.version.cmp(&a.version))
        });
        all
    }

    /// Adds a proxy's report to the running rollouts it is about (those of
    /// the version it runs); returns what counted for which.
    pub fn record_report(&self, report: &api::Report) -> Vec<Matched> {
        let mut rollouts = self.rollouts.lock().expect("lock");
        let mut matched = Vec::new();
        for canary in &report.canaries {
            let found = rollouts.records.iter_mut().find(|r| {
                r.state == RolloutState::Running
                    && r.version == report.version
                    && r.chain == canary.chain
                    && r.plugin == canary.plugin
            });
            let Some(rollout) = found else { continue };
            let (stable, canary) = (
                counts(canary.stable.as_ref()),
                counts(canary.canary.as_ref()),
            );
            rollout.stable.add(stable);
            rollout.canary.add(canary);
            matched.push((rollout.id.clone(), stable, canary));
        }
        if !matched.is_empty() {
            rollouts.dirty = true;
        }
        matched
    }

    /// Ends running rollouts whose version no other rollout carries and
    /// the proxies no longer run (a newer version for them). Call with
    /// the write lock held.
    pub(crate) fn settle_rollouts(&self) -> Result<(), CpError> {
        let heads: Vec<u64> = self.heads().records().iter().map(|r| r.version).collect();
        let mut rollouts = self.rollouts.lock().expect("lock");
        let mut ended = Vec::new();
        for rollout in rollouts.records.iter_mut() {
            if rollout.state == RolloutState::Running && !heads.contains(&rollout.version) {
                rollout.end(
                    RolloutState::Superseded,
                    format!(
                        "a newer configuration version for {} replaced version {}",
                        targeting::display(&rollout.selector),
                        rollout.version
                    ),
                    0,
                );
                tracing::info!(rollout = rollout.id, "rollout superseded");
                ended.push(rollout.clone());
            }
        }
        drop(rollouts);
        if !ended.is_empty() {
            self.store().put_rollouts(&ended)?;
        }
        Ok(())
    }

    /// Ends rollout `id` as `end` with a new configuration version (author
    /// `rollout`, message `rollout <id>: <reason>`); other running
    /// rollouts of the same version carry on in the new one.
    pub fn end_rollout(&self, id: &str, end: End, reason: &str) -> Result<ConfigRecord, CpError> {
        let _write = self.write_lock();
        let all = self.rollouts.lock().expect("lock").records.clone();
        let rollout = all
            .iter()
            .find(|r| r.id == id && r.state == RolloutState::Running)
            .cloned()
            .ok_or_else(|| CpError::NotFound(format!("no running rollout {id}")))?;
        let base = self.store().config(rollout.version)?.ok_or_else(|| {
            CpError::NotFound(format!("no configuration version {}", rollout.version))
        })?;
        let edited = |document: &str| {
            edit::end_canary(document, &rollout.chain, &rollout.plugin, end)
                .map_err(|e| CpError::BadRequest(format!("rollout {id}: {e}")))
        };
        let (document, resolved) = (edited(&base.document)?, edited(&base.resolved)?);
        let resolver = Resolver::new(&self.store().modules()?);
        configs::validate(&resolved, &resolver).map_err(CpError::Invalid)?;
        let next = self.next_version()?;
        let state = match end {
            End::Promote => RolloutState::Promoted,
            End::RollBack => RolloutState::RolledBack,
        };
        let mut changed = Vec::new();
        for mut other in all {
            if other.id == id {
                other.end(state, reason.to_owned(), next);
                changed.push(other);
            } else if other.state == RolloutState::Running && other.version == rollout.version {
                other.version = next;
                changed.push(other);
            }
        }
        let record = self.store().append_config(NewConfig {
            author: AUTHOR.to_owned(),
            message: format!("rollout {id}: {reason}"),
            document,
            resolved,
            selector: base.selector,
            rollouts: changed.clone(),
        })?;
        {
            let mut rollouts = self.rollouts.lock().expect("lock");
            for changed in changed {
                if let Some(slot) = rollouts.records.iter_mut().find(|r| r.id == changed.id) {
                    // Counts that arrived meanwhile stay.
                    let (stable, canary) = (slot.stable, slot.canary);
                    *slot = RolloutRecord {
                        stable,
                        canary,
                        ..changed
                    };
                }
            }
        }
        tracing::info!(
            rollout = id,
            version = record.version,
            reason,
            "rollout ended"
        );
        self.publish(&record);
        self.settle_rollouts()?;
        Ok(record)
    }

    /// Decides every running rollout at `now_ms`, ends those the decision
    /// ends, and stores the counts that changed.
    pub fn tick_rollouts(&self, now_ms: u64) -> Result<(), CpError> {
        let ending: Vec<RolloutRecord> = {
            let mut rollouts = self.rollouts.lock().expect("lock");
            let mut ending = Vec::new();
            for rollout in rollouts.records.iter_mut() {
                if rollout.state != RolloutState::Running {
                    continue;
                }
                match decide(rollout, now_ms) {
                    Decision::Wait(why) => rollout.reason = why,
                    _ => ending.push(rollout.clone()),
                }
            }
            ending
        };
        for rollout in ending {
            let (end, reason) = match decide(&rollout, now_ms) {
                Decision::Promote(reason) => (End::Promote, reason),
                Decision::RollBack(reason) => (End::RollBack, reason),
                Decision::Wait(_) => continue,
            };
            if let Err(err) = self.end_rollout(&rollout.id, end, &reason) {
                tracing::warn!(rollout = rollout.id, error = %err, "cannot end the rollout");
            }
        }
        let dirty: Vec<RolloutRecord> = {
            let mut rollouts = self.rollouts.lock().expect("lock");
            if !std::mem::take(&mut rollouts.dirty) {
                return Ok(());
            }
            rollouts
                .records
                .iter()
                .filter(|r| r.state == RolloutState::Running)
                .cloned()
                .collect()
        };
        self.store().put_rollouts(&dirty)?;
        Ok(())
    }
}

/// Ticks the registry's rollouts every `TICK` (250 ms) until the process ends.
pub async fn run(registry: Arc<Registry>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let registry = Arc::clone(&registry);
        let ticked = tokio::task::spawn_blocking(move || registry.tick_rollouts(time::now_ms()))
            .await
            .unwrap_or_else(|err| Err(CpError::BadRequest(err.to_string())));
        if let Err(err) = ticked {
            tracing::warn!(error = %err, "rollout tick failed");
        }
    }
}
