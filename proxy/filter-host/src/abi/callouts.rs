//! Hostcalls of callouts: `proxy_http_call` and the gRPC calls, sent through
//! the proxy's [`Callouts`](crate::Callouts); the answer is delivered to the
//! VM later by [`VmSlot::deliver`](crate::pool::VmSlot::deliver).
//!
//! gRPC runs as HTTP/2 POST `/<service>/<method>` with `content-type:
//! application/grpc` and length-prefixed messages. Streams opened with
//! `proxy_grpc_stream` are half-duplex: messages are collected until the
//! filter ends its side (`end_stream` or `proxy_grpc_close`), then sent in one
//! request whose response messages are delivered one by one.

use std::time::Duration;

use wasmtime::Caller;
use wasp_abi::Status;

use super::http::read_map;
use super::{ENV, HostImports};
use crate::callout::CalloutRequest;
use crate::memory::{CallResult, misuse, read, read_str, status, write_u32};
use crate::state::{CalloutKind, PendingCallout, VmState};
use crate::stream::{HeaderList, header_get};

type C<'a> = Caller<'a, VmState>;

/// Timeout of a gRPC stream (the ABI gives none).
const GRPC_STREAM_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Starts a callout and returns its token.
fn start(
    caller: &mut C<'_>,
    call: &str,
    request: CalloutRequest,
    kind: CalloutKind,
    preset: Option<u32>,
) -> Result<u32, Status> {
    let state = caller.data();
    let Some(callouts) = state.core.services.callouts() else {
        return Err(misuse(
            caller,
            call,
            "upstream (no callout service)",
            Status::InternalFailure,
        ));
    };
    if !callouts.has_cluster(&request.cluster) {
        return Err(misuse(
            caller,
            call,
            "upstream (unknown cluster)",
            Status::BadArgument,
        ));
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Err(misuse(caller, call, "runtime", Status::InternalFailure));
    };
    let state = caller.data_mut();
    let token = preset.unwrap_or_else(|| {
        let token = state.next_token;
        state.next_token = state.next_token.wrapping_add(1).max(1);
        token
    });
    state.pending.insert(
        token,
        PendingCallout {
            context: state.effective_context,
            kind,
        },
    );
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
    let request = (|| {
        let headers = read_map(&caller, CALL, "headers", headers_ptr, headers_len)?;
        for required in [":method", ":path", ":authority"] {
            if header_get(&headers, required).is_none() {
                return Err(misuse(
                    &caller,
                    CALL,
                    "headers (missing :method, :path or :authority)",
                    Status::BadArgument,
                ));
            }
        }
        Ok(CalloutRequest {
            cluster: read_str(&caller, CALL, "upstream", up_ptr, up_len)?,
            headers,
            body: read(&caller, CALL, "body", body_ptr, body_len)?.into(),
            trailers: read_map(&caller, CALL, "trailers", trailers_ptr, trailers_len)?,
            timeout: Duration::from_millis(u64::from(timeout_ms)),
            http2: false,
        })
    })();
    let token = match request.and_then(|r| start(&mut caller, CALL, r, CalloutKind::Http, None)) {
        Ok(token) => token,
        Err(status) => return Ok(status as u32),
    };
    Ok(status(write_u32(
        &mut caller,
        CALL,
        "return_token",
        token_ptr,
        token,
    )))
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
    })
}

fn sent_token(
    caller: &mut C<'_>,
    call: &str,
    token: Result<u32, Status>,
    token_ptr: u32,
) -> CallResult {
    match token {
        Ok(token) => Ok(status(write_u32(
            caller,
            call,
            "return_callout_id",
            token_ptr,
            token,
        ))),
        Err(status) => Ok(status as u32),
    }
}

fn flush_stream(caller: &mut C<'_>, call: &str, token: u32) -> Result<(), Status> {
    let Some(request) = caller.data_mut().grpc_streams.remove(&token) else {
        return Err(Status::NotFound);
    };
    start(caller, call, request, CalloutKind::GrpcStream, Some(token)).map(|_| ())
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
            let token = grpc_request(
                &c,
                CALL,
                [
                    up_ptr, up_len, svc_ptr, svc_len, m_ptr, m_len, md_ptr, md_len,
                ],
                timeout,
            )
            .and_then(|mut request| {
                let message = read(&c, CALL, "message", msg_ptr, msg_len)?;
                let mut body = Vec::with_capacity(message.len() + 5);
                frame(&mut body, &message);
                request.body = body.into();
                Ok(request)
            })
            .and_then(|request| start(&mut c, CALL, request, CalloutKind::GrpcCall, None))
            .map_err(|s| {
                if s == Status::BadArgument {
                    Status::ParseFailure
                } else {
                    s
                }
            });
            sent_token(&mut c, CALL, token, token_ptr)
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
            let token = grpc_request(&c, CALL, args, GRPC_STREAM_TIMEOUT).and_then(|request| {
                let known = c
                    .data()
                    .core
                    .services
                    .callouts()
                    .is_some_and(|s| s.has_cluster(&request.cluster));
                if !known {
                    return Err(misuse(
                        &c,
                        CALL,
                        "upstream (unknown cluster)",
                        Status::ParseFailure,
                    ));
                }
                let state = c.data_mut();
                let token = state.next_token;
                state.next_token = state.next_token.wrapping_add(1).max(1);
                state.grpc_streams.insert(token, request);
                Ok(token)
            });
            sent_token(&mut c, CALL, token, token_ptr)
        },
    )?;
    imports.func(
        ENV,
        "proxy_grpc_send",
        |mut c: C<'_>, token: u32, ptr: u32, len: u32, end_stream: u32| -> CallResult {
            const CALL: &str = "proxy_grpc_send";
            let message = match read(&c, CALL, "message", ptr, len) {
                Ok(message) => message,
                Err(status) => return Ok(status as u32),
            };
            let Some(request) = c.data_mut().grpc_streams.get_mut(&token) else {
                return Ok(Status::NotFound as u32);
            };
            let mut body = request.body.to_vec();
            frame(&mut body, &message);
            request.body = body.into();
            if end_stream != 0 {
                return Ok(status(flush_stream(&mut c, CALL, token)));
            }
            Ok(Status::Ok as u32)
        },
    )?;
    imports.func(
        ENV,
        "proxy_grpc_close",
        |mut c: C<'_>, token: u32| -> CallResult {
            if c.data().grpc_streams.contains_key(&token) {
                return Ok(status(flush_stream(&mut c, "proxy_grpc_close", token)));
            }
            // Closing a call or a stream already sent: stop delivering to it.
            Ok(match c.data_mut().pending.remove(&token) {
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
            let known = state.grpc_streams.remove(&token).is_some()
                | state.pending.remove(&token).is_some();
            Ok(if known {
                Status::Ok as u32
            } else {
                Status::NotFound as u32
            })
        },
    )?;
    Ok(())
}
