//! Header names filters set, parsed once per thread: a name `http` does not
//! know (`x-envoy-peer-metadata`, `traceparent`, a filter's own) costs an
//! allocation each time it is parsed, and a filter that sets one sets it on
//! every request. The last names parsed on a thread are kept and shared.

use std::cell::RefCell;

use http::HeaderName;
use http::header::InvalidHeaderName;

/// How many names a thread keeps (the newest replace the oldest).
const KEPT: usize = 32;

/// The names a thread parsed last, and where the next one goes.
struct Kept {
    names: Vec<HeaderName>,
    next: usize,
}

thread_local! {
    static KEPT_NAMES: RefCell<Kept> = const {
        RefCell::new(Kept { names: Vec::new(), next: 0 })
    };
}

/// The header name `name` (as filters hand names over: lower-case), shared
/// with an earlier parse of the same name on this thread when there is one.
pub fn header_name(name: &str) -> Result<HeaderName, InvalidHeaderName> {
    KEPT_NAMES.with(|kept| {
        let mut kept = kept.borrow_mut();
        if let Some(found) = kept.names.iter().find(|n| n.as_str() == name) {
            return Ok(found.clone());
        }
        let parsed = HeaderName::from_bytes(name.as_bytes())?;
        // A name given in upper case parses to its lower-case form; keep
        // only names that a later lookup of the same text finds.
        if parsed.as_str() == name {
            if kept.names.len() < KEPT {
                kept.names.push(parsed.clone());
            } else {
                let at = kept.next;
                kept.names[at] = parsed.clone();
                kept.next = (at + 1) % KEPT;
            }
        }
        Ok(parsed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_parsed_again_is_the_same_name_and_invalid_names_are_errors() {
        let first = header_name("x-envoy-peer-metadata").unwrap();
        let again = header_name("x-envoy-peer-metadata").unwrap();
        assert_eq!(first, again);
        assert_eq!(header_name("X-Upper").unwrap().as_str(), "x-upper");
        assert_eq!(
            header_name("content-type").unwrap(),
            http::header::CONTENT_TYPE
        );
        assert!(header_name("bad name").is_err());
        assert!(header_name("").is_err());
    }

    #[test]
    fn more_names_than_a_thread_keeps_still_parse_right() {
        for round in 0..2 {
            for i in 0..(KEPT * 2) {
                let name = format!("x-name-{i}");
                assert_eq!(header_name(&name).unwrap().as_str(), name, "round {round}");
            }
        }
    }
}
