//! Observability: Prometheus metrics, process logging, the access log and
//! the per-request completion record that feeds them.

pub mod access_log;
mod completion;
pub mod logging;
pub mod metrics;
mod series;

pub use completion::{Completion, protocol_name};
pub use metrics::Metrics;
