//! The control-plane source: a streaming subscription to `wasp-cp`. It
//! yields each configuration version the control plane pushes (after
//! fetching the modules it lacks into the on-disk [`ModuleCache`]) and
//! turns each [`ReloadOutcome`] into an ACK or NACK. The subscription runs
//! in a background task that reconnects with jittered back-off, so the
//! proxy keeps serving its last good snapshot while the control plane is
//! away; that configuration is kept in the cache directory, so a restart
//! works without the control plane too. Once the proxy holds a workload
//! certificate the subscription moves to the control plane's TLS endpoint
//! and authenticates with it ([`TLS_RETRY`] after a failure there). With
//! trusted keys, every module a
//! configuration uses must be signed by one of them ([`signatures`]);
//! [`AddressOverrides`] give this proxy its own addresses.

mod backoff;
mod certs;
mod overrides;
mod session;
pub mod signatures;
mod transport;

pub use transport::TLS_RETRY;

pub use overrides::AddressOverrides;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use wasp_config::{ConfigError, FieldError};
use wasp_controlplane_api::signing::TrustedKeys;

use super::{ConfigSource, Outcome, ReloadOutcome, Update};
use crate::wasm::canary::Canary;
use crate::wasm::module_cache::ModuleCache;

/// The trigger of updates pushed by the control plane.
pub const TRIGGER_PUSH: &str = "control plane";
/// The trigger of the last good configuration read from the cache at start.
pub const TRIGGER_CACHE: &str = "cache";

/// How to reach the control plane and who this proxy is.
#[derive(Clone, Debug)]
pub struct ControlPlaneOptions {
    /// The control plane's gRPC URL, e.g. `http://127.0.0.1:7070`: the
    /// bootstrap endpoint, where the proxy authenticates with its token.
    pub url: String,
    /// The control plane's TLS endpoint (`https://host:port`); when
    /// absent, the one the control plane names in its updates. Used once
    /// the proxy holds a workload certificate.
    pub tls_url: Option<String>,
    /// This proxy's node id.
    pub node_id: String,
    /// This proxy's labels.
    pub labels: BTreeMap<String, String>,
    /// Where modules and the last good configuration are kept.
    pub cache_dir: PathBuf,
    /// The bearer token to present (the subscription needs it, unless it
    /// is authenticated by a workload certificate over mutual TLS).
    pub token: Option<String>,
    /// When set, modules must be signed by one of these keys.
    pub trusted_keys: Option<TrustedKeys>,
    /// Addresses that replace the pushed configuration's.
    pub overrides: AddressOverrides,
    /// Where certificates issued by the control plane's CA and its trust
    /// bundle are installed.
    pub mesh: Arc<crate::mesh::MeshIdentity>,
    /// How often canary counts are reported.
    pub report_interval: std::time::Duration,
}

impl ControlPlaneOptions {
    /// Parses a pushed (or cached) document for this proxy: its address
    /// overrides applied and, with trusted keys, every module's signature
    /// checked (the modules must be in `cache` already).
    fn configuration(
        &self,
        document: &str,
        cache: &ModuleCache,
    ) -> Result<wasp_config::Config, ConfigError> {
        let mut config = wasp_config::parse(document)?;
        self.overrides.apply(&mut config);
        if let Some(trusted) = &self.trusted_keys {
            let errors = signatures::check(&config, cache, trusted);
            if !errors.is_empty() {
                return Err(ConfigError::Invalid(errors));
            }
        }
        Ok(config)
    }
}

/// What the proxy answers for a version.
#[derive(Debug)]
enum Report {
    Ack(u64),
    Nack(u64, Vec<FieldError>),
}

/// The canaries of the snapshot serving now, with its version: what the
/// session reports counts of.
#[derive(Default)]
pub(crate) struct Board {
    version: u64,
    canaries: Vec<Arc<Canary>>,
}

/// A pushed configuration: the update and the document it was parsed from.
struct Pushed {
    update: Update,
    document: String,
}

/// The last good configuration's files in the cache directory.
struct LastGood {
    document: PathBuf,
    version: PathBuf,
}

impl LastGood {
    fn new(cache_dir: &Path) -> Self {
        Self {
            document: cache_dir.join("config.yaml"),
            version: cache_dir.join("config.version"),
        }
    }

    /// The cached version and document, if both are there.
    fn read(&self) -> Option<(u64, String)> {
        let version = std::fs::read_to_string(&self.version).ok()?;
        let document = std::fs::read_to_string(&self.document).ok()?;
        Some((version.trim().parse().ok()?, document))
    }

    /// Replaces the cached configuration (document first, then version,
    /// each through a temporary file and a rename).
    fn write(&self, version: u64, document: &str) -> std::io::Result<()> {
        for (path, contents) in [
            (&self.document, document.to_owned()),
            (&self.version, version.to_string()),
        ] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, contents)?;
            std::fs::rename(&tmp, path)?;
        }
        Ok(())
    }
}

/// A [`ConfigSource`] fed by the control plane.
pub struct ControlPlaneSource {
    updates: mpsc::Receiver<Pushed>,
    reports: mpsc::UnboundedSender<Report>,
    /// The last good configuration from the cache, yielded first.
    cached: Option<Pushed>,
    /// The version last yielded and its document, until its outcome.
    pending: Option<(u64, String)>,
    /// The version running (last accepted); shared with the session.
    running: Arc<Mutex<Option<u64>>>,
    /// The serving snapshot's canaries; shared with the session.
    board: Arc<Mutex<Board>>,
    last_good: LastGood,
}

impl ControlPlaneSource {
    /// Opens the cache and starts the subscription task. Returns the
    /// source and the module store proxies load plugins from.
    pub fn start(options: ControlPlaneOptions) -> std::io::Result<(Self, Arc<ModuleCache>)> {
        std::fs::create_dir_all(&options.cache_dir)?;
        let modules = Arc::new(ModuleCache::open(&options.cache_dir.join("modules"))?);
        let last_good = LastGood::new(&options.cache_dir);
        let cached = last_good.read().map(|(version, document)| Pushed {
            update: Update {
                version: version.to_string(),
                trigger: TRIGGER_CACHE,
                config: options.configuration(&document, &modules),
            },
            document,
        });
        let (updates_tx, updates) = mpsc::channel(1);
        let (reports, reports_rx) = mpsc::unbounded_channel();
        let running = Arc::new(Mutex::new(None));
        let board = Arc::new(Mutex::new(Board::default()));
        tokio::spawn(session::run(
            options,
            Arc::clone(&modules),
            updates_tx,
            reports_rx,
            Arc::clone(&running),
            Arc::clone(&board),
        ));
        let source = Self {
            updates,
            reports,
            cached,
            pending: None,
            running,
            board,
            last_good,
        };
        Ok((source, modules))
    }
}

impl ConfigSource for ControlPlaneSource {
    async fn next(&mut self) -> Update {
        let pushed = match self.cached.take() {
            Some(cached) => cached,
            None => match self.updates.recv().await {
                Some(pushed) => pushed,
                None => std::future::pending().await,
            },
        };
        if let Ok(version) = pushed.update.version.parse() {
            self.pending = Some((version, pushed.document));
        }
        pushed.update
    }

    fn report(&mut self, outcome: &ReloadOutcome) {
        let Ok(version) = outcome.version.parse::<u64>() else {
            return;
        };
        let report = match &outcome.outcome {
            Outcome::Accepted { .. } => {
                *self.running.lock().expect("lock") = Some(version);
                if let Some((pending, document)) = self.pending.take() {
                    if pending == version && outcome.trigger != TRIGGER_CACHE {
                        if let Err(err) = self.last_good.write(version, &document) {
                            tracing::warn!(error = %err, "cannot cache the configuration");
                        }
                    }
                }
                Report::Ack(version)
            }
            Outcome::Rejected { errors } => Report::Nack(version, errors.clone()),
        };
        let _ = self.reports.send(report);
    }

    fn waits_for_a_valid_first(&self) -> bool {
        true
    }

    fn serving(&mut self, snapshot: &crate::snapshot::Snapshot) {
        let Ok(version) = snapshot.source_version.parse() else {
            return;
        };
        *self.board.lock().expect("lock") = Board {
            version,
            canaries: snapshot.canaries.values().cloned().collect(),
        };
    }
}
