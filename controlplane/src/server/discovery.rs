//! The `Discovery` gRPC service: proxies subscribe, receive the current
//! configuration and each new version, and answer ACK or NACK; they fetch
//! module bytes by sha256.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};
use wasp_controlplane_api as api;
use wasp_controlplane_api::discovery_server::Discovery;
use wasp_controlplane_api::subscribe_request::Kind;

use super::{Shared, blocking};
use crate::auth::Access;
use crate::store::ConfigRecord;

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

fn update(record: &ConfigRecord) -> api::ConfigUpdate {
    api::ConfigUpdate {
        version: record.version,
        document: record.resolved.clone(),
    }
}

/// Reads a subscriber's ACKs and NACKs until its stream ends.
async fn read_reports(
    shared: Shared,
    node_id: String,
    connection: u64,
    mut incoming: Streaming<api::SubscribeRequest>,
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
                    tracing::warn!(node_id, version = nack.version, error, "NACK");
                    shared.proxies.nack(&node_id, nack.version, error);
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

#[tonic::async_trait]
impl Discovery for DiscoveryService {
    type SubscribeStream = Updates;

    async fn subscribe(
        &self,
        request: Request<Streaming<api::SubscribeRequest>>,
    ) -> Result<Response<Updates>, Status> {
        self.shared.auth.check_grpc(Access::Read, &request)?;
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
        let labels = hello.labels.into_iter().collect();
        let connection =
            self.shared
                .proxies
                .connected(&hello.node_id, labels, hello.running_version);
        tracing::info!(node_id = hello.node_id, "proxy connected");
        tokio::spawn(read_reports(
            self.shared.clone(),
            hello.node_id,
            connection,
            incoming,
        ));
        let current = self.shared.registry.subscribe();
        let updates =
            futures_util::stream::unfold((current, true), |(mut current, first)| async move {
                if !first {
                    current.changed().await.ok()?;
                }
                loop {
                    let record: Option<Arc<ConfigRecord>> = current.borrow_and_update().clone();
                    if let Some(record) = record {
                        return Some((Ok(update(&record)), (current, false)));
                    }
                    current.changed().await.ok()?;
                }
            });
        Ok(Response::new(Box::pin(updates)))
    }

    async fn fetch_module(
        &self,
        request: Request<api::FetchModuleRequest>,
    ) -> Result<Response<api::ModuleBytes>, Status> {
        self.shared.auth.check_grpc(Access::Read, &request)?;
        let sha256 = request.into_inner().sha256;
        let sha = sha256.clone();
        let bytes = blocking(&self.shared, move |r| r.module_bytes(&sha)).await?;
        Ok(Response::new(api::ModuleBytes { sha256, bytes }))
    }
}
