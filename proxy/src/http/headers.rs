//! Header rules of a proxy: hop-by-hop headers removed in both directions,
//! `x-forwarded-for` / `x-forwarded-proto` (as far as the listener trusts
//! the hops in front of it) and `x-request-id` on requests.

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

/// `x-forwarded-for`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-request-id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1),
/// with the HTTP/1.0-era `keep-alive` and non-standard `proxy-connection`.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// The position of `name` in `HOP_BY_HOP`, if it is one.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "transfer-encoding" => 1,
        "te" => 2,
        "trailer" => 3,
        "upgrade" => 4,
        "proxy-authenticate" => 5,
        "proxy-authorization" => 6,
        "keep-alive" => 7,
        "proxy-connection" => 8,
        _ => return None,
    })
}

/// Removes hop-by-hop headers, and those the `Connection` header names.
/// `te: trailers` survives (gRPC needs it); with `keep_upgrade` the
/// `Connection: upgrade` / `Upgrade` pair survives for a protocol switch.
///
/// A message that came with `transfer-encoding` loses its `content-length`
/// too: the transfer coding framed it, not the length (RFC 9112 §6.3), so
/// the body goes on re-framed (chunked on HTTP/1.1) instead of being cut to
/// a length its sender did not frame it by.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds which hop-by-hop headers are present, so
    // a message carrying none costs no hashed lookups.
    let mut present = [false; HOP_BY_HOP.len()];
    let mut any = false;
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name) {
            present[i] = true;
            any = true;
        }
    }
    if !any && !keep_upgrade {
        return;
    }
    // Headers named by `Connection` beyond the fixed set (rarely any).
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|token| {
            !token.eq_ignore_ascii_case("keep-alive")
                && !token.eq_ignore_ascii_case("close")
                && !token.eq_ignore_ascii_case("upgrade")
        })
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    if present[1] {
        headers.remove(header::CONTENT_LENGTH);
    }
    let te_trailers = present[2]
        && headers.get_all(header::TE).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        });
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        let kept = keep_upgrade && (name == header::CONNECTION || name == header::UPGRADE);
        if present && !kept {
            headers.remove(name);
        }
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// True when the headers ask to switch protocols (`Connection: upgrade` plus `Upgrade`).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Sets `x-forwarded-for` and `x-forwarded-proto` for a listener with
/// `trusted_hops` proxies in front of it (Envoy's `xff_num_trusted_hops`).
///
/// `x-forwarded-for` keeps the last `trusted_hops` addresses it came with
/// (those the trusted proxies appended; older ones are the client's own
/// claims) and gets the client IP appended: at an edge (zero) it is the
/// client IP alone. `x-forwarded-proto` is kept from a trusted hop and
/// otherwise set to the connection's scheme. `client_ip` is the client's IP
/// as a header value, made once per connection.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    scheme: &'static str,
    trusted_hops: u32,
) {
    let trusted = if trusted_hops == 0 {
        None
    } else {
        trusted_entries(headers, trusted_hops as usize)
    };
    let value = match trusted {
        Some(existing) if !existing.is_empty() => {
            let mut value = Vec::with_capacity(existing.len() + 2 + client_ip.len());
            value.extend_from_slice(&existing);
            value.extend_from_slice(b", ");
            value.extend_from_slice(client_ip.as_bytes());
            HeaderValue::from_bytes(&value).ok()
        }
        _ => Some(client_ip.clone()),
    };
    if let Some(value) = value {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    if trusted_hops == 0 || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
    }
}

/// The last `hops` addresses of the request's `x-forwarded-for` (every
/// line of it, in order), as they came.
fn trusted_entries(headers: &HeaderMap, hops: usize) -> Option<Vec<u8>> {
    let mut lines = headers.get_all(&X_FORWARDED_FOR).iter();
    let first = lines.next()?;
    // The usual case: one line with no more entries than trusted hops.
    if lines.next().is_none() && first.as_bytes().iter().filter(|b| **b == b',').count() < hops {
        return Some(first.as_bytes().to_vec());
    }
    let entries: Vec<&[u8]> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .flat_map(|line| line.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|entry| !entry.is_empty())
        .collect();
    let kept = &entries[entries.len().saturating_sub(hops)..];
    Some(kept.join(&b", "[..]))
}

/// Returns the request's `x-request-id`, generating a UUID v4 one when absent.
pub fn ensure_request_id(headers: &mut HeaderMap) -> &HeaderValue {
    let generate = || {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        HeaderValue::from_bytes(&text).expect("a UUID is a valid header value")
    };
    match headers.entry(&X_REQUEST_ID) {
        Entry::Occupied(entry) if !entry.get().is_empty() => entry.into_mut(),
        Entry::Occupied(mut entry) => {
            entry.insert(generate());
            entry.into_mut()
        }
        Entry::Vacant(entry) => entry.insert(generate()),
    }
}

/// The host a request is for, without port: the URI's authority (HTTP/2,
/// absolute-form) or the `Host` header.
pub fn request_host<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> &'a str {
    if let Some(host) = uri.host() {
        return host.trim_start_matches('[').trim_end_matches(']');
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return "";
    };
    strip_port(host)
}

/// The authority a request is for, with port: URI authority or `Host`.
pub fn request_authority<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
}

/// [`request_authority`] as a header value: the `Host` header's own value
/// (shared, not copied) unless the URI carries the authority.
pub fn request_authority_value(uri: &http::Uri, headers: &HeaderMap) -> Option<HeaderValue> {
    match uri.authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => headers
            .get(header::HOST)
            .filter(|value| value.to_str().is_ok())
            .cloned(),
    }
}

fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
            ("upgrade", "h2c"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn transfer_encoding_overrides_content_length() {
        let mut h = map(&[
            ("content-length", "5"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["content-type"]);
        let mut h = map(&[("content-length", "5")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.get("content-length").unwrap(), "5");
    }

    #[test]
    fn hop_by_hop_index_matches_the_table() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(i), "{name}");
        }
        assert_eq!(hop_by_hop_index(&header::CONTENT_TYPE), None);
    }

    #[test]
    fn te_trailers_survives_for_grpc() {
        let mut h = map(&[("te", "trailers, deflate")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.get("te").unwrap(), "trailers");
    }

    #[test]
    fn upgrade_pair_survives_when_upgrading() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn behind_trusted_hops_forwarded_for_appends_and_proto_is_kept() {
        let mut h = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
        ]);
        add_forwarded(&mut h, &HeaderValue::from_static("127.0.0.1"), "http", 1);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1, 127.0.0.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        let mut h = HeaderMap::new();
        add_forwarded(&mut h, &HeaderValue::from_static("::1"), "http", 1);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "::1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
    }

    #[test]
    fn only_the_last_trusted_hops_entries_are_kept() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6, 10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        add_forwarded(&mut h, &HeaderValue::from_static("10.0.0.3"), "http", 2);
        assert_eq!(
            h.get("x-forwarded-for").unwrap(),
            "10.0.0.1, 10.0.0.2, 10.0.0.3"
        );
    }

    #[test]
    fn at_an_edge_forwarded_headers_are_overwritten() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ]);
        add_forwarded(&mut h, &HeaderValue::from_static("127.0.0.1"), "http", 0);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "127.0.0.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
    }

    #[test]
    fn request_id_is_generated_once_and_kept() {
        let mut h = HeaderMap::new();
        let id = ensure_request_id(&mut h).clone();
        assert_eq!(id.len(), 36);
        assert_eq!(ensure_request_id(&mut h), &id);
        assert_eq!(h.get(&X_REQUEST_ID), Some(&id));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static(""));
        let replaced = ensure_request_id(&mut h).clone();
        assert_eq!(replaced.len(), 36, "an empty id is replaced");
        assert_eq!(h.get_all(&X_REQUEST_ID).iter().count(), 1);
    }

    #[test]
    fn the_authority_value_shares_the_host_header_or_copies_the_uri_authority() {
        let headers = map(&[("host", "api.example:8080")]);
        let origin_form: http::Uri = "/a?b".parse().unwrap();
        let value = request_authority_value(&origin_form, &headers).unwrap();
        assert_eq!(value, "api.example:8080");
        // The same bytes, not a copy of them.
        let host = headers.get(header::HOST).unwrap();
        assert_eq!(value.as_bytes().as_ptr(), host.as_bytes().as_ptr());

        let absolute: http::Uri = "http://other.example/a".parse().unwrap();
        let value = request_authority_value(&absolute, &headers).unwrap();
        assert_eq!(value, "other.example");

        assert_eq!(
            request_authority_value(&origin_form, &HeaderMap::new()),
            None
        );
        let mut opaque = HeaderMap::new();
        opaque.insert(
            header::HOST,
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert_eq!(request_authority_value(&origin_form, &opaque), None);
    }

    #[test]
    fn host_comes_without_port() {
        let uri: http::Uri = "/x".parse().unwrap();
        assert_eq!(
            request_host(&uri, &map(&[("host", "a.test:8080")])),
            "a.test"
        );
        assert_eq!(request_host(&uri, &map(&[("host", "[::1]:80")])), "::1");
        let abs: http::Uri = "http://b.test:1/x".parse().unwrap();
        assert_eq!(request_host(&abs, &HeaderMap::new()), "b.test");
    }
}
