//! [`ModuleCache`]: a content-addressed [`ModuleStore`] on disk, fed by a
//! control plane. A reference is `sha256:<hex>`; the module lives in
//! `<dir>/<hex>.wasm`, written atomically (temporary file, then rename) and
//! checked against its hash on every read, so a restart finds every module
//! the last good configuration needs even while the control plane is away.
//! A module's signatures, when it came with any, sit beside it in
//! `<dir>/<hex>.sig` (one hex signature per line), so a proxy that trusts
//! keys checks cached modules without the control plane.

use std::path::{Path, PathBuf};

use super::modules::{Module, ModuleError, ModuleStore};

/// The prefix of a content reference.
pub const SHA256_PREFIX: &str = "sha256:";

/// Modules on disk by sha256.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
}

/// The hex digest of a `sha256:<hex>` reference (lowercased), if it is one.
pub fn sha256_of(reference: &str) -> Option<String> {
    let hex = reference.strip_prefix(SHA256_PREFIX)?;
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

impl ModuleCache {
    /// A cache in `dir` (created when absent).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }

    fn sig_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.sig"))
    }

    /// Replaces the signatures kept beside the module `sha256`.
    pub fn insert_signatures(&self, sha256: &str, signatures: &[Vec<u8>]) -> std::io::Result<()> {
        let text: String = signatures
            .iter()
            .map(|s| format!("{}\n", hex::encode(s)))
            .collect();
        let path = self.sig_path(sha256);
        let tmp = self
            .dir
            .join(format!(".{sha256}.sig.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path))
    }

    /// The signatures kept beside the module `sha256` (none when it has no
    /// signature file; lines that are not hex are skipped).
    pub fn signatures(&self, sha256: &str) -> Vec<Vec<u8>> {
        std::fs::read_to_string(self.sig_path(sha256))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| hex::decode(line.trim()).ok())
            .filter(|sig| !sig.is_empty())
            .collect()
    }

    /// Whether the module with this sha256 is cached.
    pub fn contains(&self, sha256: &str) -> bool {
        self.path(sha256).is_file()
    }

    /// Stores `bytes` as the module `sha256`; refuses bytes of another hash.
    pub fn insert(&self, sha256: &str, bytes: &[u8]) -> Result<(), ModuleError> {
        let module = Module::new(bytes.to_vec());
        if module.sha256 != sha256 {
            return Err(ModuleError::Unreadable {
                module: format!("{SHA256_PREFIX}{sha256}"),
                reason: format!("received bytes have sha256 {}", module.sha256),
            });
        }
        let path = self.path(sha256);
        let tmp = self
            .dir
            .join(format!(".{sha256}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|err| ModuleError::Unreadable {
                module: path.display().to_string(),
                reason: err.to_string(),
            })
    }
}

impl ModuleStore for ModuleCache {
    fn fetch(&self, reference: &str) -> Result<Module, ModuleError> {
        let sha256 = sha256_of(reference).ok_or_else(|| ModuleError::Unreadable {
            module: reference.to_owned(),
            reason: "not a sha256:<hex> reference".to_owned(),
        })?;
        let bytes = match std::fs::read(self.path(&sha256)) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModuleError::NotFound(reference.to_owned()));
            }
            Err(err) => {
                return Err(ModuleError::Unreadable {
                    module: reference.to_owned(),
                    reason: err.to_string(),
                });
            }
        };
        let module = Module::new(bytes);
        if module.sha256 != sha256 {
            return Err(ModuleError::Unreadable {
                module: reference.to_owned(),
                reason: format!("cached file has sha256 {}", module.sha256),
            });
        }
        Ok(module)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_stored_and_read_back_by_their_hash() {
        let dir = std::env::temp_dir().join(format!("wasp-module-cache-{}", std::process::id()));
        let cache = ModuleCache::open(&dir).unwrap();
        let module = Module::new(&b"(module)"[..]);
        assert!(!cache.contains(&module.sha256));
        cache.insert(&module.sha256, b"(module)").unwrap();
        let reference = format!("sha256:{}", module.sha256);
        assert_eq!(cache.fetch(&reference).unwrap().bytes, module.bytes);

        let wrong = cache.insert(&"0".repeat(64), b"(module)").unwrap_err();
        assert!(
            wrong.to_string().contains("received bytes have sha256"),
            "{wrong}"
        );
        std::fs::write(dir.join(format!("{}.wasm", module.sha256)), b"tampered").unwrap();
        let tampered = cache.fetch(&reference).unwrap_err();
        assert!(
            tampered.to_string().contains("cached file has sha256"),
            "{tampered}"
        );
        assert!(matches!(
            cache.fetch(&format!("sha256:{}", "1".repeat(64))),
            Err(ModuleError::NotFound(_))
        ));
        assert!(cache.fetch("filters/a.wasm").is_err());

        assert!(cache.signatures(&module.sha256).is_empty());
        let sigs = vec![vec![7u8; 64], vec![9u8; 64]];
        cache.insert_signatures(&module.sha256, &sigs).unwrap();
        assert_eq!(cache.signatures(&module.sha256), sigs);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
