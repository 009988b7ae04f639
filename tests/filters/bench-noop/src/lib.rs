//! Benchmark filter: a header filter that does nothing. It creates a stream
//! context for every request and returns `Continue` on the request and
//! response headers, so a chain of N of them measures what the host costs per
//! filter and per request (context creation, two header callbacks, done, log,
//! delete) and nothing else. It declares that it needs no body, trailers or
//! log callbacks (`Callbacks::HEADERS`), so bodies stream past it.
//!
//! Build: `scripts/build-filters.sh` (writes `target/filters/bench_noop.wasm`).

use wasp_filter_sdk::prelude::*;

/// Per-plugin state: none; the plugin takes no configuration.
#[derive(Default)]
pub struct NoopRoot;

impl RootFilter for NoopRoot {
    type Config = ();
    type Http = Noop;

    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Noop> {
        Some(Noop)
    }
}

/// Per-request filter: lets both header phases through untouched.
pub struct Noop;

impl HttpFilter for Noop {
    // No body, trailers or log callbacks: bodies stream past the filter.
    const CALLBACKS: Callbacks = Callbacks::HEADERS;

    fn on_request_headers(&mut self, _: &mut HttpCtx<Self>, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    fn on_response_headers(&mut self, _: &mut HttpCtx<Self>, _end_of_stream: bool) -> Action {
        Action::Continue
    }
}

wasp_filter_sdk::export!(NoopRoot);

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_filter_sdk::testing::{Harness, HostAction};

    #[test]
    fn passes_requests_and_responses_untouched() {
        let mut host = Harness::new(NoopRoot);
        assert!(host.configure(""));
        let mut stream = host.stream();
        let request = [(":method", "POST"), (":path", "/x"), ("a", "1")];
        assert_eq!(
            stream.request_headers(&request, false),
            HostAction::Continue
        );
        assert_eq!(stream.request_body(b"abc", true), HostAction::Continue);
        assert_eq!(
            stream.response_headers(&[(":status", "200"), ("b", "2")], false),
            HostAction::Continue
        );
        assert_eq!(stream.response_body(b"def", true), HostAction::Continue);
        assert_eq!(
            stream.request_header_list(),
            request
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            stream.response_header_list(),
            [
                (":status".to_string(), "200".to_string()),
                ("b".into(), "2".into())
            ]
        );
        assert_eq!(stream.request_body_bytes(), b"abc");
        assert_eq!(stream.response_body_bytes(), b"def");
        assert!(stream.local_reply().is_none());
        stream.finish();
    }

    #[test]
    fn rejects_a_configuration() {
        let mut host = Harness::new(NoopRoot);
        assert!(!host.configure(r#"{"unexpected": true}"#));
    }
}
