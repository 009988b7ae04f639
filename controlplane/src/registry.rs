//! [`Registry`]: the control plane's operations on modules and
//! configuration versions, over a [`Store`]. It validates every
//! configuration before storing it, refuses to remove modules the current
//! configuration needs, and publishes the newest version per label
//! selector ([`Heads`]) to subscribers.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use wasp_config::FieldError;

use crate::configs::{self, Resolver};
use crate::error::CpError;
use crate::reference::{self, DEFAULT_TAG, ModuleRef};
use crate::rollout::{self, RolloutRecord};
use crate::store::{ConfigRecord, ModuleRecord, NewConfig, Store};
use crate::targeting::{self, Heads, Selector};
use crate::time;

/// An Ed25519 signature's length in bytes.
const SIGNATURE_LEN: usize = 64;

/// Modules and configurations, with the current configuration published.
pub struct Registry {
    store: Arc<dyn Store>,
    /// Serializes writes: validation and storing happen as one step.
    write: Mutex<()>,
    heads: watch::Sender<Arc<Heads>>,
    /// Every rollout, with counts newer than the store's.
    pub(crate) rollouts: Mutex<Rollouts>,
}

/// The rollouts in memory.
#[derive(Debug, Default)]
pub(crate) struct Rollouts {
    /// Every rollout.
    pub records: Vec<RolloutRecord>,
    /// Whether counts changed since they were last stored.
    pub dirty: bool,
}

/// What an apply did.
#[derive(Debug)]
pub enum Applied {
    /// The document is valid; nothing was stored (dry run).
    Valid,
    /// Stored and published as this version.
    Stored(ConfigRecord),
}

fn tag_or_default(tag: &str) -> &str {
    if tag.is_empty() { DEFAULT_TAG } else { tag }
}

impl Registry {
    /// A registry over `store`, publishing its newest configurations.
    pub fn new(store: Arc<dyn Store>) -> Result<Self, CpError> {
        let heads = Heads::from_configs(store.configs()?);
        let records = store.rollouts()?;
        let registry = Self {
            store,
            write: Mutex::new(()),
            heads: watch::Sender::new(Arc::new(heads)),
            rollouts: Mutex::new(Rollouts {
                records,
                dirty: false,
            }),
        };
        registry.settle_rollouts()?;
        Ok(registry)
    }

    /// The store.
    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The newest configuration per selector.
    pub(crate) fn heads(&self) -> Arc<Heads> {
        Arc::clone(&self.heads.borrow())
    }

    /// Serializes writes.
    pub(crate) fn write_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write.lock().expect("lock")
    }

    /// The version the next stored configuration gets (writes are
    /// serialized, so it is known before storing).
    pub(crate) fn next_version(&self) -> Result<u64, CpError> {
        Ok(self.store.latest_config()?.map_or(1, |c| c.version + 1))
    }

    /// Stores a version with the rollouts it starts (its plugins' canaries)
    /// and publishes it. Call with the write lock held.
    fn store_version(&self, mut new: NewConfig) -> Result<ConfigRecord, CpError> {
        let next = self.next_version()?;
        let parse = |doc: &str| {
            wasp_config::parse(doc).map_err(|e| CpError::Invalid(e.field_errors().to_vec()))
        };
        let started = rollout::started_by(
            next,
            &new.selector,
            &parse(&new.document)?,
            &parse(&new.resolved)?,
        );
        new.rollouts.extend(started.iter().cloned());
        let record = self.store.append_config(new)?;
        self.rollouts.lock().expect("lock").records.extend(started);
        self.publish(&record);
        self.settle_rollouts()?;
        Ok(record)
    }

    /// The newest configuration per selector now and whenever it changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Heads>> {
        self.heads.subscribe()
    }

    pub(crate) fn publish(&self, record: &ConfigRecord) {
        self.heads
            .send_modify(|heads| *heads = Arc::new(heads.with(Arc::new(record.clone()))));
    }

    /// Stores `bytes` as `name@tag` (`latest` when `tag` is empty), with
    /// `signatures` kept beside them.
    pub fn push_module(
        &self,
        name: &str,
        tag: &str,
        bytes: &[u8],
        signatures: &[Vec<u8>],
    ) -> Result<ModuleRecord, CpError> {
        let tag = tag_or_default(tag);
        reference::check_name("module name", name).map_err(CpError::BadRequest)?;
        reference::check_name("tag", tag).map_err(CpError::BadRequest)?;
        if bytes.is_empty() {
            return Err(CpError::BadRequest(format!("module {name}@{tag} is empty")));
        }
        if let Some(bad) = signatures.iter().find(|s| s.len() != SIGNATURE_LEN) {
            return Err(CpError::BadRequest(format!(
                "module {name}@{tag}: a signature is {} bytes, an Ed25519 signature is {SIGNATURE_LEN}",
                bad.len()
            )));
        }
        let mut record = ModuleRecord {
            name: name.to_owned(),
            tag: tag.to_owned(),
            sha256: reference::sha256_hex(bytes),
            size: bytes.len() as u64,
            uploaded_at: time::now(),
            signatures: 0,
        };
        let _write = self.write.lock().expect("lock");
        self.store.put_module(&record, bytes, signatures)?;
        record.signatures = self.store.signatures(&record.sha256)?.len() as u32;
        tracing::info!(module = %format!("{name}@{tag}"), sha256 = record.sha256, size = record.size, signatures = record.signatures, "module pushed");
        Ok(record)
    }

    /// The signatures stored beside the module with this sha256.
    pub fn module_signatures(&self, sha256: &str) -> Result<Vec<Vec<u8>>, CpError> {
        Ok(self.store.signatures(&sha256.to_ascii_lowercase())?)
    }

    /// Every `name@tag`.
    pub fn modules(&self) -> Result<Vec<ModuleRecord>, CpError> {
        Ok(self.store.modules()?)
    }

    /// The bytes with this sha256.
    pub fn module_bytes(&self, sha256: &str) -> Result<Vec<u8>, CpError> {
        if !reference::is_sha256_hex(sha256) {
            return Err(CpError::BadRequest(format!("'{sha256}' is not a sha256")));
        }
        self.store
            .module_bytes(&sha256.to_ascii_lowercase())?
            .ok_or_else(|| CpError::NotFound(format!("no module sha256:{sha256}")))
    }

    /// Removes `name@tag`; refused while the current configuration refers
    /// to it by name or needs bytes only it holds.
    pub fn remove_module(&self, name: &str, tag: &str) -> Result<ModuleRecord, CpError> {
        let tag = tag_or_default(tag);
        let _write = self.write.lock().expect("lock");
        let modules = self.store.modules()?;
        let Some(target) = modules.iter().find(|m| m.name == name && m.tag == tag) else {
            return Err(CpError::NotFound(format!("no module {name}@{tag}")));
        };
        let heads = Arc::clone(&self.heads.borrow());
        for current in heads.records() {
            let last_holder = !modules
                .iter()
                .any(|m| m.sha256 == target.sha256 && (m.name != name || m.tag != tag));
            for document in [&current.document, &current.resolved] {
                let Ok(config) = wasp_config::parse(document) else {
                    continue;
                };
                for (at, module) in configs::module_references(&config) {
                    let refers = match ModuleRef::parse(&module) {
                        Ok(ModuleRef::Tagged { name: n, tag: t }) => n == name && t == tag,
                        Ok(ModuleRef::Sha256(sha)) => last_holder && sha == target.sha256,
                        Err(_) => false,
                    };
                    if refers {
                        return Err(CpError::Conflict(format!(
                            "module {name}@{tag} is used by configuration version {} ({at})",
                            current.version
                        )));
                    }
                }
            }
        }
        let removed = self.store.remove_module(name, tag)?;
        removed.ok_or_else(|| CpError::NotFound(format!("no module {name}@{tag}")))
    }

    /// Validates `document` against the registry and, unless `dry_run`,
    /// stores and publishes it as the next version for the proxies
    /// `selector` matches.
    pub fn apply(
        &self,
        document: &str,
        selector: Selector,
        author: &str,
        message: &str,
        dry_run: bool,
    ) -> Result<Applied, CpError> {
        targeting::check(&selector).map_err(CpError::BadRequest)?;
        let _write = self.write.lock().expect("lock");
        let resolver = Resolver::new(&self.store.modules()?);
        configs::validate(document, &resolver).map_err(CpError::Invalid)?;
        let resolved = configs::resolve(document, &resolver).map_err(CpError::Invalid)?;
        if dry_run {
            return Ok(Applied::Valid);
        }
        let record = self.store_version(NewConfig {
            author: author.to_owned(),
            message: message.to_owned(),
            document: document.to_owned(),
            resolved,
            selector,
            rollouts: Vec::new(),
        })?;
        tracing::info!(
            version = record.version,
            author,
            selector = targeting::display(&record.selector),
            "configuration applied"
        );
        Ok(Applied::Stored(record))
    }

    /// Version `version`, or the current one when `None`.
    pub fn config(&self, version: Option<u64>) -> Result<ConfigRecord, CpError> {
        let found = match version {
            Some(version) => self.store.config(version)?,
            None => self.store.latest_config()?,
        };
        found.ok_or_else(|| match version {
            Some(version) => CpError::NotFound(format!("no configuration version {version}")),
            None => CpError::NotFound("no configuration applied yet".into()),
        })
    }

    /// Every version, oldest first.
    pub fn configs(&self) -> Result<Vec<ConfigRecord>, CpError> {
        Ok(self.store.configs()?)
    }

    /// Makes `version` (the one before the newest when `None`) current
    /// again as a new version for the proxies its selector matches, with
    /// the modules it ran (still in the registry) exactly.
    pub fn rollback(&self, version: Option<u64>, author: &str) -> Result<ConfigRecord, CpError> {
        let _write = self.write.lock().expect("lock");
        let current = self
            .store
            .latest_config()?
            .ok_or_else(|| CpError::NotFound("no configuration applied yet".into()))?;
        let target = match version {
            Some(v) if v >= current.version => {
                return Err(CpError::BadRequest(format!(
                    "version {v} is not earlier than the current version {}",
                    current.version
                )));
            }
            Some(v) => v,
            None if current.version > 1 => current.version - 1,
            None => return Err(CpError::NotFound("no earlier configuration version".into())),
        };
        let old = self
            .store
            .config(target)?
            .ok_or_else(|| CpError::NotFound(format!("no configuration version {target}")))?;
        let resolver = Resolver::new(&self.store.modules()?);
        configs::validate(&old.resolved, &resolver).map_err(|errors| {
            CpError::Invalid(
                errors
                    .into_iter()
                    .map(|e| FieldError {
                        path: e.path,
                        message: format!("{} (version {target})", e.message),
                    })
                    .collect(),
            )
        })?;
        let record = self.store_version(NewConfig {
            author: author.to_owned(),
            message: format!("rollback to version {target}"),
            document: old.document,
            resolved: old.resolved,
            selector: old.selector,
            rollouts: Vec::new(),
        })?;
        tracing::info!(
            version = record.version,
            to = target,
            author,
            "configuration rolled back"
        );
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RedbStore;

    fn doc(module: &str) -> String {
        format!(
            "filter_chains: [{{name: c, plugins: [{{name: p, module: '{module}'}}]}}]\n\
             listeners: [{{name: l, address: '127.0.0.1:8080', filter_chain: c, routes: []}}]\n"
        )
    }

    impl Registry {
        fn apply_all(
            &self,
            document: &str,
            author: &str,
            message: &str,
            dry_run: bool,
        ) -> Result<Applied, CpError> {
            self.apply(document, Selector::new(), author, message, dry_run)
        }
    }

    fn registry(dir: &tempfile::TempDir) -> Registry {
        Registry::new(Arc::new(RedbStore::open(dir.path()).unwrap())).unwrap()
    }

    #[test]
    fn apply_stores_valid_configurations_as_monotonic_versions_and_publishes_them() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(&dir);
        let updates = registry.subscribe();
        registry.push_module("auth", "", b"(module)", &[]).unwrap();
        assert!(matches!(
            registry
                .apply_all(&doc("auth"), "ops", "first", true)
                .unwrap(),
            Applied::Valid
        ));
        assert!(
            registry.configs().unwrap().is_empty(),
            "a dry run stores nothing"
        );
        let Applied::Stored(first) = registry
            .apply_all(&doc("auth"), "ops", "first", false)
            .unwrap()
        else {
            panic!("stored")
        };
        let Applied::Stored(second) = registry
            .apply_all(&doc("auth@latest"), "ops", "2", false)
            .unwrap()
        else {
            panic!("stored")
        };
        assert_eq!((first.version, second.version), (1, 2));
        assert_eq!(
            updates.borrow().for_node(&Selector::new()).unwrap().version,
            2
        );
        assert!(
            second
                .resolved
                .contains(&reference::sha256_hex(b"(module)"))
        );
    }

    #[test]
    fn an_invalid_configuration_is_refused_with_every_error_and_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(&dir);
        let Err(CpError::Invalid(errors)) = registry.apply_all(&doc("nope@v1"), "ops", "", false)
        else {
            panic!("invalid")
        };
        assert_eq!(
            errors[0].to_string(),
            "filter_chains[0].plugins[0].module: no module nope@v1 in the registry"
        );
        assert!(registry.configs().unwrap().is_empty());
    }

    #[test]
    fn a_module_the_current_configuration_uses_cannot_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(&dir);
        registry.push_module("auth", "v1", b"one", &[]).unwrap();
        registry.push_module("other", "v1", b"two", &[]).unwrap();
        registry
            .apply_all(&doc("auth@v1"), "ops", "", false)
            .unwrap();
        let err = registry.remove_module("auth", "v1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "module auth@v1 is used by configuration version 1 (filter_chains[0].plugins[0])"
        );
        registry.remove_module("other", "v1").unwrap();
        assert!(matches!(
            registry.remove_module("other", "v1"),
            Err(CpError::NotFound(_))
        ));
    }

    #[test]
    fn rollback_restores_the_pinned_modules_as_a_new_version() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(&dir);
        registry.push_module("auth", "v1", b"one", &[]).unwrap();
        registry
            .apply_all(&doc("auth@v1"), "ops", "", false)
            .unwrap();
        registry.push_module("auth", "v2", b"two", &[]).unwrap();
        registry
            .apply_all(&doc("auth@v2"), "ops", "", false)
            .unwrap();
        let back = registry.rollback(None, "ops").unwrap();
        assert_eq!(back.version, 3);
        assert_eq!(back.message, "rollback to version 1");
        assert!(back.resolved.contains(&reference::sha256_hex(b"one")));
        assert!(matches!(
            registry.rollback(Some(3), "ops"),
            Err(CpError::BadRequest(_))
        ));
    }

    #[test]
    fn bad_module_names_and_empty_modules_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(&dir);
        assert!(registry.push_module("a/b", "", b"x", &[]).is_err());
        assert_eq!(
            registry
                .push_module("a", "v1", b"", &[])
                .unwrap_err()
                .to_string(),
            "module a@v1 is empty"
        );
    }
}
