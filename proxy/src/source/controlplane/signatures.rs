//! Signed modules on the proxy: with `--trusted-keys FILE`, every module a
//! configuration from the control plane uses must carry a signature (kept
//! beside it in the [`ModuleCache`]) by one of the trusted Ed25519 keys.
//! Checked when a configuration arrives — for pushed configurations and
//! for the last good one read from the cache at start — never on the
//! request path; a module that fails is an error at its plugin's path, so
//! the configuration is NACKed naming the module and the reason.

use std::path::Path;

use wasp_config::{Config, FieldError};
use wasp_controlplane_api::signing::TrustedKeys;

use crate::wasm::module_cache::{ModuleCache, sha256_of};

/// Reads a trusted-keys file: one hex Ed25519 public key per line, `#`
/// comments. The error names the file and the line.
pub fn load_trusted_keys(path: &Path) -> Result<TrustedKeys, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read trusted keys {}: {err}", path.display()))?;
    TrustedKeys::parse(&text).map_err(|err| format!("{}: {err}", path.display()))
}

/// Every plugin of `config` whose module or canary module (already in
/// `cache`) lacks a signature by a trusted key, as errors at its `module` path.
pub fn check(config: &Config, cache: &ModuleCache, trusted: &TrustedKeys) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, chain) in config.filter_chains.iter().enumerate() {
        for (j, plugin) in chain.plugins.iter().enumerate() {
            let at = format!("filter_chains[{i}].plugins[{j}]");
            let canary = plugin
                .canary
                .as_ref()
                .map(|c| (format!("{at}.canary.module"), &c.module));
            for (path, module) in
                std::iter::once((format!("{at}.module"), &plugin.module)).chain(canary)
            {
                let Some(sha256) = sha256_of(module) else {
                    continue;
                };
                if let Err(reason) = trusted.check(&sha256, &cache.signatures(&sha256)) {
                    errors.push(FieldError {
                        path,
                        message: format!(
                            "module sha256:{sha256} of plugin '{}' {reason}",
                            plugin.name
                        ),
                    });
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_controlplane_api::signing::{self, SigningKey};

    #[test]
    fn only_modules_signed_by_a_trusted_key_pass() {
        let dir = std::env::temp_dir().join(format!("wasp-signatures-{}", std::process::id()));
        let cache = ModuleCache::open(&dir).unwrap();
        let signed = crate::wasm::modules::Module::new(&b"(module)"[..]).sha256;
        let unsigned = crate::wasm::modules::Module::new(&b"(module $u)"[..]).sha256;
        cache.insert(&signed, b"(module)").unwrap();
        cache.insert(&unsigned, b"(module $u)").unwrap();
        let key = SigningKey::from_bytes(&[3; 32]);
        cache
            .insert_signatures(&signed, &[signing::sign(&key, &signed)])
            .unwrap();
        let trusted = TrustedKeys::parse(&signing::public_key_hex(&key.verifying_key())).unwrap();
        let config = wasp_config::parse(&format!(
            "filter_chains: [{{name: c, plugins: [{{name: good, module: 'sha256:{signed}'}}, \
             {{name: bad, module: 'sha256:{unsigned}'}}]}}]\nlisteners: [{{name: l, address: '127.0.0.1:8080', filter_chain: c, routes: []}}]"
        ))
        .unwrap();
        let errors = check(&config, &cache, &trusted);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "filter_chains[0].plugins[1].module");
        assert_eq!(
            errors[0].message,
            format!(
                "module sha256:{unsigned} of plugin 'bad' is not signed, and this proxy requires a signature by a trusted key"
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
