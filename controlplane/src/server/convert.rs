//! Records as protobuf messages.

use wasp_config::FieldError;
use wasp_controlplane_api as api;

use crate::proxies::ProxyStatus;
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
    }
}
