//! Fuzzing of configuration parsing and validation: any text is either
//! rejected with errors that each name a path, or accepted as a document
//! that survives a round trip (serialize, parse again) unchanged.
//!
//! Compiled only for tests and `cfg(fuzzing)` builds (`proxy/fuzz`), so the
//! seed corpus is replayed by `cargo test` on stable.

use crate::{ConfigError, parse};

/// Parses `data` as a configuration and checks what came out; panics on a
/// violated property.
pub fn config_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(config) => {
            let yaml =
                serde_yaml_ng::to_string(&config).expect("a parsed configuration serializes");
            let again = parse(&yaml).unwrap_or_else(|err| {
                panic!("a serialized valid configuration is rejected: {err}\n{yaml}")
            });
            assert_eq!(
                config, again,
                "the configuration changed in a round trip:\n{yaml}"
            );
        }
        Err(ConfigError::Invalid(errors)) => {
            assert!(!errors.is_empty(), "rejected without an error");
            for error in &errors {
                assert!(!error.path.is_empty(), "an error without a path: {error:?}");
                assert!(
                    !error.message.is_empty(),
                    "an error without a message: {error:?}"
                );
            }
        }
        Err(err @ ConfigError::Read { .. }) => panic!("parse cannot fail to read: {err}"),
    }
}

#[cfg(test)]
mod tests {
    /// Replays the seed corpus of the `config` fuzz target (`proxy/fuzz`).
    #[test]
    fn the_config_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/config");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).expect("corpus") {
            let path = entry.expect("entry").path();
            let data = std::fs::read(&path).expect("file");
            super::config_text(&data);
            count += 1;
        }
        assert!(count > 0, "{} is empty", dir.display());
    }
}
