//! Header rules of a proxy: hop-by-hop headers removed in both directions,
//! `x-forwarded-for` / `x-forwarded-proto` / `x-request-id` on requests.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

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

/// Appends the client IP to `x-forwarded-for` and sets `x-forwarded-proto`
/// when absent (Envoy's behaviour for a sidecar). `client_ip` is the client's
/// IP as a header value, made once per connection.
pub fn add_forwarded(headers: &mut HeaderMap, client_ip: &HeaderValue, scheme: &'static str) {
    let value = match headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(existing) if !existing.is_empty() => {
            let mut value = Vec::with_capacity(existing.len() + 2 + client_ip.len());
            value.extend_from_slice(existing);
            value.extend_from_slice(b", ");
            value.extend_from_slice(client_ip.as_bytes());
            HeaderValue::from_bytes(&value).ok()
        }
        _ => Some(client_ip.clone()),
    };
    if let Some(value) = value {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
    }
}

/// Returns the request's `x-request-id`, generating a UUID v4 one when absent.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(&X_REQUEST_ID)
        && !id.is_empty()
    {
        return id.clone();
    }
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    let id = HeaderValue::from_bytes(&text).expect("a UUID is a valid header value");
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
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
    fn forwarded_for_appends_and_proto_is_kept() {
        let mut h = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
        ]);
        add_forwarded(&mut h, &HeaderValue::from_static("127.0.0.1"), "http");
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1, 127.0.0.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        let mut h = HeaderMap::new();
        add_forwarded(&mut h, &HeaderValue::from_static("::1"), "http");
        assert_eq!(h.get("x-forwarded-for").unwrap(), "::1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
    }

    #[test]
    fn request_id_is_generated_once_and_kept() {
        let mut h = HeaderMap::new();
        let id = ensure_request_id(&mut h);
        assert_eq!(id.len(), 36);
        assert_eq!(ensure_request_id(&mut h), id);
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
