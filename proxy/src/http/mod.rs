//! The request path: from a downstream request to a routed, forwarded (or
//! locally answered) response.

pub mod body;
pub mod filtered;
pub mod forward;
pub mod handler;
pub mod headers;
pub mod local;
pub mod retry;
pub mod upgrade;

pub use handler::{ConnInfo, handle};
