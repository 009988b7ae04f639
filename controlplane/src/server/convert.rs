//! Records as protobuf messages.

use wasp_config::FieldError;
use wasp_controlplane_api as api;

use crate::proxies::ProxyStatus;
use crate::rollout::{Counts, RolloutRecord};
use crate::store::{ConfigRecord, ModuleRecord};

/// A registry entry as a message.
pub fn module(record: ModuleRecord) -> api::ModuleInfo {
    api::ModuleInfo {
        name: record.name,
        tag: record.tag,
        sha256: record.sha256,
        size: record.size,
        uploaded_at: record.uploaded_at,
        signatures: record.signatures,
    }
}

/// A configuration version as a message; without its documents unless `full`.
pub fn config(record: ConfigRecord, full: bool) -> api::ConfigVersion {
    let (document, resolved) = if full {
        (record.document, record.resolved)
    } else {
        Default::default()
    };
    api::ConfigVersion {
        version: record.version,
        author: record.author,
        created_at: record.created_at,
        message: record.message,
        document,
        resolved,
        selector: record.selector.into_iter().collect(),
    }
}

/// A configuration error as a message.
pub fn field_error(error: FieldError) -> api::FieldError {
    api::FieldError {
        path: error.path,
        message: error.message,
    }
}

/// A proxy's status as a message.
pub fn proxy(status: ProxyStatus) -> api::ProxyStatus {
    api::ProxyStatus {
        node_id: status.node_id,
        labels: status.labels.into_iter().collect(),
        connected: status.connected,
        connected_since: status.connected_since,
        running_version: status.running_version,
        last_version: status.last_version,
        last_result: status.last_result,
        last_error: status.last_error,
        last_report_at: status.last_report_at,
        transport: status.transport,
        peer_identity: status.peer_identity,
        address: status.address,
        rollouts: status
            .rollouts
            .into_iter()
            .map(|r| api::ProxyRollout {
                id: r.id,
                state: r.state,
                stable: Some(counts(r.stable, "")),
                canary: Some(counts(r.canary, "")),
            })
            .collect(),
    }
}

/// A version's counts as a message.
fn counts(counts: Counts, sha256: &str) -> api::VersionCounts {
    api::VersionCounts {
        sha256: sha256.to_owned(),
        requests: counts.requests,
        errors: counts.errors,
        traps: counts.traps,
    }
}

/// A rollout as a message.
pub fn rollout(r: RolloutRecord) -> api::Rollout {
    api::Rollout {
        stable: Some(counts(r.stable, &r.stable_sha256)),
        canary: Some(counts(r.canary, &r.canary_sha256)),
        id: r.id,
        version: r.version,
        chain: r.chain,
        plugin: r.plugin,
        selector: r.selector.into_iter().collect(),
        stable_module: r.stable_module,
        stable_sha256: r.stable_sha256,
        canary_module: r.canary_module,
        canary_sha256: r.canary_sha256,
        percent: r.percent,
        healthy_period_ms: r.healthy_period_ms,
        max_error_percent: r.max_error_percent,
        min_requests: r.min_requests,
        state: r.state.as_str().to_owned(),
        started_at: r.started_at,
        ended_at: r.ended_at,
        reason: r.reason,
        result_version: r.result_version,
    }
}
