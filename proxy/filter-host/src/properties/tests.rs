//! Encodings and presence of stream attributes, checked on hand-made
//! stream data (no VM needed).

use std::net::SocketAddr;
use std::time::Duration;

use super::stream::property;
use crate::facts::{UpstreamFacts, response_flags};
use crate::stream::{StreamData, StreamInfo};

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

fn stream(request: &[(&str, &str)]) -> StreamData {
    StreamData {
        request_headers: headers(request).into(),
        info: StreamInfo::default(),
        ..StreamData::default()
    }
}

fn get(data: &StreamData, path: &str) -> Option<Vec<u8>> {
    let segs: Vec<&str> = path.split('.').collect();
    property(data, &segs).map(|value| value.to_vec())
}

fn int(data: &StreamData, path: &str) -> Option<i64> {
    let bytes = get(data, path)?;
    Some(i64::from_le_bytes(bytes.try_into().expect("8 bytes")))
}

#[test]
fn query_is_empty_without_a_query_string_and_stops_at_a_fragment() {
    assert_eq!(
        get(&stream(&[(":path", "/a")]), "request.query"),
        Some(vec![])
    );
    assert_eq!(
        get(&stream(&[(":path", "/a?x=1#frag")]), "request.query"),
        Some(b"x=1".to_vec())
    );
}

#[test]
fn request_size_prefers_content_length_then_counts_body_bytes() {
    let data = stream(&[(":path", "/"), ("content-length", "12")]);
    assert_eq!(int(&data, "request.size"), Some(12));
    let data = stream(&[(":path", "/")]);
    assert_eq!(int(&data, "request.size"), Some(0));
    data.info.facts.add_request_bytes(5);
    assert_eq!(int(&data, "request.size"), Some(5));
    // total: body bytes plus every header name and value (":path" + "/").
    assert_eq!(int(&data, "request.total_size"), Some(5 + 6));
    let bad = stream(&[("content-length", "x")]);
    assert_eq!(get(&bad, "request.size"), None);
}

#[test]
fn response_sizes_count_body_headers_and_trailers() {
    let mut data = stream(&[]);
    data.response_headers = headers(&[(":status", "200")]).into();
    data.response_trailers = headers(&[("grpc-status", "0")]).into();
    assert_eq!(int(&data, "response.size"), Some(0));
    data.info.facts.add_response_bytes(100);
    assert_eq!(int(&data, "response.size"), Some(100));
    assert_eq!(int(&data, "response.total_size"), Some(100 + 10 + 12));
}

#[test]
fn grpc_status_comes_from_trailers_headers_then_the_http_status() {
    let mut data = stream(&[]);
    assert_eq!(get(&data, "response.grpc_status"), None);
    data.response_headers = headers(&[(":status", "503")]).into();
    assert_eq!(int(&data, "response.grpc_status"), Some(14));
    data.response_headers = headers(&[(":status", "200")]).into();
    assert_eq!(int(&data, "response.grpc_status"), Some(2));
    data.response_headers = headers(&[(":status", "200"), ("grpc-status", "5")]).into();
    assert_eq!(int(&data, "response.grpc_status"), Some(5));
    data.response_trailers = headers(&[("grpc-status", "0")]).into();
    assert_eq!(int(&data, "response.grpc_status"), Some(0));
}

#[test]
fn code_details_are_missing_until_set_and_flags_are_always_an_integer() {
    let data = stream(&[]);
    assert_eq!(get(&data, "response.code_details"), None);
    assert_eq!(int(&data, "response.flags"), Some(0));
    data.info.facts.set_response(
        "upstream_response_timeout",
        response_flags::UPSTREAM_REQUEST_TIMEOUT,
    );
    data.info
        .facts
        .add_flags(response_flags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
    assert_eq!(
        get(&data, "response.code_details"),
        Some(b"upstream_response_timeout".to_vec())
    );
    assert_eq!(int(&data, "response.flags"), Some(0x4 | 0x8000));
}

#[test]
fn upstream_attributes_appear_once_the_endpoint_is_known() {
    let data = stream(&[]);
    for path in [
        "upstream.address",
        "upstream.port",
        "upstream.transport_failure_reason",
        "xds.upstream_host_metadata",
        "upstream.tls_version",
    ] {
        assert_eq!(get(&data, path), None, "{path}");
    }
    let address: SocketAddr = "10.0.0.7:8080".parse().unwrap();
    data.info.facts.set_upstream(UpstreamFacts {
        address,
        local_address: Some("10.0.0.1:40000".parse().unwrap()),
        transport_failure_reason: String::new(),
    });
    assert_eq!(
        get(&data, "upstream.address"),
        Some(b"10.0.0.7:8080".to_vec())
    );
    assert_eq!(int(&data, "upstream.port"), Some(8080));
    assert_eq!(
        get(&data, "upstream.local_address"),
        Some(b"10.0.0.1:40000".to_vec())
    );
    assert_eq!(
        get(&data, "upstream.transport_failure_reason"),
        Some(vec![])
    );
    assert_eq!(get(&data, "xds.upstream_host_metadata"), None);
    assert_eq!(get(&data, "upstream.tls_version"), None);
}

#[test]
fn xds_names_follow_the_route_and_cluster_facts() {
    let data = stream(&[]);
    assert_eq!(get(&data, "xds.route_name"), None);
    assert_eq!(get(&data, "xds.cluster_name"), None);
    data.info.facts.set_route("api");
    data.info.facts.set_cluster("backend");
    assert_eq!(get(&data, "xds.route_name"), Some(b"api".to_vec()));
    assert_eq!(get(&data, "xds.cluster_name"), Some(b"backend".to_vec()));
}

#[test]
fn requested_server_name_is_empty_without_tls() {
    let data = stream(&[]);
    assert_eq!(get(&data, "connection.requested_server_name"), Some(vec![]));
}

#[test]
fn duration_is_known_once_the_stream_ended() {
    let mut data = stream(&[]);
    assert_eq!(get(&data, "request.duration"), None);
    data.ended = Some(Duration::from_millis(3));
    assert_eq!(int(&data, "request.duration"), Some(3_000_000));
    assert!(int(&data, "request.time").is_some_and(|t| t > 0));
}

#[test]
fn filter_state_keys_are_the_segments_joined_with_dots_short_or_long() {
    assert_eq!(super::with_joined(&["a"], str::to_owned), "a");
    assert_eq!(
        super::with_joined(&["a", "b.c", ""], str::to_owned),
        "a.b.c."
    );
    let long = "x".repeat(300);
    assert_eq!(
        super::with_joined(&["request", &long], str::to_owned),
        format!("request.{long}")
    );
    let mut state = crate::state::StateMap::default();
    state
        .set(
            super::state_key(&["request", "auth", "principal"]),
            crate::state::StateValue::from_slice(b"p"),
            u64::MAX,
        )
        .expect("no limit");
    assert_eq!(
        &*super::state_key(&["a", "b.c", ""]),
        b"a.b.c.",
        "the key is the segments joined with dots"
    );
    assert!(super::settable(&["request", "auth", "principal"]));
    assert!(
        !super::settable(&["request.path"]) && !super::settable(&["request", "path"]),
        "an attribute of the proxy, dotted or not"
    );
    assert!(
        !super::settable(&["source.principal"]),
        "a dotted attribute of the proxy"
    );
    assert_eq!(
        super::state_value(&state, &["request", "auth", "principal"]).as_deref(),
        Some(&b"p"[..])
    );
    assert_eq!(super::state_value(&state, &["request", "auth"]), None);
}

#[test]
fn filter_state_counts_its_bytes_across_replacements_and_refuses_growth_past_the_limit() {
    use crate::limits::Limit;
    use crate::state::{StateKey, StateMap, StateValue};
    let key = |k: &str| StateKey::from_slice(k.as_bytes());
    let value = |n: usize| StateValue::from_vec(vec![b'v'; n]);
    let mut state = StateMap::default();
    // "a" + 10, then "b" + 20: 32 bytes of 40.
    state.set(key("a"), value(10), 40).expect("11 bytes");
    state.set(key("b"), value(20), 40).expect("32 bytes");
    // Replacing "a" counts its new size only: 1 + 17 + 21 = 39.
    state.set(key("a"), value(17), 40).expect("39 bytes");
    // One byte more is past the limit; the value stays as it was.
    assert_eq!(
        state.set(key("a"), value(19), 40),
        Err(Limit::PropertyBytes)
    );
    assert_eq!(state.get(b"a").map(|v| v.len()), Some(17));
    // Shrinking is always taken, and frees room for another key.
    state.set(key("b"), value(2), 40).expect("shrinks");
    state
        .set(key("c"), value(18), 40)
        .expect("1 + 17 + 1 + 2 + 1 + 18 = 40");
    assert_eq!(state.set(key("d"), value(0), 40), Err(Limit::PropertyBytes));
}
