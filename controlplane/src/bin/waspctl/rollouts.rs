//! `waspctl get rollout [ID]`: where each canary rollout stands, and the
//! per-proxy rollout column of `waspctl proxies`.

use serde_json::json;
use wasp_controlplane::targeting;
use wasp_controlplane_api as api;

use crate::Output;
use crate::connect::{Client, status};
use crate::output;

type Result<T> = std::result::Result<T, String>;

/// A version's counts as JSON.
pub fn counts_json(c: Option<&api::VersionCounts>) -> serde_json::Value {
    let c = c.cloned().unwrap_or_default();
    json!({"sha256": c.sha256, "requests": c.requests, "errors": c.errors, "traps": c.traps})
}

/// `requests/errors/traps`, e.g. `120/3/3`.
fn counts_cell(c: Option<&api::VersionCounts>) -> String {
    let c = c.cloned().unwrap_or_default();
    format!("{}/{}/{}", c.requests, c.errors, c.traps)
}

/// A proxy's rollouts in one cell: `ID STATE canary R/E/T stable R/E/T; …`.
pub fn proxy_cell(p: &api::ProxyStatus) -> String {
    if p.rollouts.is_empty() {
        return "-".into();
    }
    p.rollouts
        .iter()
        .map(|r| {
            format!(
                "{} {} canary {} stable {}",
                r.id,
                r.state,
                counts_cell(r.canary.as_ref()),
                counts_cell(r.stable.as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A proxy's rollouts as JSON.
pub fn proxy_json(p: &api::ProxyStatus) -> serde_json::Value {
    p.rollouts
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "state": r.state,
                "stable": counts_json(r.stable.as_ref()),
                "canary": counts_json(r.canary.as_ref()),
            })
        })
        .collect()
}

fn rollout_json(r: &api::Rollout) -> serde_json::Value {
    json!({
        "id": r.id,
        "version": r.version,
        "chain": r.chain,
        "plugin": r.plugin,
        "selector": r.selector,
        "stable_module": r.stable_module,
        "canary_module": r.canary_module,
        "percent": r.percent,
        "healthy_period_ms": r.healthy_period_ms,
        "max_error_percent": r.max_error_percent,
        "min_requests": r.min_requests,
        "state": r.state,
        "started_at": r.started_at,
        "ended_at": r.ended_at,
        "reason": r.reason,
        "result_version": r.result_version,
        "stable": counts_json(r.stable.as_ref()),
        "canary": counts_json(r.canary.as_ref()),
    })
}

/// `get rollout [ID]`.
pub async fn show(client: &mut Client, out: Output, id: Option<&str>) -> Result<()> {
    let mut rollouts = client
        .list_rollouts(api::ListRolloutsRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .rollouts;
    if let Some(id) = id {
        rollouts.retain(|r| r.id == id);
        if rollouts.is_empty() {
            return Err(format!("no rollout {id}"));
        }
    }
    match out {
        Output::Json => output::json(&rollouts.iter().map(rollout_json).collect()),
        Output::Table => output::table(
            &[
                "ID",
                "SELECTOR",
                "STABLE",
                "CANARY",
                "PERCENT",
                "STATE",
                "CANARY R/E/T",
                "STABLE R/E/T",
                "RESULT",
                "REASON",
            ],
            &rollouts
                .iter()
                .map(|r| {
                    vec![
                        r.id.clone(),
                        targeting::display(&r.selector.clone().into_iter().collect()),
                        r.stable_module.clone(),
                        r.canary_module.clone(),
                        format!("{}%", r.percent),
                        r.state.clone(),
                        counts_cell(r.canary.as_ref()),
                        counts_cell(r.stable.as_ref()),
                        match r.result_version {
                            0 => "-".to_owned(),
                            v => format!("v{v}"),
                        },
                        r.reason.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
    Ok(())
}
