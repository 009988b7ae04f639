//! Where the control plane's data lives: module bytes by sha256, the
//! `name@tag` entries pointing at them, the bytes' signatures, and
//! configuration versions. The
//! [`Store`] trait is the seam for other back-ends (etcd for a replicated
//! control plane); [`RedbStore`] is the embedded default.

mod redb;

pub use self::redb::RedbStore;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::rollout::RolloutRecord;

/// One `name@tag` of the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    /// Module name.
    pub name: String,
    /// Tag (`latest` by default).
    pub tag: String,
    /// Lowercase hex sha256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// When these bytes were pushed under this name and tag (RFC 3339).
    pub uploaded_at: String,
    /// How many signatures are stored beside the bytes (filled in when
    /// read; not part of the stored record).
    #[serde(default, skip_deserializing)]
    pub signatures: u32,
}

/// One stored configuration version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// Monotonic, from 1.
    pub version: u64,
    /// Who applied it.
    pub author: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// Why.
    pub message: String,
    /// The document as applied.
    pub document: String,
    /// The document sent to proxies, every module pinned to `sha256:<hex>`.
    pub resolved: String,
    /// The proxies it is for: those whose labels include all of these
    /// (empty: every proxy).
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
}

/// A configuration version about to be stored (the store numbers it).
#[derive(Clone, Debug)]
pub struct NewConfig {
    /// Who applies it.
    pub author: String,
    /// Why.
    pub message: String,
    /// The document as applied.
    pub document: String,
    /// The document sent to proxies.
    pub resolved: String,
    /// The proxies it is for (empty: all).
    pub selector: BTreeMap<String, String>,
    /// Rollouts stored in the same transaction (those the version starts,
    /// ends or carries on).
    pub rollouts: Vec<RolloutRecord>,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (I/O, corruption, already open elsewhere).
    #[error("store: {0}")]
    Db(String),
    /// A stored record could not be decoded.
    #[error("store: corrupt record {key}: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Durable storage of modules and configurations. Every method is one
/// atomic transaction: a crash leaves either all of it or none.
pub trait Store: Send + Sync + 'static {
    /// Stores `bytes` (once per sha256) with `signatures` added to those
    /// already beside them, and points `record.name@record.tag` at them,
    /// replacing what the tag named before (whose bytes and signatures are
    /// dropped when nothing else names them).
    fn put_module(
        &self,
        record: &ModuleRecord,
        bytes: &[u8],
        signatures: &[Vec<u8>],
    ) -> Result<(), StoreError>;

    /// Removes `name@tag` (and its bytes when nothing else names them);
    /// returns what was removed.
    fn remove_module(&self, name: &str, tag: &str) -> Result<Option<ModuleRecord>, StoreError>;

    /// Every `name@tag`, sorted by name then tag.
    fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError>;

    /// The bytes of the module with this sha256.
    fn module_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The signatures stored beside the module with this sha256.
    fn signatures(&self, sha256: &str) -> Result<Vec<Vec<u8>>, StoreError>;

    /// How many distinct module contents are stored.
    fn blob_count(&self) -> Result<usize, StoreError>;

    /// Stores `config` as the next version, with its rollouts, and returns it.
    fn append_config(&self, config: NewConfig) -> Result<ConfigRecord, StoreError>;

    /// Stores (replaces) these rollouts.
    fn put_rollouts(&self, rollouts: &[RolloutRecord]) -> Result<(), StoreError>;

    /// Every rollout, by id.
    fn rollouts(&self) -> Result<Vec<RolloutRecord>, StoreError>;

    /// Version `version`.
    fn config(&self, version: u64) -> Result<Option<ConfigRecord>, StoreError>;

    /// The newest version (the current configuration).
    fn latest_config(&self) -> Result<Option<ConfigRecord>, StoreError>;

    /// Every version, oldest first.
    fn configs(&self) -> Result<Vec<ConfigRecord>, StoreError>;

    /// A small value kept under `key` (e.g. the CA root), if any.
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores `value` under `key` atomically, replacing any previous one.
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
}
