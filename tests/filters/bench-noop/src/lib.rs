//! Benchmark filter: a header filter that does nothing. It creates a stream
//! context for every request and returns `Continue` on the request headers,
//! so a chain of N of them measures what the host costs per filter and per
//! request (context creation, the request headers callback, delete) and
//! nothing else. It declares that it needs no other callback
//! (`Callbacks::REQUEST_HEADERS`): bodies stream past it and the response
//! phase does not enter it (Envoy, which ignores the declaration, also calls
//! its default response headers callback, `proxy_on_done` and
//! `proxy_on_log`).
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

/// Per-request filter: lets the request headers through untouched.
pub struct Noop;

impl HttpFilter for Noop {
    // Only the request headers: bodies and the response pass the filter.
    const CALLBACKS: Callbacks = Callbacks::REQUEST_HEADERS;

    fn on_request_headers(&mut self, _: &mut HttpCtx<Self>, _end_of_stream: bool) -> Action {
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
