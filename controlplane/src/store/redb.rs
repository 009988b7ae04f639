//! [`RedbStore`]: the embedded store, one redb database file in the data
//! directory. redb transactions are atomic and durable (committed with
//! fsync), so a crash or restart loses nothing that was acknowledged.

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ConfigRecord, ModuleRecord, NewConfig, RolloutRecord, Store, StoreError};
use crate::time;

/// sha256 hex → module bytes.
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("module_blobs");
/// `name@tag` → [`ModuleRecord`] (JSON).
const TAGS: TableDefinition<&str, &str> = TableDefinition::new("module_tags");
/// sha256 hex → the module's signatures (JSON list of hex).
const SIGNATURES: TableDefinition<&str, &str> = TableDefinition::new("module_signatures");
/// version → [`ConfigRecord`] (JSON).
const CONFIGS: TableDefinition<u64, &str> = TableDefinition::new("configs");
/// rollout id → [`RolloutRecord`] (JSON).
const ROLLOUTS: TableDefinition<&str, &str> = TableDefinition::new("rollouts");

/// Small named values (the CA root and key).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The database file's name in the data directory.
pub const DB_FILE: &str = "wasp-cp.redb";

/// The embedded store.
pub struct RedbStore {
    db: Database,
}

fn db_err(err: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(err.into().to_string())
}

fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialize")
}

fn decode<T: DeserializeOwned>(key: impl ToString, json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|err| StoreError::Corrupt {
        key: key.to_string(),
        reason: err.to_string(),
    })
}

fn tag_key(name: &str, tag: &str) -> String {
    format!("{name}@{tag}")
}

impl RedbStore {
    /// Opens (creating when absent) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|err| StoreError::Db(format!("{}: {err}", data_dir.display())))?;
        let path = data_dir.join(DB_FILE);
        let db = Database::create(&path)
            .map_err(|err| StoreError::Db(format!("{}: {err}", path.display())))?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(BLOBS).map_err(db_err)?;
        txn.open_table(TAGS).map_err(db_err)?;
        txn.open_table(CONFIGS).map_err(db_err)?;
        txn.open_table(SIGNATURES).map_err(db_err)?;
        txn.open_table(META).map_err(db_err)?;
        txn.open_table(ROLLOUTS).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self { db })
    }
}

/// Drops the blob `sha256` and its signatures when no tag in `tags` names it.
fn collect_blob(
    tags: &redb::Table<&str, &str>,
    blobs: &mut redb::Table<&str, &[u8]>,
    signatures: &mut redb::Table<&str, &str>,
    sha256: &str,
) -> Result<(), StoreError> {
    for entry in tags.iter().map_err(db_err)? {
        let (key, value) = entry.map_err(db_err)?;
        let record: ModuleRecord = decode(key.value(), value.value())?;
        if record.sha256 == sha256 {
            return Ok(());
        }
    }
    blobs.remove(sha256).map_err(db_err)?;
    signatures.remove(sha256).map_err(db_err)?;
    Ok(())
}

/// The hex signatures stored for `sha256`.
fn read_signatures(
    table: &impl ReadableTable<&'static str, &'static str>,
    sha256: &str,
) -> Result<Vec<String>, StoreError> {
    match table.get(sha256).map_err(db_err)? {
        Some(value) => decode(format!("signatures {sha256}"), value.value()),
        None => Ok(Vec::new()),
    }
}

impl Store for RedbStore {
    fn put_module(
        &self,
        record: &ModuleRecord,
        bytes: &[u8],
        signatures: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut blobs = txn.open_table(BLOBS).map_err(db_err)?;
            let mut tags = txn.open_table(TAGS).map_err(db_err)?;
            let mut sigs = txn.open_table(SIGNATURES).map_err(db_err)?;
            if blobs.get(record.sha256.as_str()).map_err(db_err)?.is_none() {
                blobs
                    .insert(record.sha256.as_str(), bytes)
                    .map_err(db_err)?;
            }
            if !signatures.is_empty() {
                let mut stored = read_signatures(&sigs, &record.sha256)?;
                for signature in signatures.iter().map(hex::encode) {
                    if !stored.contains(&signature) {
                        stored.push(signature);
                    }
                }
                sigs.insert(record.sha256.as_str(), encode(&stored).as_str())
                    .map_err(db_err)?;
            }
            let key = tag_key(&record.name, &record.tag);
            let previous = tags
                .insert(key.as_str(), encode(record).as_str())
                .map_err(db_err)?
                .map(|old| decode::<ModuleRecord>(&key, old.value()))
                .transpose()?;
            if let Some(previous) = previous.filter(|p| p.sha256 != record.sha256) {
                collect_blob(&tags, &mut blobs, &mut sigs, &previous.sha256)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    fn remove_module(&self, name: &str, tag: &str) -> Result<Option<ModuleRecord>, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let removed = {
            let mut blobs = txn.open_table(BLOBS).map_err(db_err)?;
            let mut tags = txn.open_table(TAGS).map_err(db_err)?;
            let mut sigs = txn.open_table(SIGNATURES).map_err(db_err)?;
            let key = tag_key(name, tag);
            let removed = tags
                .remove(key.as_str())
                .map_err(db_err)?
                .map(|old| decode::<ModuleRecord>(&key, old.value()))
                .transpose()?;
            if let Some(removed) = &removed {
                collect_blob(&tags, &mut blobs, &mut sigs, &removed.sha256)?;
            }
            removed
        };
        txn.commit().map_err(db_err)?;
        Ok(removed)
    }

    fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let tags = txn.open_table(TAGS).map_err(db_err)?;
        let sigs = txn.open_table(SIGNATURES).map_err(db_err)?;
        let mut modules = Vec::new();
        for entry in tags.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            let mut record = decode::<ModuleRecord>(key.value(), value.value())?;
            record.signatures = read_signatures(&sigs, &record.sha256)?.len() as u32;
            modules.push(record);
        }
        modules.sort_by(|a, b| (&a.name, &a.tag).cmp(&(&b.name, &b.tag)));
        Ok(modules)
    }

    fn module_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let blobs = txn.open_table(BLOBS).map_err(db_err)?;
        let bytes = blobs.get(sha256).map_err(db_err)?;
        Ok(bytes.map(|b| b.value().to_vec()))
    }

    fn signatures(&self, sha256: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let sigs = txn.open_table(SIGNATURES).map_err(db_err)?;
        read_signatures(&sigs, sha256)?
            .into_iter()
            .map(|text| {
                hex::decode(&text).map_err(|err| StoreError::Corrupt {
                    key: format!("signatures {sha256}"),
                    reason: err.to_string(),
                })
            })
            .collect()
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(META).map_err(db_err)?;
        let value = table.get(key).map_err(db_err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(META).map_err(db_err)?;
            table.insert(key, value).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    fn blob_count(&self) -> Result<usize, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let blobs = txn.open_table(BLOBS).map_err(db_err)?;
        Ok(blobs.len().map_err(db_err)? as usize)
    }

    fn append_config(&self, config: NewConfig) -> Result<ConfigRecord, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let record = {
            let mut configs = txn.open_table(CONFIGS).map_err(db_err)?;
            let last = configs.last().map_err(db_err)?.map(|(k, _)| k.value());
            let record = ConfigRecord {
                version: last.unwrap_or(0) + 1,
                author: config.author,
                created_at: time::now(),
                message: config.message,
                document: config.document,
                resolved: config.resolved,
                selector: config.selector,
            };
            configs
                .insert(record.version, encode(&record).as_str())
                .map_err(db_err)?;
            let mut rollouts = txn.open_table(ROLLOUTS).map_err(db_err)?;
            for rollout in &config.rollouts {
                rollouts
                    .insert(rollout.id.as_str(), encode(rollout).as_str())
                    .map_err(db_err)?;
            }
            record
        };
        txn.commit().map_err(db_err)?;
        Ok(record)
    }

    fn put_rollouts(&self, rollouts: &[RolloutRecord]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(ROLLOUTS).map_err(db_err)?;
            for rollout in rollouts {
                table
                    .insert(rollout.id.as_str(), encode(rollout).as_str())
                    .map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    fn rollouts(&self) -> Result<Vec<RolloutRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(ROLLOUTS).map_err(db_err)?;
        let mut all = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            all.push(decode(key.value(), value.value())?);
        }
        Ok(all)
    }

    fn config(&self, version: u64) -> Result<Option<ConfigRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let configs = txn.open_table(CONFIGS).map_err(db_err)?;
        let value = configs.get(version).map_err(db_err)?;
        value.map(|v| decode(version, v.value())).transpose()
    }

    fn latest_config(&self) -> Result<Option<ConfigRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let configs = txn.open_table(CONFIGS).map_err(db_err)?;
        let last = configs.last().map_err(db_err)?;
        last.map(|(k, v)| decode(k.value(), v.value())).transpose()
    }

    fn configs(&self) -> Result<Vec<ConfigRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let configs = txn.open_table(CONFIGS).map_err(db_err)?;
        let mut all = Vec::new();
        for entry in configs.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            all.push(decode(key.value(), value.value())?);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, tag: &str, bytes: &[u8]) -> ModuleRecord {
        ModuleRecord {
            name: name.into(),
            tag: tag.into(),
            sha256: crate::reference::sha256_hex(bytes),
            size: bytes.len() as u64,
            uploaded_at: time::now(),
            signatures: 0,
        }
    }

    #[test]
    fn the_same_bytes_under_two_tags_are_stored_once_and_dropped_with_the_last_tag() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store
            .put_module(&record("a", "v1", b"one"), b"one", &[])
            .unwrap();
        store
            .put_module(&record("b", "latest", b"one"), b"one", &[])
            .unwrap();
        assert_eq!(store.blob_count().unwrap(), 1);
        assert_eq!(store.modules().unwrap().len(), 2);
        store.remove_module("a", "v1").unwrap().unwrap();
        assert_eq!(store.blob_count().unwrap(), 1);
        store.remove_module("b", "latest").unwrap().unwrap();
        assert_eq!(store.blob_count().unwrap(), 0);
        assert_eq!(store.remove_module("b", "latest").unwrap(), None);
    }

    #[test]
    fn moving_a_tag_drops_bytes_nothing_else_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store
            .put_module(&record("a", "latest", b"one"), b"one", &[])
            .unwrap();
        store
            .put_module(&record("a", "latest", b"two"), b"two", &[])
            .unwrap();
        assert_eq!(store.blob_count().unwrap(), 1);
        let sha = crate::reference::sha256_hex(b"two");
        assert_eq!(store.module_bytes(&sha).unwrap().unwrap(), b"two");
    }

    #[test]
    fn everything_survives_reopening_and_versions_keep_counting() {
        let dir = tempfile::tempdir().unwrap();
        let new = |message: &str| NewConfig {
            author: "ops".into(),
            message: message.into(),
            document: "doc".into(),
            resolved: "resolved".into(),
            selector: Default::default(),
            rollouts: Vec::new(),
        };
        {
            let store = RedbStore::open(dir.path()).unwrap();
            store
                .put_module(&record("a", "v1", b"one"), b"one", &[])
                .unwrap();
            assert_eq!(store.append_config(new("first")).unwrap().version, 1);
            assert_eq!(store.append_config(new("second")).unwrap().version, 2);
        }
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.modules().unwrap()[0].name, "a");
        assert_eq!(store.latest_config().unwrap().unwrap().message, "second");
        assert_eq!(store.config(1).unwrap().unwrap().author, "ops");
        assert_eq!(store.append_config(new("third")).unwrap().version, 3);
        assert_eq!(store.configs().unwrap().len(), 3);
    }

    #[test]
    fn signatures_are_kept_beside_the_bytes_and_dropped_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let sha = crate::reference::sha256_hex(b"one");
        store
            .put_module(&record("a", "v1", b"one"), b"one", &[vec![1; 64]])
            .unwrap();
        store
            .put_module(
                &record("a", "v2", b"one"),
                b"one",
                &[vec![1; 64], vec![2; 64]],
            )
            .unwrap();
        assert_eq!(
            store.signatures(&sha).unwrap(),
            vec![vec![1; 64], vec![2; 64]]
        );
        assert_eq!(store.modules().unwrap()[0].signatures, 2);
        store.remove_module("a", "v1").unwrap();
        store.remove_module("a", "v2").unwrap();
        assert!(store.signatures(&sha).unwrap().is_empty());
    }

    #[test]
    fn a_second_process_cannot_open_the_same_store() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RedbStore::open(dir.path()).unwrap();
        let err = RedbStore::open(dir.path())
            .err()
            .expect("second open fails");
        assert!(err.to_string().contains(DB_FILE), "{err}");
    }
}
