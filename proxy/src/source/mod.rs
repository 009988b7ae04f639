//! Where configurations come from: a [`ConfigSource`] yields versioned
//! configurations (the file watcher today, a control-plane subscription
//! next); every update ends in a [`ReloadOutcome`] — accepted, or rejected
//! with each error and its path — that `/config_dump` shows and a control
//! plane receives as its ACK or NACK.

pub mod controlplane;
mod file;
pub mod outcome;

pub use controlplane::{ControlPlaneOptions, ControlPlaneSource};
pub use file::FileSource;
pub use outcome::{Outcome, ReloadOutcome};

use wasp_config::{Config, ConfigError};

/// One configuration a source yields.
#[derive(Debug)]
pub struct Update {
    /// The source's version of it (a file's content hash, a control
    /// plane's version number).
    pub version: String,
    /// What made the source yield it (`start`, `SIGHUP`, `file change`, ...).
    pub trigger: &'static str,
    /// The parsed and validated configuration, or why it is not one.
    pub config: Result<Config, ConfigError>,
}

/// A stream of configurations, each to be built into a snapshot and swapped
/// in when it is good.
pub trait ConfigSource: Send + 'static {
    /// Waits for the next configuration; the first call yields the initial one.
    fn next(&mut self) -> impl std::future::Future<Output = Update> + Send;

    /// Told how the last update ended (a control plane sends it on as ACK
    /// or NACK); the default does nothing.
    fn report(&mut self, outcome: &ReloadOutcome) {
        let _ = outcome;
    }

    /// Told which snapshot serves now (after the first one is built and
    /// after each accepted update); the default does nothing.
    fn serving(&mut self, snapshot: &crate::snapshot::Snapshot) {
        let _ = snapshot;
    }

    /// Whether a rejected first configuration is reported and the next one
    /// awaited (a control plane will push another) instead of failing the
    /// start (a file); the default is `false`.
    fn waits_for_a_valid_first(&self) -> bool {
        false
    }
}
