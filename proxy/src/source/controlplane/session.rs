//! The subscription task: connect, say hello, then for each pushed
//! configuration fetch the modules the cache lacks (checking their hash,
//! and with trusted keys their signatures, before they enter the cache)
//! and hand it to the source, and send each ACK/NACK back. Reconnects with
//! [`Backoff`] forever.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use wasp_config::{ConfigError, FieldError};
use wasp_controlplane_api as api;
use wasp_controlplane_api::discovery_client::DiscoveryClient;
use wasp_controlplane_api::subscribe_request::Kind;

use super::backoff::Backoff;
use super::certs;
use super::{Board, ControlPlaneOptions, Pushed, Report, TRIGGER_PUSH};
use crate::source::Update;
use crate::wasm::module_cache::{ModuleCache, sha256_of};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

type Client = DiscoveryClient<InterceptedService<Channel, Token>>;

/// Adds the bearer token, when there is one.
#[derive(Clone)]
struct Token(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Token {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

/// What a session needs.
struct Session<'a> {
    options: &'a ControlPlaneOptions,
    modules: &'a ModuleCache,
    updates: &'a mpsc::Sender<Pushed>,
    reports: &'a mut mpsc::UnboundedReceiver<Report>,
    running: &'a Mutex<Option<u64>>,
    board: &'a Mutex<Board>,
}

/// Keeps a subscription open, reconnecting after each failure.
pub(super) async fn run(
    options: ControlPlaneOptions,
    modules: Arc<ModuleCache>,
    updates: mpsc::Sender<Pushed>,
    mut reports: mpsc::UnboundedReceiver<Report>,
    running: Arc<Mutex<Option<u64>>>,
    board: Arc<Mutex<Board>>,
) {
    let mut backoff = Backoff::default();
    loop {
        let mut session = Session {
            options: &options,
            modules: &modules,
            updates: &updates,
            reports: &mut reports,
            running: &running,
            board: &board,
        };
        match session.run(&mut backoff).await {
            Ok(()) => tracing::warn!(
                url = options.url,
                "the control plane ended the subscription"
            ),
            Err(err) => tracing::warn!(url = options.url, "control plane: {err}"),
        }
        if updates.is_closed() {
            return;
        }
        let delay = backoff.next_delay();
        tracing::info!(?delay, "reconnecting to the control plane");
        tokio::time::sleep(delay).await;
    }
}

fn report_message(report: Report) -> api::SubscribeRequest {
    let kind = match report {
        Report::Ack(version) => Kind::Ack(api::Ack { version }),
        Report::Nack(version, errors) => Kind::Nack(api::Nack {
            version,
            errors: errors
                .into_iter()
                .map(|e| api::FieldError {
                    path: e.path,
                    message: e.message,
                })
                .collect(),
        }),
    };
    api::SubscribeRequest { kind: Some(kind) }
}

/// Fires at `at`; never when there is nothing to renew.
async fn renewal(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Session<'_> {
    /// Sends a certificate signing request for a fresh key; the key waits
    /// for the answer.
    fn request_certificate(
        &self,
        outbound: &mpsc::UnboundedSender<api::SubscribeRequest>,
    ) -> Option<certs::PendingKey> {
        match certs::request() {
            Ok((key, message)) => {
                let _ = outbound.send(message);
                Some(key)
            }
            Err(err) => {
                tracing::warn!(error = err, "no certificate request");
                None
            }
        }
    }

    async fn connect(&self) -> Result<Client, String> {
        let endpoint = Endpoint::from_shared(self.options.url.clone())
            .map_err(|err| format!("{}: {err}", self.options.url))?
            .connect_timeout(CONNECT_TIMEOUT);
        let channel = endpoint
            .connect()
            .await
            .map_err(|err| format!("cannot connect: {err}: {}", source_text(&err)))?;
        let token = self
            .options
            .token
            .as_ref()
            .and_then(|t| format!("Bearer {t}").parse().ok());
        Ok(DiscoveryClient::with_interceptor(channel, Token(token))
            .max_decoding_message_size(api::MAX_MESSAGE_BYTES))
    }

    /// One subscription, until it fails or ends.
    async fn run(&mut self, backoff: &mut Backoff) -> Result<(), String> {
        let mut client = self.connect().await?;
        let (outbound, outbound_rx) = mpsc::unbounded_channel();
        let running = *self.running.lock().expect("lock");
        let hello = api::SubscribeRequest {
            kind: Some(Kind::Hello(api::Hello {
                node_id: self.options.node_id.clone(),
                labels: self.options.labels.clone().into_iter().collect(),
                running_version: running.unwrap_or(0),
            })),
        };
        let _ = outbound.send(hello);
        let stream = futures_util::stream::unfold(outbound_rx, next_outbound);
        let mut inbound = client
            .subscribe(stream)
            .await
            .map_err(|status| format!("subscribe: {}", status.message()))?
            .into_inner();
        backoff.reset();
        let mut pending = self.request_certificate(&outbound);
        let mut renew_at: Option<tokio::time::Instant> = None;
        tracing::info!(
            url = self.options.url,
            node_id = self.options.node_id,
            "subscribed to the control plane"
        );
        let mut ticker = tokio::time::interval(self.options.report_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Some(report) = canary_report(&self.board.lock().expect("lock")) {
                        let _ = outbound.send(report);
                    }
                }
                message = inbound.message() => {
                    let Some(update) = message.map_err(|s| format!("subscription: {}", s.message()))? else {
                        return Ok(());
                    };
                    certs::install_bundle(&self.options.mesh, &update.trust_bundle_pem);
                    if let Some(issued) = &update.certificate {
                        match pending.take().map(|key| certs::install(&self.options.mesh, key, issued)) {
                            Some(Ok(renew_in)) => {
                                tracing::info!(spiffe_id = issued.spiffe_id, ?renew_in, "workload certificate from the control plane");
                                renew_at = Some(tokio::time::Instant::now() + renew_in);
                            }
                            Some(Err(err)) => tracing::warn!(error = err, "issued certificate refused"),
                            None => tracing::warn!("a certificate nobody asked for was ignored"),
                        }
                        continue;
                    }
                    if *self.running.lock().expect("lock") == Some(update.version) {
                        let _ = outbound.send(report_message(Report::Ack(update.version)));
                        continue;
                    }
                    let pushed = self.prepare(&mut client, update).await;
                    if self.updates.send(pushed).await.is_err() {
                        return Ok(());
                    }
                }
                report = self.reports.recv() => {
                    let Some(report) = report else { return Ok(()) };
                    let _ = outbound.send(report_message(report));
                }
                () = renewal(renew_at) => {
                    renew_at = None;
                    pending = self.request_certificate(&outbound);
                }
            }
        }
    }

    /// Parses a pushed configuration and fetches the modules it needs that
    /// the cache lacks; a module that cannot be fetched is an error at its
    /// plugin's path.
    async fn prepare(&self, client: &mut Client, update: api::ConfigUpdate) -> Pushed {
        tracing::info!(version = update.version, "configuration pushed");
        let config = match wasp_config::parse(&update.document) {
            Ok(config) => {
                let mut errors = Vec::new();
                for (i, chain) in config.filter_chains.iter().enumerate() {
                    for (j, plugin) in chain.plugins.iter().enumerate() {
                        let at = format!("filter_chains[{i}].plugins[{j}]");
                        let canary = plugin
                            .canary
                            .as_ref()
                            .map(|c| (format!("{at}.canary.module"), &c.module));
                        let modules =
                            std::iter::once((format!("{at}.module"), &plugin.module)).chain(canary);
                        for (path, module) in modules {
                            let Some(sha256) = sha256_of(module) else {
                                continue;
                            };
                            if let Err(message) = self.fetch(client, &sha256).await {
                                errors.push(FieldError {
                                    path,
                                    message: format!("plugin '{}': {message}", plugin.name),
                                });
                            }
                        }
                    }
                }
                if errors.is_empty() {
                    self.options.configuration(&update.document, self.modules)
                } else {
                    Err(ConfigError::Invalid(errors))
                }
            }
            Err(err) => Err(err),
        };
        Pushed {
            update: Update {
                version: update.version.to_string(),
                trigger: TRIGGER_PUSH,
                config,
            },
            document: update.document,
        }
    }

    /// Makes sure the module `sha256` is in the cache; with trusted keys,
    /// only a module signed by one of them is let in.
    async fn fetch(&self, client: &mut Client, sha256: &str) -> Result<(), String> {
        let trusted_or_unchecked = || match &self.options.trusted_keys {
            Some(trusted) => trusted
                .check(sha256, &self.modules.signatures(sha256))
                .is_ok(),
            None => true,
        };
        // A cached module whose signatures do not pass may have been
        // signed since: its signatures are fetched again.
        if self.modules.contains(sha256) && trusted_or_unchecked() {
            return Ok(());
        }
        let module = client
            .fetch_module(api::FetchModuleRequest {
                sha256: sha256.to_owned(),
            })
            .await
            .map_err(|status| format!("cannot fetch sha256:{sha256}: {}", status.message()))?
            .into_inner();
        if let Some(trusted) = &self.options.trusted_keys {
            trusted
                .check(sha256, &module.signatures)
                .map_err(|reason| format!("module sha256:{sha256} {reason}"))?;
        }
        let modules = self.modules.clone();
        let sha = sha256.to_owned();
        tokio::task::spawn_blocking(move || {
            modules
                .insert_signatures(&sha, &module.signatures)
                .map_err(|err| format!("cannot cache the signatures of sha256:{sha}: {err}"))?;
            modules
                .insert(&sha, &module.bytes)
                .map_err(|err| err.to_string())
        })
        .await
        .map_err(|err| err.to_string())??;
        tracing::info!(sha256, "module fetched");
        Ok(())
    }
}

/// The counts of the serving snapshot's canaries since the last report,
/// or `None` when no canary served a request.
fn canary_report(board: &Board) -> Option<api::SubscribeRequest> {
    let mut served = false;
    let canaries = board
        .canaries
        .iter()
        .map(|canary| {
            let (stable, taken) = canary.take();
            served |= stable.requests > 0 || taken.requests > 0;
            let counts = |sha256: &str, t: crate::wasm::canary::Taken| api::VersionCounts {
                sha256: sha256.to_owned(),
                requests: t.requests,
                errors: t.errors,
                traps: t.traps,
            };
            api::CanaryCounts {
                chain: canary.chain.clone(),
                plugin: canary.plugin.clone(),
                stable: Some(counts(&canary.stable.sha256, stable)),
                canary: Some(counts(&canary.canary.sha256, taken)),
            }
        })
        .collect();
    served.then_some(api::SubscribeRequest {
        kind: Some(Kind::Report(api::Report {
            version: board.version,
            canaries,
        })),
    })
}

/// The next message to send, for the outbound stream.
async fn next_outbound(
    mut rx: mpsc::UnboundedReceiver<api::SubscribeRequest>,
) -> Option<(
    api::SubscribeRequest,
    mpsc::UnboundedReceiver<api::SubscribeRequest>,
)> {
    rx.recv().await.map(|message| (message, rx))
}

/// The sources of an error, joined.
fn source_text(err: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(inner) = source {
        parts.push(inner.to_string());
        source = inner.source();
    }
    parts.join(": ")
}
