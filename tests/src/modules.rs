//! The Wasm filter modules that `scripts/build-filters.sh` builds into
//! `target/filters/`, for tests that load them into wasp or Envoy.

use std::path::PathBuf;

/// `target/filters/<lib_name>.wasm`; panics with the command to run when it
/// has not been built.
pub fn filter_module(lib_name: &str) -> PathBuf {
    let path = crate::wasp::tests_dir()
        .join("../target/filters")
        .join(format!("{lib_name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-filters.sh first",
        path.display()
    );
    path
}
