//! The body types every layer shares: the boxed request body sent upstream
//! (by the request path, filter chains and callouts) and its error type.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

/// A boxed error from any body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request sent upstream.
pub type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;
