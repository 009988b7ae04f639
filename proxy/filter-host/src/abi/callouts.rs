//! Hostcalls of callouts: `proxy_http_call` and the gRPC calls, sent through
//! the proxy's [`Callouts`](crate::Callouts); the answer is delivered to the
//! VM later by [`VmSlot::deliver`](crate::pool::VmSlot::deliver).
//!
//! As in Envoy (`proxy-wasm-cpp-host`'s `exports.cc` takes the root context
//! of the calling context for every callout hostcall), a callout belongs to
//! the plugin's root context whichever context made it: its outcome arrives
//! with the root context's id, and a filter that wants to act on the HTTP
//! stream that made the call first switches to it with
//! `proxy_set_effective_context`, as the SDKs do.
//!
//! gRPC runs as HTTP/2 POST `/<service>/<method>` with `content-type:
//! application/grpc` and length-prefixed messages. Streams opened with
//! `proxy_grpc_stream` send each `proxy_grpc_send` message as it comes and
//! deliver response events as they arrive
//! ([`VmSlot::deliver_stream_event`](crate::pool::VmSlot::deliver_stream_event)).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Caller;
use wasp_abi::Status;

use super::http::read_map;
use super::{ENV, HostImports};
use crate::callout::{CalloutRequest, Callouts};
use crate::limits::{self, Limit, callout_size};
use crate::memory::{CallResult, answer, misuse, read, read_str, write_u32};
use crate::state::{CalloutKind, GrpcStream, VmState};
use crate::stream::{HeaderList, header_get};

type C<'a> = Caller<'a, VmState>;

/// Appends one length-prefixed gRPC message to `out`.
fn frame(out: &mut Vec<u8>, message: &[u8]) {
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
}

/// Splits a gRPC response body into its messages (`None` if malformed or compressed).
pub(crate) fn parse_grpc_messages(body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut messages = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if rest.len() < 5 || rest[0] != 0 {
            return None;
        }
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let message = rest.get(5..5 + len)?;
        messages.push(message.to_vec());
        rest = &rest[5 + len..];
    }
    Some(messages)
}

/// The status for a callout to a cluster the proxy does not know, as Envoy
/// answers it (`source/extensions/common/wasm/context.cc`):
///
/// - `Context::httpCall` returns `WasmResult::BadArgument` when
///   `getThreadLocalCluster` finds no cluster;
/// - `Context::grpcCall` and `Context::grpcStream` take an argument that is
///   not a serialized `GrpcService` as a cluster name and return
///   `WasmResult::ParseFailure` when that cluster is not found (kept, says
///   the comment there, so that ABI 0.1.x callers need not change).
///
/// wasp always takes the argument as a cluster name, so gRPC gets
/// `ParseFailure`.
fn unknown_cluster_status(kind: CalloutKind) -> Status {
    match kind {
        CalloutKind::Http => Status::BadArgument,
        CalloutKind::GrpcCall | CalloutKind::GrpcStream => Status::ParseFailure,
    }
}

/// The proxy's callout service, once `cluster` is known to it: the one
/// cluster lookup of HTTP and gRPC callouts.
fn callouts_to(
    caller: &C<'_>,
    call: &str,
    cluster: &str,
    kind: CalloutKind,
) -> Result<Arc<dyn Callouts>, Status> {
    let Some(callouts) = caller.data().core.services.callouts() else {
        let argument = "upstream (no callout service)";
        return Err(misuse(caller, call, argument, Status::InternalFailure));
    };
    if !callouts.has_cluster(cluster) {
        let status = unknown_cluster_status(kind);
        return Err(misuse(caller, call, "upstream (unknown cluster)", status));
    }
    Ok(callouts)
}

/// Checks the plugin's callout limits before a new callout: calls in flight
/// and the request's size. Refusals answer `BadArgument` and are counted.
fn admit(caller: &C<'_>, call: &str, request: &CalloutRequest) -> Result<(), Status> {
    let core = &caller.data().core;
    let limits = &core.spec.limits;
    if caller.data().pending.len() as u64 >= limits.max_callouts_in_flight {
        return Err(limits::exceeded(core, call, Limit::CalloutsInFlight));
    }
    let size = callout_size(&request.headers, request.body.len(), &request.trailers);
    if size > limits.max_callout_request_bytes {
        return Err(limits::exceeded(core, call, Limit::CalloutRequestBytes));
    }
    Ok(())
}

/// Starts a callout and returns its token.
fn start(
    caller: &mut C<'_>,
    call: &str,
    mut request: CalloutRequest,
    kind: CalloutKind,
) -> Result<u32, Status> {
    let callouts = callouts_to(caller, call, &request.cluster, kind)?;
    admit(caller, call, &request)?;
    request.max_response_bytes = caller.data().core.spec.limits.max_callout_response_bytes;
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Err(misuse(caller, call, "runtime", Status::InternalFailure));
    };
    let state = caller.data_mut();
    let token = state.next_token;
    state.next_token = state.next_token.wrapping_add(1).max(1);
    state.pending.insert(token, kind);
    let (slot, generation) = (state.slot.clone(), state.generation);
    let future = callouts.call(request);
    runtime.spawn(async move {
        let result = future.await;
        if let Some(slot) = slot.upgrade() {
            slot.deliver(generation, token, result);
        }
    });
    Ok(token)
}

#[allow(clippy::too_many_arguments)]
fn http_call(
    mut caller: C<'_>,
    up_ptr: u32,
    up_len: u32,
    headers_ptr: u32,
    headers_len: u32,
    body_ptr: u32,
    body_len: u32,
    trailers_ptr: u32,
    trailers_len: u32,
    timeout_ms: u32,
    token_ptr: u32,
) -> CallResult {
    const CALL: &str = "proxy_http_call";
    answer(|| {
        let headers = read_map(&caller, CALL, "headers", headers_ptr, headers_len)?;
        for required in [":method", ":path", ":authority"] {
            if header_get(&headers, required).is_none() {
                let argument = "headers (missing :method, :path or :authority)";
                return Err(misuse(&caller, CALL, argument, Status::BadArgument).into());
            }
        }
        let request = CalloutRequest {
            cluster: read_str(&caller, CALL, "upstream", up_ptr, up_len)?,
            headers,
            body: read(&caller, CALL, "body", body_ptr, body_len)?.into(),
            trailers: read_map(&caller, CALL, "trailers", trailers_ptr, trailers_len)?,
            timeout: Duration::from_millis(u64::from(timeout_ms)),
            http2: false,
            max_response_bytes: 0,
        };
        let token = start(&mut caller, CALL, request, CalloutKind::Http)?;
        Ok(write_u32(
            &mut caller,
            CALL,
            "return_token",
            token_ptr,
            token,
        )?)
    })
}

/// The request of a gRPC call or stream, without its messages.
fn grpc_request(
    caller: &C<'_>,
    call: &str,
    args: [u32; 8],
    timeout: Duration,
) -> Result<CalloutRequest, Status> {
    let [
        up_ptr,
        up_len,
        svc_ptr,
        svc_len,
        m_ptr,
        m_len,
        md_ptr,
        md_len,
    ] = args;
    let cluster = read_str(caller, call, "upstream", up_ptr, up_len)?;
    let service = read_str(caller, call, "service_name", svc_ptr, svc_len)?;
    let method = read_str(caller, call, "method_name", m_ptr, m_len)?;
    let metadata = read_map(caller, call, "initial_metadata", md_ptr, md_len)
        .map_err(|_| Status::ParseFailure)?;
    let mut headers: HeaderList = vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), format!("/{service}/{method}").into_bytes()),
        (":authority".into(), cluster.clone().into_bytes()),
        (":scheme".into(), b"http".to_vec()),
        ("content-type".into(), b"application/grpc".to_vec()),
        ("te".into(), b"trailers".to_vec()),
    ];
    headers.extend(metadata);
    Ok(CalloutRequest {
        cluster,
        headers,
        body: bytes::Bytes::new(),
        trailers: Vec::new(),
        timeout,
        http2: true,
        max_response_bytes: 0,
    })
}

/// Opens a gRPC stream and returns its token.
fn open_stream(caller: &mut C<'_>, call: &str, mut request: CalloutRequest) -> Result<u32, Status> {
    let callouts = callouts_to(caller, call, &request.cluster, CalloutKind::GrpcStream)?;
    admit(caller, call, &request)?;
    request.max_response_bytes = caller.data().core.spec.limits.max_callout_response_bytes;
    let sent = callout_size(&request.headers, 0, &request.trailers);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Err(misuse(caller, call, "runtime", Status::InternalFailure));
    };
    let state = caller.data_mut();
    let token = state.next_token;
    state.next_token = state.next_token.wrapping_add(1).max(1);
    let (outgoing, requests) = tokio::sync::mpsc::unbounded_channel();
    let mut events = callouts.stream(request, requests);
    let (slot, generation) = (state.slot.clone(), state.generation);
    let task = runtime.spawn(async move {
        while let Some(event) = events.recv().await {
            let Some(slot) = slot.upgrade() else { return };
            slot.deliver_stream_event(generation, token, Some(event));
        }
        if let Some(slot) = slot.upgrade() {
            slot.deliver_stream_event(generation, token, None);
        }
    });
    state.pending.insert(token, CalloutKind::GrpcStream);
    state.grpc_streams.insert(
        token,
        GrpcStream {
            outgoing: Some(outgoing),
            task,
            inbound: Vec::new(),
            status: None,
            sent,
        },
    );
    Ok(token)
}

pub(super) fn register(imports: &mut HostImports) -> wasmtime::Result<()> {
    imports.func(ENV, "proxy_http_call", http_call)?;
    imports.func(
        ENV,
        "proxy_grpc_call",
        |mut c: C<'_>,
         up_ptr: u32,
         up_len: u32,
         svc_ptr: u32,
         svc_len: u32,
         m_ptr: u32,
         m_len: u32,
         md_ptr: u32,
         md_len: u32,
         msg_ptr: u32,
         msg_len: u32,
         timeout_ms: u32,
         token_ptr: u32|
         -> CallResult {
            const CALL: &str = "proxy_grpc_call";
            let timeout = Duration::from_millis(u64::from(timeout_ms));
            let args = [
                up_ptr, up_len, svc_ptr, svc_len, m_ptr, m_len, md_ptr, md_len,
            ];
            answer(|| {
                // A name that is not UTF-8 is a `ParseFailure` here, as for an
                // unknown cluster.
                let mut request = grpc_request(&c, CALL, args, timeout).map_err(|s| {
                    if s == Status::BadArgument {
                        Status::ParseFailure
                    } else {
                        s
                    }
                })?;
                let message = read(&c, CALL, "message", msg_ptr, msg_len)?;
                let mut body = Vec::with_capacity(message.len() + 5);
                frame(&mut body, &message);
                request.body = body.into();
                let token = start(&mut c, CALL, request, CalloutKind::GrpcCall)?;
                Ok(write_u32(
                    &mut c,
                    CALL,
                    "return_callout_id",
                    token_ptr,
                    token,
                )?)
            })
        },
    )?;
    imports.func(
        ENV,
        "proxy_grpc_stream",
        |mut c: C<'_>,
         up_ptr: u32,
         up_len: u32,
         svc_ptr: u32,
         svc_len: u32,
         m_ptr: u32,
         m_len: u32,
         md_ptr: u32,
         md_len: u32,
         token_ptr: u32|
         -> CallResult {
            const CALL: &str = "proxy_grpc_stream";
            let args = [
                up_ptr, up_len, svc_ptr, svc_len, m_ptr, m_len, md_ptr, md_len,
            ];
            answer(|| {
                let request = grpc_request(&c, CALL, args, Duration::ZERO)?;
                let token = open_stream(&mut c, CALL, request)?;
                Ok(write_u32(
                    &mut c,
                    CALL,
                    "return_callout_id",
                    token_ptr,
                    token,
                )?)
            })
        },
    )?;
    imports.func(
        ENV,
        "proxy_grpc_send",
        |mut c: C<'_>, token: u32, ptr: u32, len: u32, end_stream: u32| -> CallResult {
            const CALL: &str = "proxy_grpc_send";
            answer(|| {
                let message = read(&c, CALL, "message", ptr, len)?;
                let max = c.data().core.spec.limits.max_callout_request_bytes;
                let state = c.data_mut();
                let stream = state.grpc_streams.get_mut(&token).ok_or(Status::NotFound)?;
                let sent = stream.sent.saturating_add(message.len() as u64 + 5);
                if sent > max {
                    let core = Arc::clone(&state.core);
                    return Err(limits::exceeded(&core, CALL, Limit::CalloutRequestBytes).into());
                }
                stream.sent = sent;
                let Some(outgoing) = stream.outgoing.as_ref() else {
                    let argument = "token (stream already ended)";
                    return Err(misuse(&c, CALL, argument, Status::BadArgument).into());
                };
                let mut framed = Vec::with_capacity(message.len() + 5);
                frame(&mut framed, &message);
                let _ = outgoing.send(framed.into());
                if end_stream != 0 {
                    stream.outgoing = None;
                }
                Ok(())
            })
        },
    )?;
    imports.func(
        ENV,
        "proxy_grpc_close",
        |mut c: C<'_>, token: u32| -> CallResult {
            let state = c.data_mut();
            // A stream: end the filter's side and keep receiving.
            if let Some(stream) = state.grpc_streams.get_mut(&token) {
                stream.outgoing = None;
                return Ok(Status::Ok as u32);
            }
            // A call: stop delivering its answer.
            Ok(match state.pending.remove(&token) {
                Some(_) => Status::Ok as u32,
                None => Status::NotFound as u32,
            })
        },
    )?;
    imports.func(
        ENV,
        "proxy_grpc_cancel",
        |mut c: C<'_>, token: u32| -> CallResult {
            let state = c.data_mut();
            if let Some(stream) = state.grpc_streams.remove(&token) {
                stream.task.abort();
            }
            Ok(match state.pending.remove(&token) {
                Some(_) => Status::Ok as u32,
                None => Status::NotFound as u32,
            })
        },
    )?;
    Ok(())
}
