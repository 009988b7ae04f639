//! Properties (`proxy_get_property` / `proxy_set_property`): request,
//! response, source, destination, connection (with TLS peer identity), plugin
//! and node facts, and filter state set by filters of the same stream.
//!
//! Encoding follows Envoy: strings as bytes, integers as 8-byte little-endian,
//! booleans as one byte.

use std::sync::PoisonError;
use std::time::UNIX_EPOCH;

use crate::state::VmState;
use crate::stream::{StreamData, header_get};

fn int(value: i64) -> Vec<u8> {
    value.to_le_bytes().to_vec()
}

/// Looks a property up for the effective context of `state`.
pub(crate) fn get(state: &VmState, path: &[String]) -> Option<Vec<u8>> {
    let joined = path.join(".");
    let segs: Vec<&str> = path.iter().map(String::as_str).collect();
    let spec = &state.core.spec;
    match segs.as_slice() {
        ["plugin_name"] => return Some(spec.name.as_bytes().to_vec()),
        ["plugin_root_id"] => return Some(spec.root_id.as_bytes().to_vec()),
        ["plugin_vm_id"] => return Some(spec.vm_id.as_bytes().to_vec()),
        ["node", "id"] => return Some(state.core.services.node.id.as_bytes().to_vec()),
        ["node", "cluster"] => return Some(state.core.services.node.cluster.as_bytes().to_vec()),
        ["node", "metadata", key] => {
            return state
                .core
                .services
                .node
                .metadata
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_bytes().to_vec());
        }
        _ => {}
    }
    let Some(binding) = state.stream() else {
        return state.root_state.get(&joined).cloned();
    };
    let data = binding.data.lock().unwrap_or_else(PoisonError::into_inner);
    stream_property(&data, &segs).or_else(|| data.filter_state.get(&joined).cloned())
}

fn stream_property(data: &StreamData, segs: &[&str]) -> Option<Vec<u8>> {
    let req = |name: &str| header_get(&data.request_headers, name).map(<[u8]>::to_vec);
    let info = &data.info;
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
            let start = path.iter().position(|b| *b == b'?')? + 1;
            path[start..].to_vec()
        }
        ["request", "time"] => {
            let since = info.start.duration_since(UNIX_EPOCH).ok()?;
            int(since.as_nanos() as i64)
        }
        ["request", "duration"] => int(info.start.elapsed().ok()?.as_nanos() as i64),
        ["request", "headers", name] => req(name)?,
        ["response", "code"] => {
            let status = header_get(&data.response_headers, ":status")?;
            int(std::str::from_utf8(status).ok()?.parse().ok()?)
        }
        ["response", "headers", name] => header_get(&data.response_headers, name)?.to_vec(),
        ["response", "trailers", name] => header_get(&data.response_trailers, name)?.to_vec(),
        ["source", "address"] => info.source.to_string().into_bytes(),
        ["source", "port"] => int(i64::from(info.source.port())),
        ["source", "principal"] => tls?.peer_uri_sans.first()?.as_bytes().to_vec(),
        ["destination", "address"] => info.destination.to_string().into_bytes(),
        ["destination", "port"] => int(i64::from(info.destination.port())),
        ["connection", "id"] => int(info.connection_id as i64),
        ["connection", "mtls"] => vec![u8::from(tls.is_some_and(|t| !t.peer_uri_sans.is_empty()))],
        ["connection", "requested_server_name"] => tls?.server_name.clone()?.into_bytes(),
        ["connection", "tls_version"] => tls?.version.clone()?.into_bytes(),
        ["connection", "uri_san_peer_certificate"] => {
            tls?.peer_uri_sans.first()?.as_bytes().to_vec()
        }
        _ => return None,
    })
}

/// Stores a property set by the filter: in the stream's filter state (seen by
/// later filters of the same stream) or, outside a stream, in the VM.
pub(crate) fn set(state: &mut VmState, path: &str, value: Vec<u8>) {
    match state.stream() {
        Some(binding) => {
            let mut data = binding.data.lock().unwrap_or_else(PoisonError::into_inner);
            data.filter_state.insert(path.to_owned(), value);
        }
        None => {
            state.root_state.insert(path.to_owned(), value);
        }
    }
}
