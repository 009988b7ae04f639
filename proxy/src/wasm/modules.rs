//! Where module bytes come from: a [`ModuleStore`] resolves a plugin's
//! `module` reference to the module's bytes and sha256. Building chains asks
//! it and never reads paths itself. [`FileModules`] reads files (the file
//! configuration's paths); a content-addressed cache fed by a control plane
//! is the next store.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// A module's bytes and their sha256 (lowercase hex).
#[derive(Clone, Debug)]
pub struct Module {
    /// The module's content hash.
    pub sha256: String,
    /// The `.wasm` (or `.wat`) bytes.
    pub bytes: Bytes,
}

impl Module {
    /// A module of these bytes, hashed.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes,
        }
    }
}

/// Why a module reference could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The module could not be read.
    #[error("cannot read {module}: {reason}")]
    Unreadable {
        /// The reference.
        module: String,
        /// Why.
        reason: String,
    },
    /// The store has no module under this reference.
    #[error("no module {0}")]
    NotFound(String),
}

/// Resolves plugins' module references to bytes.
pub trait ModuleStore: Send + Sync {
    /// The module `reference` names (a file path for [`FileModules`]).
    /// Blocking: call it off the async workers.
    fn fetch(&self, reference: &str) -> Result<Module, ModuleError>;
}

/// Modules read from files; a reference is a path, relative to the working
/// directory.
#[derive(Debug, Default)]
pub struct FileModules;

impl ModuleStore for FileModules {
    fn fetch(&self, reference: &str) -> Result<Module, ModuleError> {
        std::fs::read(reference)
            .map(Module::new)
            .map_err(|err| ModuleError::Unreadable {
                module: reference.to_owned(),
                reason: err.to_string(),
            })
    }
}

/// Modules held in memory under names (tests, embedders).
#[derive(Debug, Default)]
pub struct MemoryModules {
    modules: Mutex<HashMap<String, Module>>,
}

impl MemoryModules {
    /// Stores `bytes` under `reference`, replacing what was there.
    pub fn insert(&self, reference: &str, bytes: impl Into<Bytes>) {
        self.modules
            .lock()
            .expect("lock")
            .insert(reference.to_owned(), Module::new(bytes));
    }
}

impl ModuleStore for MemoryModules {
    fn fetch(&self, reference: &str) -> Result<Module, ModuleError> {
        self.modules
            .lock()
            .expect("lock")
            .get(reference)
            .cloned()
            .ok_or_else(|| ModuleError::NotFound(reference.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_keyed_by_the_sha256_of_their_bytes() {
        let store = MemoryModules::default();
        store.insert("a", &b"(module)"[..]);
        let module = store.fetch("a").unwrap();
        assert_eq!(module.sha256, hex::encode(Sha256::digest(b"(module)")));
        assert_eq!(module.sha256.len(), 64);
        assert!(matches!(store.fetch("b"), Err(ModuleError::NotFound(_))));
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = FileModules.fetch("/nonexistent/filter.wasm").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/filter.wasm: ")
        );
    }
}
