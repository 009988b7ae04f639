//! HTTP and gRPC callouts of filters, sent to the snapshot's clusters through
//! their connection pools.

use std::sync::Weak;

use http::Response;
use http_body_util::{BodyExt, Full};
use wasp_filter_host::{CalloutError, CalloutFuture, CalloutRequest, CalloutResponse, Callouts};

use super::convert;
use crate::server::ProxyState;
use crate::upstream::Outcome;

/// Sends callouts to clusters of the current snapshot.
pub struct ClusterCallouts {
    state: Weak<ProxyState>,
}

impl ClusterCallouts {
    /// Callouts through `state`'s current snapshot.
    pub fn new(state: Weak<ProxyState>) -> Self {
        Self { state }
    }
}

fn pseudo<'a>(request: &'a CalloutRequest, name: &str) -> Option<&'a [u8]> {
    request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

async fn send(
    state: Weak<ProxyState>,
    request: CalloutRequest,
) -> Result<CalloutResponse, CalloutError> {
    let state = state
        .upgrade()
        .ok_or_else(|| CalloutError::Failed("proxy is stopping".into()))?;
    let cluster = state
        .snapshot
        .load()
        .clusters
        .get(&request.cluster)
        .cloned()
        .ok_or_else(|| CalloutError::UnknownCluster(request.cluster.clone()))?;
    let endpoint = cluster
        .pick(None, &[])
        .map_err(|e| CalloutError::Failed(e.to_string()))?;
    let connection = cluster
        .acquire(&endpoint)
        .await
        .map_err(|e| CalloutError::Failed(e.to_string()))?;
    let method = pseudo(&request, ":method")
        .and_then(|m| http::Method::from_bytes(m).ok())
        .unwrap_or(http::Method::GET);
    let path = pseudo(&request, ":path")
        .and_then(|p| http::uri::PathAndQuery::try_from(p).ok())
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let authority =
        pseudo(&request, ":authority").and_then(|a| http::HeaderValue::from_bytes(a).ok());
    let mut trailers =
        (!request.trailers.is_empty()).then(|| convert::header_map(&request.trailers));
    let body = Full::new(request.body.clone())
        .with_trailers(async move { trailers.take().map(Ok) })
        .map_err(|never| match never {})
        .boxed_unsync();
    let upstream = crate::http::forward::build_request(
        &method,
        convert::header_map(&request.headers),
        &path,
        authority.as_ref(),
        endpoint.addr,
        cluster.protocol(),
        body,
    );
    let _active = endpoint.begin();
    let response: Response<hyper::body::Incoming> = connection
        .send(upstream)
        .await
        .map_err(|e| CalloutError::Failed(e.to_string()))?;
    cluster.report(
        &endpoint,
        if response.status().is_server_error() {
            Outcome::Failure
        } else {
            Outcome::Success
        },
    );
    let (parts, body) = response.into_parts();
    let collected = body
        .collect()
        .await
        .map_err(|e| CalloutError::Failed(e.to_string()))?;
    let trailers = collected
        .trailers()
        .map(convert::trailer_list)
        .unwrap_or_default();
    Ok(CalloutResponse {
        headers: convert::response_list(&parts),
        body: collected.to_bytes(),
        trailers,
    })
}

impl Callouts for ClusterCallouts {
    fn has_cluster(&self, cluster: &str) -> bool {
        self.state
            .upgrade()
            .is_some_and(|state| state.snapshot.load().clusters.contains_key(cluster))
    }

    fn call(&self, request: CalloutRequest) -> CalloutFuture {
        let state = self.state.clone();
        Box::pin(async move {
            let timeout = request.timeout;
            if timeout.is_zero() {
                return send(state, request).await;
            }
            tokio::time::timeout(timeout, send(state, request))
                .await
                .unwrap_or(Err(CalloutError::Timeout))
        })
    }
}
