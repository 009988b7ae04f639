//! Hot reload: each configuration a [`ConfigSource`] yields is built into a
//! complete new snapshot off the request path (routes, TLS, clusters,
//! filter chains, newly needed sockets) and swapped in only if everything
//! succeeded; otherwise the running snapshot keeps serving. Either way the
//! update ends in a [`ReloadOutcome`], recorded for `/config_dump`, counted,
//! and reported back to the source.

use std::sync::Arc;

use wasp_config::{Config, ConfigError, FieldError};

use crate::listener::{BindError, ListenerManager};
use crate::snapshot::Snapshot;
use crate::source::{ConfigSource, ReloadOutcome, Update, outcome::config_errors};
use crate::state::Control;

/// Why a reload was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A new listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
}

impl ReloadError {
    /// Every problem with its path.
    fn errors(&self, config: Option<&Config>) -> Vec<FieldError> {
        match self {
            Self::Config(err) => config_errors(err),
            Self::Bind(err) => {
                let index = config
                    .and_then(|c| c.listeners.iter().position(|l| l.name == err.name))
                    .map_or_else(|| "listeners".to_owned(), |i| format!("listeners[{i}]"));
                vec![FieldError {
                    path: format!("{index}.address"),
                    message: err.to_string(),
                }]
            }
        }
    }
}

/// Applies every later update of `source` in a background task.
pub fn spawn<S: ConfigSource>(
    mut source: S,
    control: Arc<Control>,
    listeners: Arc<tokio::sync::Mutex<ListenerManager>>,
) {
    tokio::spawn(async move {
        loop {
            let update = source.next().await;
            let outcome = apply(&control, &listeners, update).await;
            source.report(&outcome);
            if matches!(outcome.outcome, crate::source::Outcome::Accepted { .. }) {
                source.serving(&control.proxy.snapshot.load());
            }
        }
    });
}

/// Builds and swaps in a snapshot from `update`; returns how it ended (also
/// recorded in `control` and counted in `wasp_config_reloads_total`).
pub async fn apply(
    control: &Control,
    listeners: &tokio::sync::Mutex<ListenerManager>,
    update: Update,
) -> ReloadOutcome {
    let Update {
        version,
        trigger,
        config,
    } = update;
    let (result, config) = match config {
        Ok(config) => {
            let kept = config.clone();
            (
                build_and_swap(control, listeners, config, &version, trigger).await,
                Some(kept),
            )
        }
        Err(err) => (Err(ReloadError::Config(err)), None),
    };
    let label = if result.is_ok() { "ok" } else { "failed" };
    control
        .proxy
        .metrics
        .config_reloads
        .with_label_values(&[label])
        .inc();
    match result {
        // Recorded as the snapshot was swapped in (`Control::publish`).
        Ok((generation, accepted)) => {
            tracing::info!(version, generation, trigger, "configuration reloaded");
            accepted
        }
        Err(err) => {
            tracing::error!(
                version,
                trigger,
                "configuration rejected, keeping the running one: {err}"
            );
            let rejected = ReloadOutcome::rejected(version, trigger, err.errors(config.as_ref()));
            *control.last_reload.lock().expect("lock") = Some(rejected.clone());
            rejected
        }
    }
}

async fn build_and_swap(
    control: &Control,
    listeners: &tokio::sync::Mutex<ListenerManager>,
    config: Config,
    version: &str,
    trigger: &'static str,
) -> Result<(u64, ReloadOutcome), ReloadError> {
    // VMs the new snapshot creates see its node; a rejected one restores it.
    let previous_node = control.plugins.apply_node(&config.node);
    let swapped = build_and_swap_with_node(control, listeners, config, version, trigger).await;
    if swapped.is_err() {
        control.plugins.engine.set_node(previous_node);
    }
    swapped
}

async fn build_and_swap_with_node(
    control: &Control,
    listeners: &tokio::sync::Mutex<ListenerManager>,
    config: Config,
    version: &str,
    trigger: &'static str,
) -> Result<(u64, ReloadOutcome), ReloadError> {
    let state = &control.proxy;
    let current = state.snapshot.load_full();
    // Callouts see the new clusters while it builds, the running ones after.
    let _unstage = control.plugins.clusters.unstage_on_drop();
    let mut next = Snapshot::build(
        config,
        current.version + 1,
        Some(&current),
        &state.metrics,
        &control.plugins,
        &current.mesh,
    )
    .await?;
    next.source_version = version.to_owned();
    let next = Arc::new(next);
    let mut manager = listeners.lock().await;
    let prepared = manager.prepare(&next)?;
    let accepted = ReloadOutcome::accepted(version.to_owned(), trigger, next.version);
    control.publish(Arc::clone(&next), accepted.clone());
    manager.commit(prepared, &next);
    Ok((next.version, accepted))
}
