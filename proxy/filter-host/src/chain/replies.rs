//! The replies the chain sends itself: when a filter fails closed, buffers
//! too much body or closes the stream, and a local reply's gRPC form.

use bytes::Bytes;

use crate::headers::Headers;
use crate::stream::{HeaderList, LocalReply};
use crate::vm::Direction;

/// True when the request is gRPC (`content-type: application/grpc…`).
pub(super) fn is_grpc_request(headers: &Headers) -> bool {
    headers
        .get("content-type")
        .is_some_and(|v| v.starts_with(b"application/grpc"))
}

/// A local reply with a gRPC status to a gRPC request, as Envoy sends it: a
/// trailers-only response (`:status` 200, `content-type: application/grpc`,
/// `grpc-status`, the body as `grpc-message`) with no body.
pub(super) fn grpc_trailers_only(reply: LocalReply, grpc: u32) -> LocalReply {
    let mut headers: HeaderList = reply
        .headers
        .into_iter()
        .filter(|(k, _)| k != "content-type")
        .collect();
    headers.push(("content-type".into(), b"application/grpc".to_vec()));
    headers.push(("grpc-status".into(), grpc.to_string().into_bytes()));
    if !reply.body.is_empty() {
        headers.push(("grpc-message".into(), grpc_message(&reply.body)));
    }
    LocalReply {
        status: 200,
        headers,
        body: Bytes::new(),
        details: reply.details,
        grpc_status: None,
    }
}

/// `grpc-message` as the gRPC spec encodes it: bytes outside printable ASCII,
/// and `%`, percent-encoded.
fn grpc_message(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for &byte in text {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte);
        } else {
            out.extend_from_slice(format!("%{byte:02X}").as_bytes());
        }
    }
    out
}

pub(super) fn failure_reply(plugin: &str) -> LocalReply {
    LocalReply {
        status: 503,
        headers: vec![("content-type".into(), b"text/plain".to_vec())],
        body: format!("filter plugin `{plugin}` failed\n").into(),
        details: "wasm_fail_closed".into(),
        grpc_status: None,
    }
}

/// What a request gets when a filter buffers more body than its limit, as
/// in Envoy: 413 for a request body, 500 for a response body.
pub(super) fn too_large_reply(dir: Direction) -> LocalReply {
    let (status, body, details) = match dir {
        Direction::Request => (413, "Payload Too Large\n", "request_payload_too_large"),
        Direction::Response => (500, "Internal Server Error\n", "response_payload_too_large"),
    };
    LocalReply {
        status,
        headers: vec![("content-type".into(), b"text/plain".to_vec())],
        body: body.into(),
        details: details.into(),
        grpc_status: None,
    }
}

pub(super) fn closed_reply(plugin: &str) -> LocalReply {
    LocalReply {
        status: 503,
        headers: vec![("content-type".into(), b"text/plain".to_vec())],
        body: format!("stream closed by filter plugin `{plugin}`\n").into(),
        details: "wasm_close_stream".into(),
        grpc_status: None,
    }
}
