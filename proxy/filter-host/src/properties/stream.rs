//! The attributes of one HTTP stream: what the request and response headers
//! say, what the connection and the proxy's [`StreamFacts`] know, encoded as
//! Envoy's Wasm host encodes them.
//!
//! [`StreamFacts`]: crate::facts::StreamFacts

use std::time::UNIX_EPOCH;

use super::attrs::Attr;
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
    Attr::of_segments(segs).is_some()
        || matches!(
            segs,
            ["request", "headers", _, ..]
                | ["response", "headers" | "trailers", _, ..]
                | ["xds", ..]
                | ["node", ..]
                | ["plugin_name" | "plugin_root_id" | "plugin_vm_id"]
        )
}

/// A stream attribute, or `None` when it is unknown (in this phase).
pub(super) fn property(data: &StreamData, segs: &[&str]) -> Option<Value> {
    if let Some(attr) = Attr::of_segments(segs) {
        return attribute(data, attr);
    }
    let value = match segs {
        ["request", "headers", name] => data.request_headers.get(name)?,
        ["response", "headers", name] => data.response_headers.get(name)?,
        ["response", "trailers", name] => data.response_trailers.get(name)?,
        // `xds.upstream_host_metadata`: endpoints carry no metadata, and
        // Envoy answers `NotFound` for a host without metadata.
        _ => return None,
    };
    Some(Value::Bytes(value.to_vec()))
}

/// A fixed stream attribute, or `None` when it is unknown (in this phase).
pub(super) fn attribute(data: &StreamData, attr: Attr) -> Option<Value> {
    let req = |name: &str| data.request_headers.get(name).map(<[u8]>::to_vec);
    let info = &data.info;
    let facts = &info.facts;
    let tls = info.tls.as_ref();
    let number = |n: i64| Some(int(n));
    let bytes = |b: Vec<u8>| Some(Value::Bytes(b));
    match attr {
        Attr::RequestTime => {
            let since = info.start.duration_since(UNIX_EPOCH).ok()?;
            number(since.as_nanos() as i64)
        }
        Attr::RequestDuration => number(data.ended?.as_nanos() as i64),
        Attr::RequestSize => match data.request_headers.get("content-length") {
            Some(length) => number(std::str::from_utf8(length).ok()?.trim().parse().ok()?),
            None => number(facts.request_bytes() as i64),
        },
        Attr::RequestTotalSize => {
            number((facts.request_bytes() + byte_size(&data.request_headers)) as i64)
        }
        Attr::ResponseCode => number(i64::from(status(data)?)),
        Attr::ResponseFlags => number(facts.flags() as i64),
        Attr::ResponseGrpcStatus => number(
            grpc_status(&data.response_trailers)
                .or_else(|| grpc_status(&data.response_headers))
                .or_else(|| status(data).map(http_to_grpc))?,
        ),
        Attr::ResponseSize => number(facts.response_bytes() as i64),
        Attr::ResponseTotalSize => number(
            (facts.response_bytes()
                + byte_size(&data.response_headers)
                + byte_size(&data.response_trailers)) as i64,
        ),
        Attr::SourcePort => number(i64::from(info.source.port())),
        Attr::DestinationPort => number(i64::from(info.destination.port())),
        Attr::ConnectionId => number(info.connection_id as i64),
        Attr::UpstreamPort => number(i64::from(facts.known().upstream.as_ref()?.address.port())),
        Attr::RequestPath => bytes(req(":path")?),
        Attr::RequestUrlPath => {
            let path = req(":path")?;
            let end = path.iter().position(|b| *b == b'?').unwrap_or(path.len());
            bytes(path[..end].to_vec())
        }
        Attr::RequestHost => bytes(req(":authority").or_else(|| req("host"))?),
        Attr::RequestScheme => bytes(req(":scheme")?),
        Attr::RequestMethod => bytes(req(":method")?),
        Attr::RequestId => bytes(info.request_id.as_bytes().to_vec()),
        Attr::RequestProtocol => bytes(info.protocol.as_bytes().to_vec()),
        Attr::RequestReferer => bytes(req("referer")?),
        Attr::RequestUseragent => bytes(req("user-agent")?),
        Attr::RequestQuery => {
            let path = req(":path")?;
            let Some(start) = path.iter().position(|b| *b == b'?') else {
                return bytes(Vec::new());
            };
            let query = &path[start + 1..];
            let end = query.iter().position(|b| *b == b'#').unwrap_or(query.len());
            bytes(query[..end].to_vec())
        }
        Attr::ResponseCodeDetails => bytes(facts.known().code_details.clone()?.into_bytes()),
        Attr::SourceAddress => bytes(info.source.to_string().into_bytes()),
        Attr::SourcePrincipal | Attr::ConnectionUriSanPeerCertificate => {
            bytes(tls?.peer_uri_sans.first()?.as_bytes().to_vec())
        }
        Attr::DestinationAddress => bytes(info.destination.to_string().into_bytes()),
        Attr::ConnectionMtls => bytes(vec![u8::from(
            tls.is_some_and(|t| !t.peer_uri_sans.is_empty()),
        )]),
        Attr::ConnectionRequestedServerName => bytes(
            tls.and_then(|t| t.server_name.clone())
                .unwrap_or_default()
                .into_bytes(),
        ),
        Attr::ConnectionTlsVersion => bytes(tls?.version.clone()?.into_bytes()),
        Attr::ConnectionUriSanLocalCertificate => {
            bytes(tls?.local_uri_sans.first()?.as_bytes().to_vec())
        }
        Attr::ConnectionSubjectPeerCertificate => bytes(tls?.peer_subject.clone()?.into_bytes()),
        Attr::ConnectionSha256PeerCertificateDigest => {
            bytes(tls?.peer_cert_sha256.clone()?.into_bytes())
        }
        // Known once the request was sent to an endpoint. Upstream
        // connections are plain text, so the TLS fields are missing.
        Attr::UpstreamAddress => bytes(
            facts
                .known()
                .upstream
                .as_ref()?
                .address
                .to_string()
                .into_bytes(),
        ),
        Attr::UpstreamLocalAddress => bytes(
            facts
                .known()
                .upstream
                .as_ref()?
                .local_address?
                .to_string()
                .into_bytes(),
        ),
        Attr::UpstreamTransportFailureReason => bytes(
            facts
                .known()
                .upstream
                .as_ref()?
                .transport_failure_reason
                .clone()
                .into_bytes(),
        ),
        Attr::UpstreamTlsVersion | Attr::UpstreamSubjectPeerCertificate => None,
        Attr::XdsClusterName => bytes(facts.known().cluster_name.clone()?.into_bytes()),
        Attr::XdsRouteName => bytes(facts.known().route_name.clone()?.into_bytes()),
    }
}
