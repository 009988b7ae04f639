//! Observability: Prometheus metrics, process logging and the access log.

pub mod access_log;
pub mod logging;
pub mod metrics;

pub use metrics::Metrics;
