//! The compiled-module cache: modules by sha256, so a reload of unchanged
//! bytes costs nothing, bounded by bytes (each entry weighs its compiled
//! image plus its Wasm bytes) and emptied of modules no loaded plugin uses.
//!
//! Plugins hold a [`ModuleUse`] for their module; when the last plugin of a
//! module goes (its snapshot was replaced and its last request ended), the
//! module leaves the cache, so replaced modules do not stay resident. A
//! module compiled for a plugin that then failed to load stays until the
//! byte bound evicts it (least recently used first). Modules in use are
//! found even when the bound evicted them (their plugins keep them alive),
//! so the same bytes are never compiled twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use moka::sync::Cache;
use wasmtime::Module;

/// One cached module, as `/filters` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedModule {
    /// sha256 of the module bytes (hex).
    pub sha256: String,
    /// What it weighs in the cache: compiled image plus Wasm bytes.
    pub bytes: u64,
    /// Loaded plugins using it.
    pub plugins: usize,
}

/// What the cache holds, for `/filters`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleCacheStatus {
    /// Most bytes the cache keeps.
    pub capacity_bytes: u64,
    /// Bytes of the modules it holds.
    pub bytes: u64,
    /// The modules it holds, by sha256.
    pub modules: Vec<CachedModule>,
    /// Modules compiled so far (cache misses).
    pub compiles: u64,
}

#[derive(Clone)]
struct Entry {
    module: Module,
    bytes: u32,
}

/// A module plugins use, with how many.
struct Live {
    users: usize,
    entry: Entry,
}

/// Compiled modules by sha256 with the count of plugins using each.
pub(crate) struct ModuleCache {
    cache: Cache<String, Entry>,
    live: Mutex<HashMap<String, Live>>,
    capacity_bytes: u64,
    compiles: AtomicU64,
}

/// What a module weighs: its compiled image (code and data) plus the Wasm
/// bytes it came from (its data segments become the initial memory image).
fn weight(module: &Module, wasm_len: usize) -> u32 {
    let image = module.image_range();
    let image_len = (image.end as usize).saturating_sub(image.start as usize);
    u32::try_from(image_len.saturating_add(wasm_len)).unwrap_or(u32::MAX)
}

impl ModuleCache {
    /// A cache keeping at most `capacity_bytes` of modules.
    pub fn new(capacity_bytes: u64) -> Arc<Self> {
        let cache = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_sha: &String, entry: &Entry| entry.bytes)
            .build();
        Arc::new(Self {
            cache,
            live: Mutex::default(),
            capacity_bytes,
            compiles: AtomicU64::new(0),
        })
    }

    /// The cached (or in use) module of `sha256`.
    pub fn get(&self, sha256: &str) -> Option<Module> {
        if let Some(live) = self.lock_live().get(sha256) {
            return Some(live.entry.module.clone());
        }
        self.cache.get(sha256).map(|e| e.module)
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Caches a module just compiled (`compiled`) or loaded from disk, from
    /// `wasm_len` bytes.
    pub fn insert(&self, sha256: String, module: Module, wasm_len: usize, compiled: bool) {
        if compiled {
            self.compiles.fetch_add(1, Ordering::Relaxed);
        }
        let bytes = weight(&module, wasm_len);
        self.cache.insert(sha256, Entry { module, bytes });
        // Apply the byte bound now rather than on some later access.
        self.cache.run_pending_tasks();
    }

    /// Records that a plugin uses the module of `sha256` until the returned
    /// guard is dropped.
    pub fn use_module(
        self: &Arc<Self>,
        sha256: &str,
        module: &Module,
        wasm_len: usize,
    ) -> ModuleUse {
        let mut live = self.lock_live();
        live.entry(sha256.to_owned())
            .or_insert_with(|| Live {
                users: 0,
                entry: Entry {
                    module: module.clone(),
                    bytes: weight(module, wasm_len),
                },
            })
            .users += 1;
        ModuleUse {
            cache: Arc::clone(self),
            sha256: sha256.to_owned(),
        }
    }

    fn release(&self, sha256: &str) {
        let mut live = self.lock_live();
        let Some(entry) = live.get_mut(sha256) else {
            return;
        };
        entry.users -= 1;
        if entry.users == 0 {
            live.remove(sha256);
            self.cache.invalidate(sha256);
        }
    }

    /// Modules compiled so far.
    pub fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// What the cache holds now: modules in use and modules kept.
    pub fn status(&self) -> ModuleCacheStatus {
        self.cache.run_pending_tasks();
        let live = self.lock_live();
        let mut by_sha: HashMap<String, CachedModule> = self
            .cache
            .iter()
            .map(|(sha, entry)| {
                let module = CachedModule {
                    sha256: sha.as_str().to_owned(),
                    bytes: u64::from(entry.bytes),
                    plugins: 0,
                };
                (module.sha256.clone(), module)
            })
            .collect();
        for (sha, l) in live.iter() {
            by_sha
                .entry(sha.clone())
                .or_insert_with(|| CachedModule {
                    sha256: sha.clone(),
                    bytes: u64::from(l.entry.bytes),
                    plugins: 0,
                })
                .plugins = l.users;
        }
        let mut modules: Vec<CachedModule> = by_sha.into_values().collect();
        modules.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        ModuleCacheStatus {
            capacity_bytes: self.capacity_bytes,
            bytes: modules.iter().map(|m| m.bytes).sum(),
            modules,
            compiles: self.compiles(),
        }
    }
}

/// A plugin's use of a cached module; dropping the last use of a module
/// removes it from the cache.
pub(crate) struct ModuleUse {
    cache: Arc<ModuleCache>,
    sha256: String,
}

impl Drop for ModuleUse {
    fn drop(&mut self) {
        self.cache.release(&self.sha256);
    }
}
