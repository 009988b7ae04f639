//! Workload identity: this proxy's (from the node metadata) and the peer's
//! (from Istio's metadata exchange headers).
//!
//! Istio's sidecars exchange their node metadata in HTTP headers:
//! `x-envoy-peer-metadata-id` carries the node id and
//! `x-envoy-peer-metadata` a base64 `google.protobuf.Struct` of the
//! metadata: `WORKLOAD_NAME`, `NAMESPACE`, `NAME` (the pod) and `LABELS` (a
//! nested struct with `app` and `version`). This filter writes and reads
//! that form, so it interoperates with Istio's sidecars.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost::Message as _;
use prost_types::value::Kind;
use prost_types::{Struct, Value};
use std::collections::BTreeMap;

/// The header with the peer's metadata (base64 protobuf `Struct`).
pub const METADATA_HEADER: &str = "x-envoy-peer-metadata";
/// The header with the peer's node id.
pub const METADATA_ID_HEADER: &str = "x-envoy-peer-metadata-id";

/// What labels use when a fact is not known, as Istio does.
pub const UNKNOWN: &str = "unknown";

/// A workload's labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// `*_workload`.
    pub name: String,
    /// `*_workload_namespace`.
    pub namespace: String,
    /// `*_app`.
    pub app: String,
    /// `*_version`.
    pub version: String,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            name: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
            app: UNKNOWN.into(),
            version: UNKNOWN.into(),
        }
    }
}

fn or_unknown(value: Option<String>) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| UNKNOWN.into())
}

impl Workload {
    /// This proxy's workload from its node: `node.metadata.WORKLOAD_NAME`
    /// (else `node.cluster`), `NAMESPACE`, `APP` (or `app`), `VERSION` (or
    /// `version`). `metadata` answers `node.metadata.<key>`.
    pub fn from_node(metadata: impl Fn(&str) -> Option<String>, cluster: Option<String>) -> Self {
        let first = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| metadata(k).filter(|v| !v.is_empty()))
        };
        Workload {
            name: or_unknown(first(&["WORKLOAD_NAME"]).or(cluster)),
            namespace: or_unknown(first(&["NAMESPACE"])),
            app: or_unknown(first(&["APP", "app"])),
            version: or_unknown(first(&["VERSION", "version"])),
        }
    }

    /// The `x-envoy-peer-metadata` value describing this workload.
    pub fn encode(&self) -> String {
        let string = |s: &str| Value {
            kind: Some(Kind::StringValue(s.to_owned())),
        };
        let mut labels = BTreeMap::new();
        for (key, value) in [("app", &self.app), ("version", &self.version)] {
            if value != UNKNOWN {
                labels.insert(key.to_owned(), string(value));
            }
        }
        let mut fields = BTreeMap::new();
        for (key, value) in [
            ("WORKLOAD_NAME", &self.name),
            ("NAMESPACE", &self.namespace),
        ] {
            if value != UNKNOWN {
                fields.insert(key.to_owned(), string(value));
            }
        }
        if !labels.is_empty() {
            fields.insert(
                "LABELS".to_owned(),
                Value {
                    kind: Some(Kind::StructValue(Struct { fields: labels })),
                },
            );
        }
        STANDARD.encode(Struct { fields }.encode_to_vec())
    }

    /// The peer's workload from an `x-envoy-peer-metadata` value; `None`
    /// when it is not base64 of a protobuf `Struct`.
    pub fn decode(header: &str) -> Option<Workload> {
        let bytes = STANDARD.decode(header.trim()).ok()?;
        let metadata = Struct::decode(bytes.as_slice()).ok()?;
        let text = |s: &Struct, key: &str| match s.fields.get(key)?.kind.as_ref()? {
            Kind::StringValue(v) => Some(v.clone()),
            _ => None,
        };
        let labels = match metadata.fields.get("LABELS").and_then(|v| v.kind.as_ref()) {
            Some(Kind::StructValue(labels)) => labels.clone(),
            _ => Struct::default(),
        };
        Some(Workload {
            name: or_unknown(text(&metadata, "WORKLOAD_NAME")),
            namespace: or_unknown(text(&metadata, "NAMESPACE")),
            app: or_unknown(
                text(&labels, "app").or_else(|| text(&labels, "service.istio.io/canonical-name")),
            ),
            version: or_unknown(
                text(&labels, "version")
                    .or_else(|| text(&labels, "service.istio.io/canonical-revision")),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_round_trips_through_the_exchange_header() {
        let workload = Workload {
            name: "reviews-v2".into(),
            namespace: "bookinfo".into(),
            app: "reviews".into(),
            version: "v2".into(),
        };
        assert_eq!(Workload::decode(&workload.encode()), Some(workload));
    }

    #[test]
    fn unknown_facts_are_left_out_and_read_back_as_unknown() {
        let workload = Workload {
            name: "ratings".into(),
            ..Workload::default()
        };
        assert_eq!(Workload::decode(&workload.encode()), Some(workload));
        assert_eq!(Workload::decode("not base64!"), None);
    }
}
