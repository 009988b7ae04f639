//! Module signing on the operator's machine: `key generate` makes an
//! Ed25519 key pair, `module sign` writes `FILE.sig` beside a module, and
//! `module push` sends the signature files along. The secret key never
//! leaves this machine; the control plane only stores signatures.

use std::path::{Path, PathBuf};

use wasp_controlplane::reference::sha256_hex;
use wasp_controlplane_api::signing::{self, SigningKey};

use crate::output;

type Result<T> = std::result::Result<T, String>;

fn read_text(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {what} {}: {err}", path.display()))
}

fn write(path: &Path, contents: &str, private: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .map_err(|err| format!("cannot write {}: {err}", path.display()))
}

/// The default signature file of `module`: `module` with `.sig` appended.
fn sig_path(module: &Path) -> PathBuf {
    let mut path = module.as_os_str().to_owned();
    path.push(".sig");
    PathBuf::from(path)
}

/// `waspctl key generate --out NAME`.
pub fn generate(out: &Path) -> Result<()> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|err| format!("no randomness: {err}"))?;
    let key = SigningKey::from_bytes(&seed);
    let secret = out.with_extension("key");
    let public = out.with_extension("pub");
    write(
        &secret,
        &format!("{}\n", signing::secret_key_hex(&key)),
        true,
    )?;
    let public_hex = signing::public_key_hex(&key.verifying_key());
    write(&public, &format!("{public_hex}\n"), false)?;
    output::text(&format!(
        "secret key {} (keep it private), public key {} ({public_hex})",
        secret.display(),
        public.display()
    ));
    Ok(())
}

/// `waspctl module sign FILE --key KEY [--out SIG]`.
pub fn sign_file(file: &Path, key: &Path, out: Option<&Path>) -> Result<()> {
    let bytes =
        std::fs::read(file).map_err(|err| format!("cannot read {}: {err}", file.display()))?;
    let key = signing::parse_secret_key(&read_text(key, "key")?)
        .map_err(|err| format!("{}: {err}", key.display()))?;
    let sha = sha256_hex(&bytes);
    let signature = signing::sign(&key, &sha);
    let out = out.map_or_else(|| sig_path(file), Path::to_owned);
    write(&out, &format!("{}\n", hex::encode(signature)), false)?;
    output::text(&format!(
        "signed {} (sha256:{sha}) with key {}: {}",
        file.display(),
        signing::public_key_hex(&key.verifying_key()),
        out.display()
    ));
    Ok(())
}

/// The signatures `module push` sends: the files named, or `FILE.sig` when
/// none is named and it exists.
pub fn signatures_for(module: &Path, named: &[PathBuf]) -> Result<Vec<Vec<u8>>> {
    let default = sig_path(module);
    let files: Vec<PathBuf> = if named.is_empty() {
        default.is_file().then_some(default).into_iter().collect()
    } else {
        named.to_vec()
    };
    files
        .iter()
        .map(|path| {
            signing::parse_signature(&read_text(path, "signature")?)
                .map_err(|err| format!("{}: {err}", path.display()))
        })
        .collect()
}
