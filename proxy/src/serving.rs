//! The hyper server settings of a listener's connections, from its request
//! limits.

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

use crate::limits::HeaderLimits;

/// hyper's server for a listener's connections.
pub type HttpBuilder = auto::Builder<TokioExecutor>;

/// Bytes an HTTP/1.1 head may carry beyond what [`HeaderLimits`] counts
/// (the request line's version and separators, `": "` and CRLF per field).
const H1_HEAD_OVERHEAD: usize = 8192;
/// What HTTP/2 counts per field beyond its name and value (RFC 9113 §6.5.2).
const H2_FIELD_OVERHEAD: usize = 32;
/// Fields hyper's HTTP/1.1 parser keeps on the stack (its default limit).
const H1_STACK_HEADERS: usize = 100;

/// The HTTP server settings of a listener's connections.
///
/// The request path checks `limits` exactly, the same way for both
/// protocols (`http::admission`: 431); hyper's own limits sit just above
/// them, as a backstop against a head too big to parse at all, and answer
/// 431 too (HTTP/1.1: the read buffer; HTTP/2: `SETTINGS_MAX_HEADER_LIST_SIZE`).
/// The HTTP/1.1 field count is raised only past hyper's default, which
/// keeps parsing on the stack.
///
/// HTTP/1.1 `pipeline_flush` stays off: with it, hyper buffers response
/// bodies without limit when the client reads slower than the upstream
/// sends, instead of applying backpressure.
pub fn http_builder(limits: &HeaderLimits) -> HttpBuilder {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let h1_head = limits.max_bytes + 4 * limits.max_count + H1_HEAD_OVERHEAD;
    let h2_list = limits.max_bytes + H2_FIELD_OVERHEAD * (limits.max_count + 8);
    {
        let mut h1 = builder.http1();
        h1.timer(TokioTimer::new())
            .keep_alive(true)
            .max_buf_size(h1_head);
        if limits.max_count > H1_STACK_HEADERS {
            h1.max_headers(limits.max_count + 1);
        }
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .adaptive_window(true)
        .max_concurrent_streams(1024)
        .max_header_list_size(u32::try_from(h2_list).unwrap_or(u32::MAX));
    builder
}
