//! HTTP and gRPC callouts: the request a filter sends to a configured
//! cluster, the response its callback receives, and the per-context table of
//! pending callbacks.

use crate::abi::hostcalls;
use crate::dispatch::IdMap;
use crate::error::Result;
use crate::filter::HeaderList;
use std::time::Duration;
use wasp_abi::{BufferType, MapType};

/// Callout timeout used when a request does not set one.
pub const DEFAULT_CALLOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP request sent to a cluster with `http_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The cluster (upstream) name.
    pub cluster: String,
    /// Headers, including the pseudo-headers `:method`, `:path`, `:authority`.
    pub headers: HeaderList,
    /// The body (may be empty).
    pub body: Vec<u8>,
    /// Trailers (usually empty).
    pub trailers: HeaderList,
    /// How long the host waits before failing the call.
    pub timeout: Duration,
}

impl HttpRequest {
    /// A request with `method` and `path` to `cluster` (`:authority` is the cluster name).
    pub fn new(cluster: impl Into<String>, method: &str, path: &str) -> HttpRequest {
        let cluster = cluster.into();
        HttpRequest {
            headers: vec![
                (":method".into(), method.into()),
                (":path".into(), path.into()),
                (":authority".into(), cluster.clone()),
            ],
            cluster,
            body: Vec::new(),
            trailers: Vec::new(),
            timeout: DEFAULT_CALLOUT_TIMEOUT,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> HttpRequest {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> HttpRequest {
        self.body = body.into();
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> HttpRequest {
        self.timeout = timeout;
        self
    }

    pub(crate) fn dispatch(&self) -> Result<u32> {
        hostcalls::http_call(
            &self.cluster,
            &self.headers,
            &self.body,
            &self.trailers,
            millis(self.timeout),
        )
    }
}

/// The response to an HTTP callout. A call that failed (connection error,
/// timeout, unknown cluster) arrives with no headers: [`HttpResponse::status`]
/// is then `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpResponse {
    /// Response headers, including `:status`.
    pub headers: HeaderList,
    /// The response body.
    pub body: Vec<u8>,
    /// Response trailers.
    pub trailers: HeaderList,
}

impl HttpResponse {
    /// The HTTP status, or `None` when the call failed.
    pub fn status(&self) -> Option<u16> {
        self.header(":status")?.parse().ok()
    }

    /// A header's first value (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn read(num_headers: usize, body_size: usize, num_trailers: usize) -> HttpResponse {
        let mut response = HttpResponse::default();
        if num_headers > 0 {
            response.headers = read_map(MapType::HttpCallResponseHeaders);
        }
        if body_size > 0 {
            response.body = read_buffer(BufferType::HttpCallResponseBody, body_size);
        }
        if num_trailers > 0 {
            response.trailers = read_map(MapType::HttpCallResponseTrailers);
        }
        response
    }
}

/// A unary gRPC call sent to a cluster with `grpc_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcRequest {
    /// The cluster (upstream) name.
    pub cluster: String,
    /// Fully qualified service name, e.g. `wasp.test.Echo`.
    pub service: String,
    /// Method name, e.g. `Say`.
    pub method: String,
    /// Initial metadata.
    pub metadata: HeaderList,
    /// The serialized request message.
    pub message: Vec<u8>,
    /// How long the host waits before failing the call.
    pub timeout: Duration,
}

impl GrpcRequest {
    /// A call of `service`/`method` on `cluster` with a serialized message.
    pub fn new(
        cluster: &str,
        service: &str,
        method: &str,
        message: impl Into<Vec<u8>>,
    ) -> GrpcRequest {
        GrpcRequest {
            cluster: cluster.into(),
            service: service.into(),
            method: method.into(),
            metadata: Vec::new(),
            message: message.into(),
            timeout: DEFAULT_CALLOUT_TIMEOUT,
        }
    }

    pub(crate) fn dispatch(&self) -> Result<u32> {
        hostcalls::grpc_call(
            &self.cluster,
            &self.service,
            &self.method,
            &self.metadata,
            &self.message,
            millis(self.timeout),
        )
    }
}

/// The outcome of a unary gRPC callout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcResponse {
    /// The gRPC status code (0 = OK).
    pub status: u32,
    /// The status message the host reported (may be empty).
    pub message: String,
    /// Initial metadata received.
    pub initial_metadata: HeaderList,
    /// The response message (empty when the call failed).
    pub body: Vec<u8>,
    /// Trailing metadata received.
    pub trailing_metadata: HeaderList,
}

impl GrpcResponse {
    /// True when the call ended with status OK.
    pub fn is_ok(&self) -> bool {
        self.status == wasp_abi::GRPC_STATUS_OK
    }
}

fn millis(timeout: Duration) -> u32 {
    u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX)
}

fn read_map(map: MapType) -> HeaderList {
    hostcalls::get_map(map).unwrap_or_else(|e| {
        crate::log::report(&e);
        Vec::new()
    })
}

fn read_buffer(buffer: BufferType, size: usize) -> Vec<u8> {
    match hostcalls::get_buffer(buffer, 0, size) {
        Ok(bytes) => bytes.unwrap_or_default(),
        Err(e) => {
            crate::log::report(&e);
            Vec::new()
        }
    }
}

/// A pending HTTP callback of a context whose filter is `F` and context `C`.
pub(crate) type HttpCallback<F, C, O> = Box<dyn FnOnce(&mut F, &mut C, HttpResponse) -> O>;
/// A pending gRPC callback.
pub(crate) type GrpcCallback<F, C, O> = Box<dyn FnOnce(&mut F, &mut C, GrpcResponse) -> O>;

/// The callbacks a context is waiting on, by callout token, plus the gRPC
/// responses being assembled from their separate host callbacks.
pub(crate) struct Callouts<F, C, O> {
    http: IdMap<u32, HttpCallback<F, C, O>>,
    grpc: IdMap<u32, (GrpcCallback<F, C, O>, GrpcResponse)>,
}

impl<F, C, O> Default for Callouts<F, C, O> {
    fn default() -> Self {
        Callouts {
            http: IdMap::default(),
            grpc: IdMap::default(),
        }
    }
}

impl<F, C, O> Callouts<F, C, O> {
    pub(crate) fn add_http(&mut self, token: u32, callback: HttpCallback<F, C, O>) {
        self.http.insert(token, callback);
    }

    pub(crate) fn add_grpc(&mut self, token: u32, callback: GrpcCallback<F, C, O>) {
        self.grpc.insert(token, (callback, GrpcResponse::default()));
    }

    pub(crate) fn take_http(&mut self, token: u32) -> Option<HttpCallback<F, C, O>> {
        self.http.remove(&token)
    }

    pub(crate) fn forget_grpc(&mut self, token: u32) {
        self.grpc.remove(&token);
    }

    /// Records part of a gRPC response (metadata or message) as it arrives.
    pub(crate) fn grpc_part(&mut self, token: u32, apply: impl FnOnce(&mut GrpcResponse)) {
        if let Some((_, response)) = self.grpc.get_mut(&token) {
            apply(response);
        }
    }

    /// Completes a unary gRPC call that succeeded: the host delivers its one
    /// response message (`proxy_on_grpc_receive`) and no close, as Envoy does.
    pub(crate) fn complete_grpc(
        &mut self,
        token: u32,
        message: Vec<u8>,
    ) -> Option<(GrpcCallback<F, C, O>, GrpcResponse)> {
        let (callback, mut response) = self.grpc.remove(&token)?;
        response.body = message;
        response.status = wasp_abi::GRPC_STATUS_OK;
        Some((callback, response))
    }

    /// Completes a gRPC call that failed (`proxy_on_grpc_close`): its
    /// callback and the assembled response with the host's status.
    pub(crate) fn take_grpc(
        &mut self,
        token: u32,
        status: u32,
    ) -> Option<(GrpcCallback<F, C, O>, GrpcResponse)> {
        let (callback, mut response) = self.grpc.remove(&token)?;
        response.status = status;
        if let Ok((_, message)) = hostcalls::get_status() {
            response.message = message;
        }
        Some((callback, response))
    }
}

/// Reads gRPC metadata pushed by the host.
pub(crate) fn read_grpc_metadata(map: MapType) -> HeaderList {
    read_map(map)
}

/// Reads a gRPC message pushed by the host.
pub(crate) fn read_grpc_message(size: usize) -> Vec<u8> {
    read_buffer(BufferType::GrpcReceiveBuffer, size)
}
