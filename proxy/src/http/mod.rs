//! The request path: from a downstream request to a routed, filtered,
//! forwarded (or locally answered) response.
//!
//! `handler` takes a request through `admission` (head checks and
//! limits), routing, its filter chain (`chain`)
//! and the route's action; `forward` sends it upstream, one `attempt` at a
//! time under the `retry` policy, its route and per-try timeouts on one
//! timer (`deadline`); `local` is the one place responses the
//! proxy makes itself are built, from the typed errors of `error`. The
//! downstream body's errors are typed (`downstream`) so they are never an
//! upstream's; `timeout` holds a request's one timer.

pub mod admission;
mod attempt;
pub mod body;
mod chain;
mod deadline;
pub mod downstream;
pub mod error;
pub mod forward;
pub mod handler;
pub mod headers;
pub mod local;
pub mod retry;
pub mod timeout;
pub mod upgrade;

pub use error::ProxyError;
pub use handler::handle;

#[cfg(test)]
mod tests;
