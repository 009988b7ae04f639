//! The attributes of one HTTP stream: what the request and response headers
//! say, what the connection and the proxy's [`StreamFacts`] know, encoded as
//! Envoy's Wasm host encodes them.
//!
//! [`StreamFacts`]: crate::facts::StreamFacts

use std::time::UNIX_EPOCH;

use super::{Value, int};
use crate::headers::Headers;
use crate::stream::StreamData;

/// Envoy's `HeaderMap::byteSize`: names and values of every entry.
fn byte_size(headers: &Headers) -> u64 {
    headers.byte_size() as u64
}

/// The response status, once the response headers are known.
fn status(data: &StreamData) -> Option<u16> {
    let status = data.response_headers.get(":status")?;
    std::str::from_utf8(status).ok()?.parse().ok()
}

/// Envoy's mapping of an HTTP status to a gRPC status, for responses that
/// carry no `grpc-status`.
fn http_to_grpc(status: u16) -> i64 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

fn grpc_status(headers: &Headers) -> Option<i64> {
    std::str::from_utf8(headers.get("grpc-status")?)
        .ok()?
        .parse()
        .ok()
}

/// Whether `segs` names an attribute of the stream that the proxy owns,
/// known in this phase or not: such a path never reads or writes filter
/// state, so a filter cannot pose as the proxy (a `source.principal` set by
/// a filter on a plain-text connection). Filters publish under names of
/// their own, such as `request.auth.principal`.
pub(super) fn owned(segs: &[&str]) -> bool {
    matches!(
        segs,
        [
            "request",
            "path"
                | "url_path"
                | "host"
                | "scheme"
                | "method"
                | "id"
                | "protocol"
                | "referer"
                | "useragent"
                | "query"
                | "time"
                | "duration"
                | "size"
                | "total_size"
        ] | [
            "response",
            "code" | "code_details" | "flags" | "grpc_status" | "size" | "total_size"
        ] | ["request", "headers", _, ..]
            | ["response", "headers" | "trailers", _, ..]
            | ["source" | "destination", "address" | "port"]
            | ["source", "principal"]
            | [
                "connection",
                "id" | "mtls"
                    | "requested_server_name"
                    | "tls_version"
                    | "uri_san_peer_certificate"
                    | "uri_san_local_certificate"
                    | "subject_peer_certificate"
                    | "sha256_peer_certificate_digest"
            ]
            | [
                "upstream",
                "address"
                    | "port"
                    | "local_address"
                    | "transport_failure_reason"
                    | "tls_version"
                    | "subject_peer_certificate"
            ]
            | ["xds", ..]
            | ["node", ..]
            | ["plugin_name" | "plugin_root_id" | "plugin_vm_id"]
    )
}

/// A stream attribute, or `None` when it is unknown (in this phase).
pub(super) fn property(data: &StreamData, segs: &[&str]) -> Option<Value> {
    match number(data, segs) {
        Some(number) => Some(int(number)),
        None => bytes(data, segs).map(Value::Bytes),
    }
}

/// A numeric stream attribute, or `None` when it is unknown (in this
/// phase) or `segs` names no number.
fn number(data: &StreamData, segs: &[&str]) -> Option<i64> {
    let info = &data.info;
    let facts = &info.facts;
    match segs {
        ["request", "time"] => {
            let since = info.start.duration_since(UNIX_EPOCH).ok()?;
            Some(since.as_nanos() as i64)
        }
        ["request", "duration"] => Some(data.ended?.as_nanos() as i64),
        ["request", "size"] => match data.request_headers.get("content-length") {
            Some(length) => std::str::from_utf8(length).ok()?.trim().parse().ok(),
            None => Some(facts.request_bytes() as i64),
        },
        ["request", "total_size"] => {
            Some((facts.request_bytes() + byte_size(&data.request_headers)) as i64)
        }
        ["response", "code"] => Some(i64::from(status(data)?)),
        ["response", "flags"] => Some(facts.flags() as i64),
        ["response", "grpc_status"] => Some(
            grpc_status(&data.response_trailers)
                .or_else(|| grpc_status(&data.response_headers))
                .or_else(|| status(data).map(http_to_grpc))?,
        ),
        ["response", "size"] => Some(facts.response_bytes() as i64),
        ["response", "total_size"] => Some(
            (facts.response_bytes()
                + byte_size(&data.response_headers)
                + byte_size(&data.response_trailers)) as i64,
        ),
        ["source", "port"] => Some(i64::from(info.source.port())),
        ["destination", "port"] => Some(i64::from(info.destination.port())),
        ["connection", "id"] => Some(info.connection_id as i64),
        ["upstream", "port"] => Some(i64::from(facts.known().upstream.as_ref()?.address.port())),
        _ => None,
    }
}

/// A stream attribute that is not a number.
fn bytes(data: &StreamData, segs: &[&str]) -> Option<Vec<u8>> {
    let req = |name: &str| data.request_headers.get(name).map(<[u8]>::to_vec);
    let info = &data.info;
    let facts = &info.facts;
    let tls = info.tls.as_ref();
    Some(match segs {
        ["request", "path"] => req(":path")?,
        ["request", "url_path"] => {
            let path = req(":path")?;
            let end = path.iter().position(|b| *b == b'?').unwrap_or(path.len());
            path[..end].to_vec()
        }
        ["request", "host"] => req(":authority").or_else(|| req("host"))?,
        ["request", "scheme"] => req(":scheme")?,
        ["request", "method"] => req(":method")?,
        ["request", "id"] => info.request_id.as_bytes().to_vec(),
        ["request", "protocol"] => info.protocol.as_bytes().to_vec(),
        ["request", "referer"] => req("referer")?,
        ["request", "useragent"] => req("user-agent")?,
        ["request", "query"] => {
            let path = req(":path")?;
            let Some(start) = path.iter().position(|b| *b == b'?') else {
                return Some(Vec::new());
            };
            let query = &path[start + 1..];
            let end = query.iter().position(|b| *b == b'#').unwrap_or(query.len());
            query[..end].to_vec()
        }
        ["request", "headers", name] => req(name)?,
        ["response", "code_details"] => facts.known().code_details.clone()?.into_bytes(),
        ["response", "headers", name] => data.response_headers.get(name)?.to_vec(),
        ["response", "trailers", name] => data.response_trailers.get(name)?.to_vec(),
        ["source", "address"] => info.source.to_string().into_bytes(),
        ["source", "principal"] => tls?.peer_uri_sans.first()?.as_bytes().to_vec(),
        ["destination", "address"] => info.destination.to_string().into_bytes(),
        ["connection", "mtls"] => vec![u8::from(tls.is_some_and(|t| !t.peer_uri_sans.is_empty()))],
        ["connection", "requested_server_name"] => tls
            .and_then(|t| t.server_name.clone())
            .unwrap_or_default()
            .into_bytes(),
        ["connection", "tls_version"] => tls?.version.clone()?.into_bytes(),
        ["connection", "uri_san_peer_certificate"] => {
            tls?.peer_uri_sans.first()?.as_bytes().to_vec()
        }
        ["connection", "uri_san_local_certificate"] => {
            tls?.local_uri_sans.first()?.as_bytes().to_vec()
        }
        ["connection", "subject_peer_certificate"] => tls?.peer_subject.clone()?.into_bytes(),
        ["connection", "sha256_peer_certificate_digest"] => {
            tls?.peer_cert_sha256.clone()?.into_bytes()
        }
        ["upstream", field] => upstream(data, field)?,
        ["xds", "cluster_name"] => facts.known().cluster_name.clone()?.into_bytes(),
        ["xds", "route_name"] => facts.known().route_name.clone()?.into_bytes(),
        // `xds.upstream_host_metadata`: endpoints carry no metadata, and
        // Envoy answers `NotFound` for a host without metadata.
        _ => return None,
    })
}

/// `upstream.<field>`: known once the request was sent to an endpoint.
/// Upstream connections are plain text, so the TLS fields are missing.
fn upstream(data: &StreamData, field: &str) -> Option<Vec<u8>> {
    let known = data.info.facts.known();
    let upstream = known.upstream.as_ref()?;
    Some(match field {
        "address" => upstream.address.to_string().into_bytes(),
        "local_address" => upstream.local_address?.to_string().into_bytes(),
        "transport_failure_reason" => upstream.transport_failure_reason.clone().into_bytes(),
        _ => return None,
    })
}
