//! The `Discovery` gRPC service: proxies subscribe, receive the
//! configuration that targets them (the newest version whose selector
//! their labels match) and each newer one, and answer ACK or NACK; they
//! fetch module bytes and signatures by sha256. Every update names the TLS
//! endpoint; a subscriber that reached it with a workload certificate must
//! claim the identity the certificate carries, or it is refused.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};
use wasp_controlplane_api as api;
use wasp_controlplane_api::discovery_server::Discovery;
use wasp_controlplane_api::subscribe_request::Kind;

use super::{Shared, blocking};
use crate::auth::{Access, Peer, authorization};
use crate::metrics::{REJECT_IDENTITY_MISMATCH, REJECT_UNAUTHENTICATED};
use crate::store::ConfigRecord;
use crate::targeting::Heads;

/// The `Discovery` service.
pub struct DiscoveryService {
    shared: Shared,
}

impl DiscoveryService {
    /// The service over `shared`.
    pub fn new(shared: Shared) -> Self {
        Self { shared }
    }
}

type Updates = Pin<Box<dyn Stream<Item = Result<api::ConfigUpdate, Status>> + Send>>;

fn update(record: &ConfigRecord, bundle: String, tls_endpoint: String) -> api::ConfigUpdate {
    api::ConfigUpdate {
        version: record.version,
        document: record.resolved.clone(),
        trust_bundle_pem: bundle,
        certificate: None,
        tls_endpoint,
    }
}

/// Signs a proxy's CSR with the CA; the answer goes out on its stream.
fn issue(
    shared: &Shared,
    node_id: &str,
    labels: &BTreeMap<String, String>,
    csr: &api::CertificateRequest,
) -> Option<api::ConfigUpdate> {
    match shared.ca.sign(&csr.csr_pem, labels) {
        Ok((chain_pem, spiffe_id)) => {
            tracing::info!(node_id, spiffe_id, "certificate issued");
            Some(api::ConfigUpdate {
                version: 0,
                document: String::new(),
                trust_bundle_pem: shared.ca.bundle(),
                certificate: Some(api::IssuedCertificate {
                    chain_pem,
                    spiffe_id,
                }),
                tls_endpoint: shared.tls_endpoint.clone().unwrap_or_default(),
            })
        }
        Err(err) => {
            tracing::warn!(node_id, error = %err, "certificate request refused");
            None
        }
    }
}

/// Reads a subscriber's ACKs and NACKs until its stream ends.
async fn read_reports(
    shared: Shared,
    node_id: String,
    labels: BTreeMap<String, String>,
    connection: u64,
    mut incoming: Streaming<api::SubscribeRequest>,
    certificates: tokio::sync::mpsc::UnboundedSender<api::ConfigUpdate>,
) {
    loop {
        match incoming.message().await {
            Ok(Some(message)) => match message.kind {
                Some(Kind::Ack(ack)) => {
                    tracing::info!(node_id, version = ack.version, "ACK");
                    shared.proxies.ack(&node_id, ack.version);
                }
                Some(Kind::Nack(nack)) => {
                    let error = nack
                        .errors
                        .iter()
                        .map(|e| format!("{}: {}", e.path, e.message))
                        .collect::<Vec<_>>()
                        .join("\n");
                    let error = blocking(&shared, move |r| Ok(name_modules(r, error)))
                        .await
                        .unwrap_or_default();
                    tracing::warn!(node_id, version = nack.version, error, "NACK");
                    shared.proxies.nack(&node_id, nack.version, error);
                }
                Some(Kind::Csr(csr)) => {
                    if let Some(issued) = issue(&shared, &node_id, &labels, &csr) {
                        let _ = certificates.send(issued);
                    }
                }
                Some(Kind::Report(report)) => {
                    let matched = shared.registry.record_report(&report);
                    shared.proxies.add_rollout_counts(&node_id, &matched);
                }
                Some(Kind::Hello(_)) | None => {}
            },
            Ok(None) => break,
            Err(status) => {
                tracing::debug!(node_id, %status, "subscription ended");
                break;
            }
        }
    }
    tracing::info!(node_id, "proxy disconnected");
    shared.proxies.disconnected(&node_id, connection);
}

/// `text` with each `sha256:<hex>` the registry knows followed by its
/// names, e.g. `sha256:ab… (auth@v2)`, so an operator reads which module a
/// NACK is about.
fn name_modules(registry: &crate::Registry, text: String) -> String {
    let Ok(modules) = registry.modules() else {
        return text;
    };
    let mut text = text;
    let mut seen = std::collections::HashSet::new();
    for module in &modules {
        if !seen.insert(&module.sha256) {
            continue;
        }
        let names = modules
            .iter()
            .filter(|m| m.sha256 == module.sha256)
            .map(|m| format!("{}@{}", m.name, m.tag))
            .collect::<Vec<_>>()
            .join(", ");
        let reference = format!("sha256:{}", module.sha256);
        text = text.replace(&reference, &format!("{reference} ({names})"));
    }
    text
}

/// The configurations for a proxy with `labels`: the one targeting it now,
/// then each time that changes.
fn updates_for(
    heads: tokio::sync::watch::Receiver<Arc<Heads>>,
    labels: BTreeMap<String, String>,
    shared: Shared,
    certificates: tokio::sync::mpsc::UnboundedReceiver<api::ConfigUpdate>,
) -> Updates {
    let state = (heads, labels, None::<u64>);
    let configs = futures_util::stream::unfold(state, move |(mut heads, labels, sent)| {
        let shared = shared.clone();
        async move {
            loop {
                let pick: Option<Arc<ConfigRecord>> = heads.borrow_and_update().for_node(&labels);
                if let Some(record) = pick.filter(|r| Some(r.version) != sent) {
                    let version = record.version;
                    let bundle = shared.ca.bundle();
                    let tls = shared.tls_endpoint.clone().unwrap_or_default();
                    let update = update(&record, bundle, tls);
                    return Some((Ok(update), (heads, labels, Some(version))));
                }
                heads.changed().await.ok()?;
            }
        }
    });
    let issued = futures_util::stream::unfold(certificates, |mut rx| async move {
        rx.recv().await.map(|update| (Ok(update), rx))
    });
    Box::pin(futures_util::stream::select(configs, issued))
}

#[tonic::async_trait]
impl Discovery for DiscoveryService {
    type SubscribeStream = Updates;

    async fn subscribe(
        &self,
        request: Request<Streaming<api::SubscribeRequest>>,
    ) -> Result<Response<Updates>, Status> {
        let peer = Peer::of(&request);
        let header = authorization(&request).map(str::to_owned);
        if peer.identity.is_none() {
            if let Err(status) = self.shared.auth.check_grpc(Access::Subscribe, &request) {
                self.shared.counters.rejected(REJECT_UNAUTHENTICATED);
                return Err(status);
            }
        }
        let mut incoming = request.into_inner();
        let hello = match incoming.message().await? {
            Some(api::SubscribeRequest {
                kind: Some(Kind::Hello(hello)),
            }) => hello,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message must be a hello",
                ));
            }
        };
        if hello.node_id.is_empty() {
            return Err(Status::invalid_argument("hello.node_id must not be empty"));
        }
        let labels: BTreeMap<String, String> = hello.labels.into_iter().collect();
        let claimed = self.shared.ca.spiffe_id(&labels);
        if let Err(err) = self
            .shared
            .auth
            .check_subscriber(&peer, header.as_deref(), &claimed)
        {
            self.shared.counters.rejected(REJECT_IDENTITY_MISMATCH);
            tracing::warn!(node_id = hello.node_id, peer = ?peer.addr, error = %err, "subscription refused");
            return Err(Status::permission_denied(err.to_string()));
        }
        let connection = self.shared.proxies.connected(
            &hello.node_id,
            labels.clone(),
            hello.running_version,
            &peer,
        );
        self.shared.counters.subscribed(peer.transport());
        tracing::info!(
            node_id = hello.node_id,
            transport = peer.transport(),
            peer_identity = peer.identity.as_deref().unwrap_or(""),
            "proxy connected"
        );
        let (certificates, issued) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(read_reports(
            self.shared.clone(),
            hello.node_id,
            labels.clone(),
            connection,
            incoming,
            certificates,
        ));
        let heads = self.shared.registry.subscribe();
        let shared = self.shared.clone();
        Ok(Response::new(updates_for(heads, labels, shared, issued)))
    }

    async fn fetch_module(
        &self,
        request: Request<api::FetchModuleRequest>,
    ) -> Result<Response<api::ModuleBytes>, Status> {
        self.shared.auth.check_proxy_read(&request)?;
        let sha256 = request.into_inner().sha256;
        let sha = sha256.clone();
        let (bytes, signatures) = blocking(&self.shared, move |r| {
            Ok((r.module_bytes(&sha)?, r.module_signatures(&sha)?))
        })
        .await?;
        Ok(Response::new(api::ModuleBytes {
            sha256,
            bytes,
            signatures,
        }))
    }
}
