//! Hot reload: on SIGHUP or when the configuration file changes, build a new
//! snapshot off the request path and swap it in only if everything (parse,
//! validation, TLS, listener sockets) succeeded; otherwise keep serving the
//! old one and report why.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use crate::listener::ListenerManager;
use crate::snapshot::Snapshot;
use crate::state::ProxyState;
use wasp_config as config;
use wasp_config::defaults::CONFIG_POLL_INTERVAL;

/// Why a reload was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A new listener could not be bound.
    #[error(transparent)]
    Bind(#[from] crate::listener::BindError),
}

/// Watches the file and SIGHUP in a background task.
pub fn spawn(
    path: PathBuf,
    state: Arc<ProxyState>,
    listeners: Arc<tokio::sync::Mutex<ListenerManager>>,
) {
    tokio::spawn(async move {
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(err) => {
                tracing::error!(error = %err, "cannot watch SIGHUP; reload on file change only");
                return;
            }
        };
        let mut last = tokio::fs::read(&path).await.ok();
        let mut tick = tokio::time::interval(CONFIG_POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = hangup.recv() => true,
                _ = tick.tick() => false,
            };
            let contents = match tokio::fs::read(&path).await {
                Ok(contents) => contents,
                Err(err) => {
                    if forced {
                        tracing::warn!(config = %path.display(), error = %err, "cannot read configuration");
                    }
                    continue;
                }
            };
            if !forced && last.as_ref() == Some(&contents) {
                continue;
            }
            last = Some(contents.clone());
            let text = String::from_utf8_lossy(&contents);
            match apply(&state, &listeners, &text).await {
                Ok(version) => tracing::info!(
                    version,
                    trigger = if forced { "SIGHUP" } else { "file change" },
                    "configuration reloaded"
                ),
                Err(err) => {
                    tracing::error!(config = %path.display(), "configuration rejected, keeping the running one: {err}")
                }
            }
        }
    });
}

/// Builds and swaps in a snapshot from configuration text. Returns the new version.
pub async fn apply(
    state: &ProxyState,
    listeners: &tokio::sync::Mutex<ListenerManager>,
    text: &str,
) -> Result<u64, ReloadError> {
    let result = build_and_swap(state, listeners, text).await;
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    state
        .metrics
        .config_reloads
        .with_label_values(&[outcome])
        .inc();
    *state.last_reload_error.lock().expect("lock") = result.as_ref().err().map(|e| e.to_string());
    result
}

async fn build_and_swap(
    state: &ProxyState,
    listeners: &tokio::sync::Mutex<ListenerManager>,
    text: &str,
) -> Result<u64, ReloadError> {
    let config = config::parse(text)?;
    let current = state.snapshot.load_full();
    let next = Arc::new(
        Snapshot::build(
            config,
            current.version + 1,
            Some(&current),
            &state.metrics,
            &state.filters,
        )
        .await?,
    );
    let mut manager = listeners.lock().await;
    let prepared = manager.prepare(&next)?;
    state.snapshot.store(Arc::clone(&next));
    manager.commit(prepared, &next);
    state.metrics.config_version.set(next.version as i64);
    Ok(next.version)
}
