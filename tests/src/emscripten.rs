//! Filters written in C, built with Emscripten's `emcc` the way the
//! proxy-wasm C++ SDK builds filters (standalone Wasm, growable memory), for
//! tests of what such modules import. Needs `emcc` on the `PATH` (Debian:
//! `apt-get install emscripten`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `tests/filters/<dir>/filter.c`, compiled to `<out_dir>/<dir>.wasm`;
/// panics with `emcc`'s output (or how to install it) when that fails.
pub fn build_c_filter(dir: &str, out_dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("filters")
        .join(dir)
        .join("filter.c");
    let output_path = out_dir.join(format!("{dir}.wasm"));
    let output = Command::new("emcc")
        .args(["-O2", "--no-entry"])
        .args(["-s", "STANDALONE_WASM=1", "-s", "ALLOW_MEMORY_GROWTH=1"])
        // The proxy-wasm imports are resolved by the host, not by emcc.
        .args(["-s", "ERROR_ON_UNDEFINED_SYMBOLS=0"])
        .arg(&source)
        .arg("-o")
        .arg(&output_path)
        .output()
        .unwrap_or_else(|e| {
            panic!("running emcc ({e}): install Emscripten, e.g. `apt-get install emscripten`")
        });
    assert!(
        output.status.success() && output_path.is_file(),
        "emcc failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output_path
}
