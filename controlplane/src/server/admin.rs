//! The `Admin` gRPC service: what `waspctl` calls. Registry calls run off
//! the async workers.

use tonic::{Request, Response, Status};
use wasp_controlplane_api as api;
use wasp_controlplane_api::admin_server::Admin;

use super::{Shared, blocking, convert};
use crate::CpError;
use crate::auth::Access;
use crate::registry::{Applied, Registry};

/// The metadata key carrying who makes a change.
pub const AUTHOR_HEADER: &str = "x-wasp-author";

/// The `Admin` service.
pub struct AdminService {
    shared: Shared,
}

impl AdminService {
    /// The service over `shared`.
    pub fn new(shared: Shared) -> Self {
        Self { shared }
    }
}

fn author<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get(AUTHOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn push_module(
        &self,
        request: Request<api::PushModuleRequest>,
    ) -> Result<Response<api::ModuleInfo>, Status> {
        self.shared.auth.check_grpc(Access::Write, &request)?;
        let req = request.into_inner();
        let record = blocking(&self.shared, move |r| {
            r.push_module(&req.name, &req.tag, &req.bytes, &req.signatures)
        })
        .await?;
        Ok(Response::new(convert::module(record)))
    }

    async fn list_modules(
        &self,
        request: Request<api::ListModulesRequest>,
    ) -> Result<Response<api::ListModulesResponse>, Status> {
        self.shared.auth.check_grpc(Access::Read, &request)?;
        let modules = blocking(&self.shared, Registry::modules).await?;
        Ok(Response::new(api::ListModulesResponse {
            modules: modules.into_iter().map(convert::module).collect(),
        }))
    }

    async fn remove_module(
        &self,
        request: Request<api::RemoveModuleRequest>,
    ) -> Result<Response<api::ModuleInfo>, Status> {
        self.shared.auth.check_grpc(Access::Write, &request)?;
        let req = request.into_inner();
        let removed = blocking(&self.shared, move |r| r.remove_module(&req.name, &req.tag)).await?;
        Ok(Response::new(convert::module(removed)))
    }

    async fn apply(
        &self,
        request: Request<api::ApplyRequest>,
    ) -> Result<Response<api::ApplyResponse>, Status> {
        self.shared.auth.check_grpc(Access::Write, &request)?;
        let author = author(&request);
        let req = request.into_inner();
        let selector = req.selector.into_iter().collect();
        let applied =
            self.shared
                .registry
                .apply(&req.document, selector, &author, &req.message, req.dry_run);
        let response = match applied {
            Ok(Applied::Valid) => Ok(0),
            Ok(Applied::Stored(record)) => Ok(record.version),
            Err(err) => Err(err),
        };
        apply_response(response)
    }

    async fn get_config(
        &self,
        request: Request<api::GetConfigRequest>,
    ) -> Result<Response<api::ConfigVersion>, Status> {
        self.shared.auth.check_grpc(Access::Read, &request)?;
        let version = request.into_inner().version;
        let record = blocking(&self.shared, move |r| {
            r.config((version != 0).then_some(version))
        })
        .await?;
        Ok(Response::new(convert::config(record, true)))
    }

    async fn list_configs(
        &self,
        request: Request<api::ListConfigsRequest>,
    ) -> Result<Response<api::ListConfigsResponse>, Status> {
        self.shared.auth.check_grpc(Access::Read, &request)?;
        let versions = blocking(&self.shared, Registry::configs).await?;
        Ok(Response::new(api::ListConfigsResponse {
            versions: versions
                .into_iter()
                .map(|r| convert::config(r, false))
                .collect(),
        }))
    }

    async fn rollback(
        &self,
        request: Request<api::RollbackRequest>,
    ) -> Result<Response<api::ApplyResponse>, Status> {
        self.shared.auth.check_grpc(Access::Write, &request)?;
        let author = author(&request);
        let version = request.into_inner().version;
        let rolled_back = blocking(&self.shared, move |r| {
            r.rollback((version != 0).then_some(version), &author)
        })
        .await;
        apply_response(rolled_back.map(|record| record.version))
    }

    async fn list_proxies(
        &self,
        request: Request<api::ListProxiesRequest>,
    ) -> Result<Response<api::ListProxiesResponse>, Status> {
        self.shared.auth.check_grpc(Access::Read, &request)?;
        Ok(Response::new(api::ListProxiesResponse {
            proxies: self
                .shared
                .proxies_view()
                .into_iter()
                .map(convert::proxy)
                .collect(),
        }))
    }

    async fn list_rollouts(
        &self,
        request: Request<api::ListRolloutsRequest>,
    ) -> Result<Response<api::ListRolloutsResponse>, Status> {
        self.shared.auth.check_grpc(Access::Read, &request)?;
        Ok(Response::new(api::ListRolloutsResponse {
            rollouts: self
                .shared
                .registry
                .rollouts()
                .into_iter()
                .map(convert::rollout)
                .collect(),
        }))
    }
}

/// The answer to an apply or a rollback: the stored version (0 when only
/// validated), or every error with its path; other errors are gRPC statuses.
fn apply_response(result: Result<u64, CpError>) -> Result<Response<api::ApplyResponse>, Status> {
    match result {
        Ok(version) => Ok(Response::new(api::ApplyResponse {
            errors: Vec::new(),
            version,
        })),
        Err(CpError::Invalid(errors)) => Ok(Response::new(api::ApplyResponse {
            errors: errors.into_iter().map(convert::field_error).collect(),
            version: 0,
        })),
        Err(err) => Err(err.status()),
    }
}
