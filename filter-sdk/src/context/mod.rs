//! The handles a filter's callbacks receive: [`HttpCtx`] for a stream and
//! [`RootCtx`] for the plugin. They carry the context's id, its pending
//! callout and timer callbacks, and the stream's pause state.

mod http;
mod root;

pub use http::HttpCtx;
pub use root::RootCtx;
