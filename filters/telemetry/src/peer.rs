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
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;
use std::rc::Rc;

/// The header with the peer's metadata (base64 protobuf `Struct`).
pub const METADATA_HEADER: &str = "x-envoy-peer-metadata";
/// The header with the peer's node id.
pub const METADATA_ID_HEADER: &str = "x-envoy-peer-metadata-id";

/// What labels use when a fact is not known, as Istio does.
pub const UNKNOWN: &str = "unknown";

/// Istio's label with a workload's canonical service.
pub const CANONICAL_NAME: &str = "service.istio.io/canonical-name";
/// Istio's label with a workload's canonical revision.
pub const CANONICAL_REVISION: &str = "service.istio.io/canonical-revision";
/// What `*_canonical_revision` says when no label names one, as in Istio.
pub const LATEST: &str = "latest";

/// A workload's labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Workload {
    /// `*_workload`.
    pub name: String,
    /// `*_workload_namespace`.
    pub namespace: String,
    /// `*_app`.
    pub app: String,
    /// `*_version`.
    pub version: String,
    /// `*_canonical_service`.
    pub canonical_service: String,
    /// `*_canonical_revision`.
    pub canonical_revision: String,
    /// `*_cluster`: the cluster id the workload runs in (`CLUSTER_ID`).
    pub cluster: String,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            name: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
            app: UNKNOWN.into(),
            version: UNKNOWN.into(),
            canonical_service: UNKNOWN.into(),
            canonical_revision: LATEST.into(),
            cluster: UNKNOWN.into(),
        }
    }
}

fn or_unknown(value: Option<String>) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| UNKNOWN.into())
}

/// Istio's canonical service: the canonical-name label, else
/// `app.kubernetes.io/name`, else `app`, else the workload's name.
fn canonical_service(label: impl Fn(&str) -> Option<String>, name: &str) -> String {
    [CANONICAL_NAME, "app.kubernetes.io/name", "app"]
        .iter()
        .find_map(|k| label(k).filter(|v| !v.is_empty()))
        .unwrap_or_else(|| name.to_owned())
}

/// Istio's canonical revision: the canonical-revision label, else
/// `app.kubernetes.io/version`, else `version`, else `latest`.
fn canonical_revision(label: impl Fn(&str) -> Option<String>) -> String {
    [CANONICAL_REVISION, "app.kubernetes.io/version", "version"]
        .iter()
        .find_map(|k| label(k).filter(|v| !v.is_empty()))
        .unwrap_or_else(|| LATEST.to_owned())
}

impl Workload {
    /// A workload from its name, namespace, `app` and `version` labels, in
    /// a cluster nobody named: its canonical service and revision are
    /// derived as Istio derives them.
    pub fn named(name: &str, namespace: &str, app: &str, version: &str) -> Self {
        let known = |v: &str| (v != UNKNOWN).then(|| v.to_owned());
        let label = |key: &str| match key {
            "app" => known(app),
            "version" => known(version),
            _ => None,
        };
        Workload {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            app: app.to_owned(),
            version: version.to_owned(),
            canonical_service: canonical_service(label, name),
            canonical_revision: canonical_revision(label),
            cluster: UNKNOWN.into(),
        }
    }

    /// This proxy's workload from its node: `node.metadata.WORKLOAD_NAME`
    /// (else `node.cluster`), `NAMESPACE`, `APP` (or `app`), `VERSION` (or
    /// `version`), `CLUSTER_ID`, and the canonical service and revision
    /// from the Istio labels, read as metadata keys or in a `LABELS`
    /// struct. `metadata` answers `node.metadata.<path>`.
    pub fn from_node(
        metadata: impl Fn(&[&str]) -> Option<String>,
        cluster: Option<String>,
    ) -> Self {
        let first = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| metadata(&[k]).filter(|v| !v.is_empty()))
        };
        let label = |key: &str| {
            metadata(&["LABELS", key])
                .filter(|v| !v.is_empty())
                .or_else(|| metadata(&[key]))
        };
        let name = or_unknown(first(&["WORKLOAD_NAME"]).or(cluster));
        let app = or_unknown(first(&["APP", "app"]).or_else(|| label("app")));
        let version = or_unknown(first(&["VERSION", "version"]).or_else(|| label("version")));
        let known = |v: &String| (v != UNKNOWN).then(|| v.clone());
        let label_or_app = |key: &str| match key {
            "app" => known(&app),
            "version" => known(&version),
            _ => label(key),
        };
        Workload {
            canonical_service: canonical_service(label_or_app, &name),
            canonical_revision: canonical_revision(label_or_app),
            cluster: or_unknown(first(&["CLUSTER_ID"])),
            namespace: or_unknown(first(&["NAMESPACE"])),
            name,
            app,
            version,
        }
    }

    /// The `x-envoy-peer-metadata` value describing this workload.
    pub fn encode(&self) -> String {
        let string = |s: &str| Value {
            kind: Some(Kind::StringValue(s.to_owned())),
        };
        let mut labels = BTreeMap::new();
        for (key, value) in [
            ("app", &self.app),
            ("version", &self.version),
            (CANONICAL_NAME, &self.canonical_service),
            (CANONICAL_REVISION, &self.canonical_revision),
        ] {
            if value != UNKNOWN {
                labels.insert(key.to_owned(), string(value));
            }
        }
        let mut fields = BTreeMap::new();
        for (key, value) in [
            ("WORKLOAD_NAME", &self.name),
            ("NAMESPACE", &self.namespace),
            ("CLUSTER_ID", &self.cluster),
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
        let label = |key: &str| text(&labels, key).filter(|v| !v.is_empty());
        let name = or_unknown(text(&metadata, "WORKLOAD_NAME"));
        Some(Workload {
            namespace: or_unknown(text(&metadata, "NAMESPACE")),
            app: or_unknown(label("app")),
            version: or_unknown(label("version")),
            canonical_service: canonical_service(label, &name),
            canonical_revision: canonical_revision(label),
            cluster: or_unknown(text(&metadata, "CLUSTER_ID")),
            name,
        })
    }
}

/// Most exchange headers [`PeerCache`] remembers; past it, it starts afresh.
pub const MAX_CACHED_PEERS: usize = 64;

/// Decoded exchange headers: a sidecar hears from few peers, each always
/// with the same header, so each header is decoded once.
#[derive(Debug, Default)]
pub struct PeerCache {
    decoded: HashMap<String, Option<Rc<Workload>>, BuildHasherDefault<rustc_hash::FxHasher>>,
}

impl PeerCache {
    /// The workload an `x-envoy-peer-metadata` value describes (see
    /// [`Workload::decode`]).
    pub fn decode(&mut self, header: &str) -> Option<Rc<Workload>> {
        if let Some(peer) = self.decoded.get(header) {
            return peer.clone();
        }
        let peer = Workload::decode(header).map(Rc::new);
        if self.decoded.len() >= MAX_CACHED_PEERS {
            self.decoded.clear();
        }
        self.decoded.insert(header.to_owned(), peer.clone());
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_round_trips_through_the_exchange_header() {
        let mut workload = Workload::named("reviews-v2", "bookinfo", "reviews", "v2");
        workload.cluster = "east".into();
        assert_eq!(Workload::decode(&workload.encode()), Some(workload));
    }

    #[test]
    fn canonical_labels_follow_istios_fallbacks() {
        let workload = Workload::named("ratings-v1", "bookinfo", "ratings", "v1");
        assert_eq!(
            (
                workload.canonical_service.as_str(),
                workload.canonical_revision.as_str()
            ),
            ("ratings", "v1")
        );
        let bare = Workload::named("ratings-v1", "bookinfo", UNKNOWN, UNKNOWN);
        assert_eq!(bare.canonical_service, "ratings-v1");
        assert_eq!(bare.canonical_revision, LATEST);
        let node = |path: &[&str]| match path {
            ["WORKLOAD_NAME"] => Some("reviews-v2".to_owned()),
            ["LABELS", "service.istio.io/canonical-name"] => Some("reviews-svc".to_owned()),
            ["app.kubernetes.io/version"] => Some("2.1".to_owned()),
            ["CLUSTER_ID"] => Some("east".to_owned()),
            _ => None,
        };
        let local = Workload::from_node(node, None);
        assert_eq!(
            (
                local.canonical_service.as_str(),
                local.canonical_revision.as_str(),
                local.cluster.as_str(),
                local.app.as_str()
            ),
            ("reviews-svc", "2.1", "east", UNKNOWN)
        );
    }

    #[test]
    fn the_peer_cache_decodes_each_header_once_and_stays_bounded() {
        let mut peers = PeerCache::default();
        let header = Workload::named("a", "ns", "app", "v1").encode();
        let first = peers.decode(&header).unwrap();
        assert!(Rc::ptr_eq(&first, &peers.decode(&header).unwrap()));
        assert_eq!(peers.decode("not base64!"), None);
        for i in 0..MAX_CACHED_PEERS + 1 {
            peers.decode(&Workload::named(&format!("w{i}"), "ns", "a", "v").encode());
        }
        assert!(peers.decoded.len() <= MAX_CACHED_PEERS);
        assert_eq!(peers.decode(&header).as_deref(), Some(&*first));
    }

    #[test]
    fn unknown_facts_are_left_out_and_read_back_as_unknown() {
        let workload = Workload {
            name: "ratings".into(),
            canonical_service: "ratings".into(),
            ..Workload::default()
        };
        assert_eq!(Workload::decode(&workload.encode()), Some(workload));
        assert_eq!(Workload::decode("not base64!"), None);
    }
}
