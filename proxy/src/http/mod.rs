//! The request path: from a downstream request to a routed, filtered,
//! forwarded (or locally answered) response.
//!
//! `handler` takes a request through routing, its filter chain (`chain`)
//! and the route's action; `forward` sends it upstream, one `attempt` at a
//! time under the `retry` policy; `local` is the one place responses the
//! proxy makes itself are built, from the typed errors of `error`.

mod attempt;
pub mod body;
mod chain;
pub mod error;
pub mod forward;
pub mod handler;
pub mod headers;
pub mod local;
pub mod retry;
pub mod upgrade;

pub use error::ProxyError;
pub use handler::handle;

#[cfg(test)]
mod tests;
