//! Benchmark filter: does real work on every part of a request. It reads
//! every request and response header and sets each one again, adds
//! `x-bench-rewrite: <number of headers read>`, and buffers each body (by
//! pausing until `end_of_stream`), reads it whole and replaces it with its
//! ASCII upper-case version. The body keeps its length, so `content-length`
//! stays right in every host.
//!
//! Build: `scripts/build-filters.sh` (writes `target/filters/bench_rewrite.wasm`).

use std::collections::HashMap;
use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::{Body, Headers};

/// The header this filter adds to requests and responses.
pub const ADDED_HEADER: &str = "x-bench-rewrite";

/// Per-plugin state: none; the plugin takes no configuration.
#[derive(Default)]
pub struct RewriteRoot;

impl RootFilter for RewriteRoot {
    type Config = ();
    type Http = Rewrite;

    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Rewrite> {
        Some(Rewrite)
    }
}

/// Per-request filter: rewrites headers and bodies in both directions.
pub struct Rewrite;

/// Sets every header that occurs once to its own value again (headers that
/// repeat are left as they are, since setting one would merge them), then adds
/// [`ADDED_HEADER`] with the number of headers read.
fn rewrite_headers(headers: Headers) {
    let all = headers.all();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (name, _) in &all {
        *counts.entry(name.as_str()).or_default() += 1;
    }
    for (name, value) in &all {
        if counts[name.as_str()] == 1 {
            headers.set(name, value);
        }
    }
    headers.add(ADDED_HEADER, &all.len().to_string());
}

/// Replaces a whole body with its ASCII upper-case version.
fn rewrite_body(mut body: Body<'_>) {
    let bytes = body.bytes();
    body.replace(&bytes.to_ascii_uppercase());
}

impl HttpFilter for Rewrite {
    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _end_of_stream: bool) -> Action {
        rewrite_headers(ctx.request_headers());
        Action::Continue
    }

    fn on_request_body(
        &mut self,
        ctx: &mut HttpCtx<Self>,
        _: usize,
        end_of_stream: bool,
    ) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        rewrite_body(ctx.request_body());
        Action::Continue
    }

    fn on_response_headers(&mut self, ctx: &mut HttpCtx<Self>, _end_of_stream: bool) -> Action {
        rewrite_headers(ctx.response_headers());
        Action::Continue
    }

    fn on_response_body(
        &mut self,
        ctx: &mut HttpCtx<Self>,
        _: usize,
        end_of_stream: bool,
    ) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        rewrite_body(ctx.response_body());
        Action::Continue
    }
}

wasp_filter_sdk::export!(RewriteRoot);

#[cfg(test)]
mod tests {
    use super::*;
    use wasp_filter_sdk::testing::{Harness, HostAction};

    fn host() -> Harness {
        let mut host = Harness::new(RewriteRoot);
        assert!(host.configure(""));
        host
    }

    #[test]
    fn rewrites_headers_and_counts_them() {
        let mut host = host();
        let mut stream = host.stream();
        let request = [
            (":method", "GET"),
            (":path", "/a"),
            ("accept", "*/*"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ];
        assert_eq!(stream.request_headers(&request, true), HostAction::Continue);
        assert_eq!(stream.request_header(ADDED_HEADER).as_deref(), Some("5"));
        assert_eq!(stream.request_header(":path").as_deref(), Some("/a"));
        let list = stream.request_header_list();
        assert_eq!(list.len(), 6);
        let cookies: Vec<_> = list.iter().filter(|(n, _)| n == "cookie").collect();
        assert_eq!(
            cookies.len(),
            2,
            "repeated headers are kept apart: {list:?}"
        );

        let response = [(":status", "200"), ("content-length", "3")];
        assert_eq!(
            stream.response_headers(&response, true),
            HostAction::Continue
        );
        assert_eq!(stream.response_header(ADDED_HEADER).as_deref(), Some("2"));
        assert_eq!(
            stream.response_header("content-length").as_deref(),
            Some("3")
        );
    }

    #[test]
    fn buffers_each_body_until_the_end_and_replaces_it() {
        let mut host = host();
        let mut stream = host.stream();
        stream.request_headers(&[(":method", "POST"), (":path", "/")], false);
        assert_eq!(stream.request_body(b"hello ", false), HostAction::Pause);
        assert_eq!(stream.request_body(b"wasp", true), HostAction::Continue);
        assert_eq!(stream.request_body_bytes(), b"HELLO WASP");

        stream.response_headers(&[(":status", "200")], false);
        assert_eq!(stream.response_body(b"abc", false), HostAction::Pause);
        assert_eq!(stream.response_body(b"-def", false), HostAction::Pause);
        assert_eq!(stream.response_body(b"-x1", true), HostAction::Continue);
        assert_eq!(stream.response_body_bytes(), b"ABC-DEF-X1");
        stream.finish();
    }
}
