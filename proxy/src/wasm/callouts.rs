//! HTTP and gRPC callouts of filters, sent to the snapshot's clusters through
//! their connection pools. gRPC streams are full duplex: request messages are
//! sent as the filter produces them, response frames reported as they come.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::mpsc;
use wasp_filter_host::{
    CalloutError, CalloutFuture, CalloutRequest, CalloutResponse, Callouts, StreamEvent,
};

use super::convert;
use crate::body::{BoxError, UpstreamBody};
use crate::upstream::{Cluster, Outcome, request};

/// Where callouts find their clusters: the running snapshot's.
pub trait ClusterLookup: Send + Sync {
    /// The cluster named `name`, if the running configuration has one.
    fn cluster(&self, name: &str) -> Option<Arc<Cluster>>;
}

/// Sends callouts to the clusters `lookup` finds.
pub struct ClusterCallouts {
    lookup: Weak<dyn ClusterLookup>,
}

impl ClusterCallouts {
    /// Callouts to the clusters of `lookup` (weak: callouts fail once the
    /// proxy stops).
    pub fn new(lookup: Weak<dyn ClusterLookup>) -> Self {
        Self { lookup }
    }
}

fn pseudo<'a>(request: &'a CalloutRequest, name: &str) -> Option<&'a [u8]> {
    request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// Sends `request` (head) with `body` to a healthy endpoint of its cluster.
async fn exchange(
    lookup: &Weak<dyn ClusterLookup>,
    request: &CalloutRequest,
    body: UpstreamBody,
) -> Result<Response<Incoming>, CalloutError> {
    let failed = |e: &dyn std::fmt::Display| CalloutError::Failed(e.to_string());
    let lookup = lookup
        .upgrade()
        .ok_or_else(|| CalloutError::Failed("proxy is stopping".into()))?;
    let cluster = lookup
        .cluster(&request.cluster)
        .ok_or_else(|| CalloutError::UnknownCluster(request.cluster.clone()))?;
    let endpoint = cluster.pick(None, &[]).map_err(|e| failed(&e))?;
    let connection = cluster.acquire(&endpoint).await.map_err(|e| failed(&e))?;
    let method = pseudo(request, ":method")
        .and_then(|m| http::Method::from_bytes(m).ok())
        .unwrap_or(http::Method::GET);
    let path = pseudo(request, ":path")
        .and_then(|p| http::uri::PathAndQuery::try_from(p).ok())
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let authority =
        pseudo(request, ":authority").and_then(|a| http::HeaderValue::from_bytes(a).ok());
    let upstream = request::build(
        &method,
        convert::header_map(&request.headers),
        &path,
        authority.as_ref(),
        endpoint.addr,
        cluster.protocol(),
        body,
    );
    let _active = endpoint.begin();
    let (response, _local) = connection.send(upstream).await.map_err(|e| failed(&e))?;
    let outcome = if response.status().is_server_error() {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    cluster.report(&endpoint, outcome);
    Ok(response)
}

/// A unary callout: the whole response.
async fn send(
    lookup: Weak<dyn ClusterLookup>,
    request: CalloutRequest,
) -> Result<CalloutResponse, CalloutError> {
    let mut trailers =
        (!request.trailers.is_empty()).then(|| convert::header_map(&request.trailers));
    let body = Full::new(request.body.clone())
        .with_trailers(async move { trailers.take().map(Ok) })
        .map_err(|never| match never {})
        .boxed_unsync();
    let response = exchange(&lookup, &request, body).await?;
    let (parts, body) = response.into_parts();
    // Never buffer more than the filter may receive (`max_response_bytes`).
    let max = request.max_response_bytes;
    let limit = usize::try_from(max)
        .ok()
        .filter(|&m| m > 0)
        .unwrap_or(usize::MAX);
    let collected = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                CalloutError::ResponseTooLarge(max)
            } else {
                CalloutError::Failed(e.to_string())
            }
        })?;
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

/// A request body fed from a channel; it ends when the senders are gone.
struct ChannelBody {
    chunks: mpsc::UnboundedReceiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// A streaming callout: reports the response head, each data frame and the
/// trailers on `events` as they arrive.
async fn stream(
    lookup: Weak<dyn ClusterLookup>,
    request: CalloutRequest,
    outgoing: mpsc::UnboundedReceiver<Bytes>,
    events: mpsc::UnboundedSender<StreamEvent>,
) {
    let body = ChannelBody { chunks: outgoing }.boxed_unsync();
    let response = match exchange(&lookup, &request, body).await {
        Ok(response) => response,
        Err(err) => {
            let _ = events.send(StreamEvent::Failed(err));
            return;
        }
    };
    let (parts, mut body) = response.into_parts();
    let _ = events.send(StreamEvent::Headers(convert::response_list(&parts)));
    while let Some(frame) = body.frame().await {
        let event = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => StreamEvent::Data(data),
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => StreamEvent::Trailers(convert::trailer_list(&trailers)),
                    Err(_) => continue,
                },
            },
            Err(err) => StreamEvent::Failed(CalloutError::Failed(err.to_string())),
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

impl Callouts for ClusterCallouts {
    fn has_cluster(&self, cluster: &str) -> bool {
        self.lookup
            .upgrade()
            .is_some_and(|lookup| lookup.cluster(cluster).is_some())
    }

    fn call(&self, request: CalloutRequest) -> CalloutFuture {
        let lookup = self.lookup.clone();
        Box::pin(async move {
            let timeout = request.timeout;
            if timeout.is_zero() {
                return send(lookup, request).await;
            }
            tokio::time::timeout(timeout, send(lookup, request))
                .await
                .unwrap_or(Err(CalloutError::Timeout))
        })
    }

    fn stream(
        self: Arc<Self>,
        request: CalloutRequest,
        outgoing: mpsc::UnboundedReceiver<Bytes>,
    ) -> mpsc::UnboundedReceiver<StreamEvent> {
        let (events, receiver) = mpsc::unbounded_channel();
        tokio::spawn(stream(self.lookup.clone(), request, outgoing, events));
        receiver
    }
}
