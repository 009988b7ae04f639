//! Compiled modules on disk, so that a restart (or a second proxy sharing
//! the directory) loads machine code instead of running Cranelift again:
//! compiling costs hundreds of milliseconds and leaves megabytes of
//! compiler memory behind, loading maps a file.
//!
//! An entry is `<dir>/<module sha256>-<engine hash>.cwasm`, the module as
//! `Module::serialize` wrote it, beside `<same name>.sha256`, the hex sha256
//! of the `.cwasm` file. The engine hash covers wasmtime's version and every
//! setting that changes the machine code (`Engine::precompile_compatibility_hash`),
//! so an upgraded or differently configured proxy never loads code that is
//! not its own. Loading checks the file against its `.sha256` first: a
//! truncated, corrupt or half-written entry is removed and the module is
//! compiled (and written) again. Entries are written to a temporary file
//! and renamed, the checksum last, so a reader sees whole entries only.
//!
//! Loading machine code is `unsafe` in wasmtime: the bytes are trusted to be
//! what `Module::serialize` produced. They are, when the checksum written by
//! this proxy beside them matches: the directory is the proxy's own, as its
//! configuration is.
#![allow(unsafe_code)]

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// A directory of compiled modules for one engine configuration.
#[derive(Debug)]
pub(crate) struct CompiledCache {
    dir: PathBuf,
    /// Hex digest of the engine's compatibility hash.
    engine: String,
}

/// Feeds `Hash` into sha256: a stable digest of the engine's settings.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompiledCache {
    /// A cache in `dir` (created when absent) for modules of `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine: hex::encode(&hasher.0.finalize()[..8]),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine))
    }

    fn sum_path(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{sha256}-{}.cwasm.sha256", self.engine))
    }

    /// The compiled module of the Wasm bytes with `sha256`, if a whole entry
    /// is there; a damaged entry is removed.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Module> {
        let (path, sum_path) = (self.path(sha256), self.sum_path(sha256));
        let expected = std::fs::read_to_string(&sum_path).ok()?;
        let bytes = std::fs::read(&path).ok()?;
        if hex::encode(Sha256::digest(&bytes)) != expected.trim() {
            tracing::warn!(path = %path.display(), "compiled module cache entry is damaged; compiling again");
            self.remove(sha256);
            return None;
        }
        drop(bytes);
        // SAFETY: the file is what `Module::serialize` wrote for this
        // engine configuration (its name carries the engine hash), checked
        // whole against the checksum written after it.
        match unsafe { Module::deserialize_file(engine, &path) } {
            Ok(module) => Some(module),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "compiled module cache entry not loadable; compiling again");
                self.remove(sha256);
                None
            }
        }
    }

    /// Writes the compiled `module` of the Wasm bytes with `sha256`; a
    /// failure is logged (the module works, the next start compiles again).
    pub fn store(&self, sha256: &str, module: &Module) {
        if let Err(err) = self.try_store(sha256, module) {
            tracing::warn!(dir = %self.dir.display(), error = %err, "compiled module not cached");
        }
    }

    fn try_store(&self, sha256: &str, module: &Module) -> std::io::Result<()> {
        let bytes = module.serialize().map_err(std::io::Error::other)?;
        let sum = hex::encode(Sha256::digest(&bytes));
        let tmp = |name: &Path| {
            let mut tmp = name.as_os_str().to_owned();
            tmp.push(format!(".{}.tmp", std::process::id()));
            PathBuf::from(tmp)
        };
        let (path, sum_path) = (self.path(sha256), self.sum_path(sha256));
        let (tmp_path, tmp_sum) = (tmp(&path), tmp(&sum_path));
        std::fs::write(&tmp_path, &bytes)?;
        std::fs::rename(&tmp_path, &path)?;
        std::fs::write(&tmp_sum, sum)?;
        std::fs::rename(&tmp_sum, &sum_path)
    }

    fn remove(&self, sha256: &str) {
        let _ = std::fs::remove_file(self.sum_path(sha256));
        let _ = std::fs::remove_file(self.path(sha256));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &str = r#"(module (func (export "f") (result i32) i32.const 7))"#;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wasp-compiled-cache-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn modules_round_trip_and_damaged_entries_are_dropped() {
        let engine = Engine::default();
        let dir = temp_dir("round-trip");
        let cache = CompiledCache::open(&dir, &engine).unwrap();
        let sha = "ab".repeat(32);
        assert!(cache.load(&engine, &sha).is_none(), "empty cache");
        let module = Module::new(&engine, MODULE).unwrap();
        cache.store(&sha, &module);
        let loaded = cache.load(&engine, &sha).expect("stored entry loads");
        assert!(loaded.get_export("f").is_some());

        // A damaged file is removed, not loaded.
        let path = cache.path(&sha);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(cache.load(&engine, &sha).is_none());
        assert!(!path.exists() && !cache.sum_path(&sha).exists());

        // A truncated one too.
        cache.store(&sha, &module);
        std::fs::write(&path, &std::fs::read(&path).unwrap()[..100]).unwrap();
        assert!(cache.load(&engine, &sha).is_none());
        cache.store(&sha, &module);
        assert!(cache.load(&engine, &sha).is_some(), "rebuilt entry loads");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_restarted_engine_loads_what_the_last_one_compiled() {
        let dir = temp_dir("restart");
        let options = || crate::EngineOptions {
            max_instances: 4,
            max_memory_bytes: 1 << 20,
            compiled_cache_dir: Some(dir.clone()),
            ..crate::EngineOptions::default()
        };
        let wasm = crate::tests::wat("", "");
        let first = crate::FilterEngine::new(options()).unwrap();
        first.compile(wasm.as_bytes()).unwrap();
        assert_eq!(first.compiled_modules(), 1);
        let second = crate::FilterEngine::new(options()).unwrap();
        let (module, _) = second.compile(wasm.as_bytes()).unwrap();
        assert_eq!(second.compiled_modules(), 0, "loaded, not compiled");
        assert!(module.get_export("proxy_on_context_create").is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn another_engine_configuration_does_not_see_the_entries() {
        let engine = Engine::default();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        let dir = temp_dir("engines");
        let cache = CompiledCache::open(&dir, &engine).unwrap();
        let other_cache = CompiledCache::open(&dir, &other).unwrap();
        let sha = "cd".repeat(32);
        cache.store(&sha, &Module::new(&engine, MODULE).unwrap());
        assert!(other_cache.load(&other, &sha).is_none());
        assert!(cache.load(&engine, &sha).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
