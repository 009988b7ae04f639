//! The file source: the configuration file, read at start, again on SIGHUP,
//! and whenever its contents change (checked every
//! [`CONFIG_POLL_INTERVAL`]). Its version is the contents' sha256.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Interval, MissedTickBehavior};
use wasp_config::ConfigError;
use wasp_config::defaults::CONFIG_POLL_INTERVAL;

use super::{ConfigSource, Update};

/// A configuration file, watched for changes and SIGHUP.
pub struct FileSource {
    path: PathBuf,
    /// The contents last yielded.
    last: Option<Vec<u8>>,
    hangup: Option<Signal>,
    tick: Option<Interval>,
}

impl FileSource {
    /// Watches `path`; the first [`next`](ConfigSource::next) reads it at once.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            last: None,
            hangup: None,
            tick: None,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Waits for SIGHUP (true) or the next poll (false).
    async fn wait(&mut self) -> bool {
        if self.hangup.is_none() {
            match signal(SignalKind::hangup()) {
                Ok(hangup) => self.hangup = Some(hangup),
                Err(err) => {
                    tracing::error!(error = %err, "cannot watch SIGHUP; reload on file change only")
                }
            }
        }
        let tick = self.tick.get_or_insert_with(|| {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + CONFIG_POLL_INTERVAL,
                CONFIG_POLL_INTERVAL,
            );
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tick
        });
        match &mut self.hangup {
            Some(hangup) => tokio::select! {
                _ = hangup.recv() => true,
                _ = tick.tick() => false,
            },
            None => {
                tick.tick().await;
                false
            }
        }
    }
}

impl ConfigSource for FileSource {
    async fn next(&mut self) -> Update {
        let first = self.last.is_none();
        loop {
            let trigger = if first {
                "start"
            } else if self.wait().await {
                "SIGHUP"
            } else {
                "file change"
            };
            let contents = match tokio::fs::read(&self.path).await {
                Ok(contents) => contents,
                Err(source) => {
                    if first || trigger == "SIGHUP" {
                        return Update {
                            version: String::new(),
                            trigger,
                            config: Err(ConfigError::Read {
                                path: self.path.display().to_string(),
                                source,
                            }),
                        };
                    }
                    continue;
                }
            };
            if trigger == "file change" && self.last.as_ref() == Some(&contents) {
                continue;
            }
            let version = hex::encode(&Sha256::digest(&contents)[..8]);
            let config = wasp_config::parse(&String::from_utf8_lossy(&contents));
            self.last = Some(contents);
            return Update {
                version,
                trigger,
                config,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "listeners: [{name: a, address: '127.0.0.1:1', routes: []}]";

    #[tokio::test(start_paused = true)]
    async fn yields_the_file_at_start_then_each_change() {
        let dir = std::env::temp_dir().join(format!("wasp-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wasp.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let mut source = FileSource::new(path.clone());
        let first = source.next().await;
        assert_eq!(first.trigger, "start");
        assert!(first.config.is_ok());
        assert_eq!(first.version.len(), 16);

        std::fs::write(&path, "listeners: [{name: a, address: nope, routes: []}]").unwrap();
        let second = source.next().await;
        assert_eq!(second.trigger, "file change");
        assert_ne!(second.version, first.version);
        let err = second.config.unwrap_err();
        assert_eq!(err.field_errors()[0].path, "listeners[0].address");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_missing_file_at_start_is_a_read_error() {
        let mut source = FileSource::new("/nonexistent/wasp.yaml".into());
        let update = source.next().await;
        assert!(matches!(update.config, Err(ConfigError::Read { .. })));
    }
}
