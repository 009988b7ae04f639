//! In-process tests of the request handler: a snapshot built from YAML,
//! requests passed straight to [`handle`](super::handle) and upstreams that
//! are small hyper servers on loopback, so request-path behaviour is checked
//! without starting the binary (the end-to-end tests in `tests/` do that).
//!
//! `fixture` builds the proxy side, `upstream` the servers behind it; each
//! other file holds the tests of one behaviour. Timeout tests run on tokio's
//! paused clock, so they take no wall time and assert the exact deadline.

mod fixture;
mod upstream;

mod endpoint_health;
mod failures;
mod forwarding;
mod local_replies;
mod retries;
mod timeouts;
