//! The services the host needs from the proxy: HTTP (and, over HTTP/2, gRPC)
//! calls to a named cluster. The proxy implements [`Callouts`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::mpsc;

use crate::stream::HeaderList;

/// One outgoing call a filter asked for.
#[derive(Clone, Debug)]
pub struct CalloutRequest {
    /// The cluster to send it to.
    pub cluster: String,
    /// Request headers including the pseudo headers `:method`, `:path`,
    /// `:authority` (and optionally `:scheme`).
    pub headers: HeaderList,
    /// Request body.
    pub body: Bytes,
    /// Request trailers (sent only when non-empty).
    pub trailers: HeaderList,
    /// Give up after this long.
    pub timeout: Duration,
    /// Require HTTP/2 (gRPC).
    pub http2: bool,
    /// Most response bytes (headers, body, trailers) to buffer; past it the
    /// call fails with [`CalloutError::ResponseTooLarge`]. Zero: no limit.
    pub max_response_bytes: u64,
}

/// The answer to a callout.
#[derive(Clone, Debug, Default)]
pub struct CalloutResponse {
    /// Response headers with `:status` first.
    pub headers: HeaderList,
    /// The complete response body.
    pub body: Bytes,
    /// Response trailers.
    pub trailers: HeaderList,
}

/// Why a callout produced no response.
#[derive(Clone, Debug, Error)]
pub enum CalloutError {
    /// No such cluster.
    #[error("unknown cluster `{0}`")]
    UnknownCluster(String),
    /// The timeout elapsed.
    #[error("callout timed out")]
    Timeout,
    /// The response passed the plugin's `max_callout_response_bytes`.
    #[error("callout response larger than {0} bytes")]
    ResponseTooLarge(u64),
    /// The call failed (connect, reset, protocol error).
    #[error("callout failed: {0}")]
    Failed(String),
}

/// What arrives on a gRPC stream, in order: headers, data (gRPC-framed
/// bytes, split anywhere), trailers; the channel closing ends the stream.
#[derive(Clone, Debug)]
pub enum StreamEvent {
    /// Response headers (initial metadata) with `:status`.
    Headers(HeaderList),
    /// Response body bytes.
    Data(Bytes),
    /// Response trailers (trailing metadata with `grpc-status`).
    Trailers(HeaderList),
    /// The stream failed; nothing follows.
    Failed(CalloutError),
}

/// The future a callout returns.
pub type CalloutFuture =
    Pin<Box<dyn Future<Output = Result<CalloutResponse, CalloutError>> + Send>>;

/// Outgoing calls on behalf of filters, implemented by the proxy.
pub trait Callouts: Send + Sync + 'static {
    /// True when `cluster` names a configured cluster (checked when the filter
    /// calls, so an unknown name is reported to it at once).
    fn has_cluster(&self, cluster: &str) -> bool;

    /// Sends the request and returns the complete response.
    fn call(&self, request: CalloutRequest) -> CalloutFuture;

    /// Opens a streaming call: the request body is every chunk received on
    /// `outgoing` until its senders are gone; what comes back is reported on
    /// the returned channel. The default collects the body until `outgoing`
    /// closes and then sends it with [`Callouts::call`] (half-duplex); the
    /// proxy streams both ways.
    fn stream(
        self: Arc<Self>,
        mut request: CalloutRequest,
        mut outgoing: mpsc::UnboundedReceiver<Bytes>,
    ) -> mpsc::UnboundedReceiver<StreamEvent> {
        let (events, receiver) = mpsc::unbounded_channel();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let _ = events.send(StreamEvent::Failed(CalloutError::Failed(
                "no runtime".into(),
            )));
            return receiver;
        };
        runtime.spawn(async move {
            let mut body = Vec::new();
            while let Some(chunk) = outgoing.recv().await {
                body.extend_from_slice(&chunk);
            }
            request.body = body.into();
            match self.call(request).await {
                Ok(response) => {
                    let _ = events.send(StreamEvent::Headers(response.headers));
                    let _ = events.send(StreamEvent::Data(response.body));
                    let _ = events.send(StreamEvent::Trailers(response.trailers));
                }
                Err(err) => {
                    let _ = events.send(StreamEvent::Failed(err));
                }
            }
        });
        receiver
    }
}
