//! The subscription task: connect (on the bootstrap endpoint with the
//! token, or over mutual TLS once the proxy holds a certificate — see
//! [`transport`](super::transport)), say hello, then for each pushed
//! configuration fetch the modules the cache lacks (checking their hash,
//! and with trusted keys their signatures, before they enter the cache)
//! and hand it to the source, and send each ACK/NACK back. Reconnects with
//! [`Backoff`] forever; moves from bootstrap to TLS without a delay, and
//! back to bootstrap at once when TLS fails.

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
use super::transport::{self, TlsRoute, Transport, source_text};
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
    route: &'a mut TlsRoute,
    /// When the workload certificate is due for renewal (kept across
    /// sessions, so a move to TLS does not ask for a new one).
    renew_at: &'a mut Option<tokio::time::Instant>,
}

/// How a session ended without an error.
enum End {
    /// The control plane closed the subscription.
    Closed,
    /// The proxy can move to the TLS endpoint.
    Upgrade,
}

/// Why a session failed.
enum Failure {
    /// Before the subscription was up (connect, handshake, refusal).
    Open(String),
    /// Once it was up.
    Stream(String),
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
    let mut route = TlsRoute::new(options.tls_url.clone());
    let mut renew_at = None;
    loop {
        let transport = route.next(&options.mesh);
        let mut session = Session {
            options: &options,
            modules: &modules,
            updates: &updates,
            reports: &mut reports,
            running: &running,
            board: &board,
            route: &mut route,
            renew_at: &mut renew_at,
        };
        let url = match &transport {
            Transport::Bootstrap => options.url.as_str(),
            Transport::Mtls(url) => url.as_str(),
        };
        match (session.run(&mut backoff, &transport).await, &transport) {
            (Ok(End::Upgrade), _) => {
                tracing::info!("moving the subscription to the control plane's TLS endpoint");
                continue;
            }
            (Ok(End::Closed), _) => {
                tracing::warn!(url, "the control plane ended the subscription");
            }
            (Err(Failure::Open(err)), Transport::Mtls(_)) => {
                tracing::warn!(
                    url,
                    retry_in = ?transport::TLS_RETRY,
                    "control plane TLS endpoint failed: {err}; falling back to the bootstrap endpoint with the token"
                );
                route.failed();
                if updates.is_closed() {
                    return;
                }
                continue;
            }
            (Err(Failure::Open(err)), Transport::Bootstrap) => {
                // The bootstrap endpoint failed too: the control plane is
                // away, not just its TLS endpoint; TLS goes first again.
                route.reset();
                tracing::warn!(url, "control plane: {err}");
            }
            (Err(Failure::Stream(err)), _) => {
                tracing::warn!(url, "control plane: {err}");
            }
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

    /// A client on the bootstrap endpoint with the token, or on the TLS
    /// endpoint with the workload certificate.
    async fn connect(&self, transport: &Transport) -> Result<Client, String> {
        let (channel, token) = match transport {
            Transport::Bootstrap => {
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
                (channel, token)
            }
            Transport::Mtls(url) => (
                transport::mtls_channel(url, &self.options.mesh, CONNECT_TIMEOUT).await?,
                None,
            ),
        };
        Ok(DiscoveryClient::with_interceptor(channel, Token(token))
            .max_decoding_message_size(api::MAX_MESSAGE_BYTES))
    }

    /// One subscription, until it fails or ends.
    async fn run(&mut self, backoff: &mut Backoff, transport: &Transport) -> Result<End, Failure> {
        let mut client = self.connect(transport).await.map_err(Failure::Open)?;
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
            .map_err(|status| Failure::Open(format!("subscribe: {}", status.message())))?
            .into_inner();
        backoff.reset();
        let fresh = self.options.mesh.workload().is_some()
            && self
                .renew_at
                .is_some_and(|at| at > tokio::time::Instant::now());
        // On the bootstrap endpoint a certificate is always asked for (the
        // control plane may have another root since); over TLS only when
        // the one presented is due.
        let mut pending = match transport {
            Transport::Mtls(_) if fresh => None,
            _ => {
                *self.renew_at = None;
                self.request_certificate(&outbound)
            }
        };
        let (url, mode) = match transport {
            Transport::Bootstrap => (self.options.url.as_str(), "bootstrap (token)"),
            Transport::Mtls(url) => {
                self.route.reset();
                (url.as_str(), "mutual TLS")
            }
        };
        tracing::info!(
            url,
            transport = mode,
            node_id = self.options.node_id,
            "subscribed to the control plane"
        );
        let mut ticker = tokio::time::interval(self.options.report_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // On the bootstrap endpoint, once no certificate is awaited:
            // when to move to TLS (never while it cannot be used).
            let upgrade_at = match (transport, &pending) {
                (Transport::Bootstrap, None) => self.route.upgrade_at(&self.options.mesh),
                _ => None,
            };
            tokio::select! {
                _ = ticker.tick() => {
                    if let Some(report) = canary_report(&self.board.lock().expect("lock")) {
                        let _ = outbound.send(report);
                    }
                }
                message = inbound.message() => {
                    let Some(update) = message.map_err(|s| Failure::Stream(format!("subscription: {}", s.message())))? else {
                        return Ok(End::Closed);
                    };
                    certs::install_bundle(&self.options.mesh, &update.trust_bundle_pem);
                    if *transport == Transport::Bootstrap {
                        self.route.learn(&update.tls_endpoint, &self.options.url);
                    }
                    if let Some(issued) = &update.certificate {
                        match pending.take().map(|key| certs::install(&self.options.mesh, key, issued)) {
                            Some(Ok(renew_in)) => {
                                tracing::info!(spiffe_id = issued.spiffe_id, ?renew_in, "workload certificate from the control plane");
                                *self.renew_at = Some(tokio::time::Instant::now() + renew_in);
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
                        return Ok(End::Closed);
                    }
                }
                report = self.reports.recv() => {
                    let Some(report) = report else { return Ok(End::Closed) };
                    let _ = outbound.send(report_message(report));
                }
                () = renewal(*self.renew_at) => {
                    *self.renew_at = None;
                    pending = self.request_certificate(&outbound);
                }
                () = renewal(upgrade_at) => return Ok(End::Upgrade),
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
