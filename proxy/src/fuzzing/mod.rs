//! Fuzzing entry points of the proxy: the router's matcher
//! ([`route_match`]) and the HTTP/1.1 request path through a live proxy
//! ([`h1_request`]). Each takes the fuzz input and panics only when a
//! property is violated.
//!
//! Compiled only for tests and `cfg(fuzzing)` builds (`proxy/fuzz`), so the
//! seed corpora are replayed by `cargo test` on stable.

mod h1;
mod route;

pub use h1::h1_request;
pub use route::route_match;

/// The files of a seed corpus, `proxy/fuzz/corpus/<target>`, for replay tests.
#[cfg(test)]
pub(crate) fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).expect("corpus file");
            (path.display().to_string(), data)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::corpus;

    /// Replays the seed corpus of the `route_match` fuzz target.
    #[test]
    fn the_route_match_corpus_replays() {
        for (_, data) in corpus("route_match") {
            super::route_match(&data);
        }
    }

    /// Replays the seed corpus of the `h1_request` fuzz target.
    #[test]
    fn the_h1_request_corpus_replays() {
        for (_, data) in corpus("h1_request") {
            super::h1_request(&data);
        }
        assert!(
            super::h1::upstream_seen() > 0,
            "nothing reached the upstream"
        );
    }
}
