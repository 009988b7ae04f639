//! Conversions between hyper's request/response heads and the header lists
//! filters see (with pseudo headers `:method`, `:path`, `:authority`,
//! `:scheme` and `:status`).

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, request, response};
use wasp_filter_host::HeaderList;

/// The request head as filters see it. `Host` becomes `:authority`.
pub fn request_list(parts: &request::Parts, scheme: &str) -> HeaderList {
    request_list_of(&parts.method, &parts.uri, &parts.headers, scheme)
}

/// [`request_list`] of a head's parts.
pub(crate) fn request_list_of(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    scheme: &str,
) -> HeaderList {
    let pseudo = request_pseudo_headers(method, uri, headers, scheme);
    let mut list = Vec::with_capacity(headers.len() + pseudo.len());
    list.extend(
        pseudo
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.to_vec())),
    );
    push_headers(&mut list, headers, Some(&HOST));
    list
}

/// The pseudo headers that open a request's list, in order.
pub(crate) fn request_pseudo_headers<'a>(
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    scheme: &'a str,
) -> [(&'static str, &'a [u8]); 4] {
    let authority = uri
        .authority()
        .map(|a| a.as_str().as_bytes())
        .or_else(|| headers.get(HOST).map(HeaderValue::as_bytes))
        .unwrap_or_default();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    [
        (":method", method.as_str().as_bytes()),
        (":path", path.as_bytes()),
        (":authority", authority),
        (":scheme", scheme.as_bytes()),
    ]
}

fn push_headers(list: &mut HeaderList, headers: &HeaderMap, skip: Option<&HeaderName>) {
    for (name, value) in headers {
        if Some(name) != skip {
            list.push((name.as_str().to_owned(), value.as_bytes().to_vec()));
        }
    }
}

/// True when `list` is still exactly what [`request_list`] made of `parts`:
/// the filters changed nothing, so the head need not be rebuilt.
pub fn request_unchanged(list: &HeaderList, parts: &request::Parts, scheme: &str) -> bool {
    let pseudo = request_pseudo_headers(&parts.method, &parts.uri, &parts.headers, scheme);
    list.len() >= pseudo.len()
        && list
            .iter()
            .zip(pseudo)
            .all(|((n, v), (name, value))| n == name && v == value)
        && headers_unchanged(&list[pseudo.len()..], &parts.headers, Some(&HOST))
}

/// True when `list` is still exactly what [`response_list`] made of `parts`.
pub fn response_unchanged(list: &HeaderList, parts: &response::Parts) -> bool {
    matches!(list.first(), Some((n, v)) if n == ":status" && v == parts.status.as_str().as_bytes())
        && headers_unchanged(&list[1..], &parts.headers, None)
}

fn headers_unchanged(
    list: &[(String, Vec<u8>)],
    headers: &HeaderMap,
    skip: Option<&HeaderName>,
) -> bool {
    let mut entries = list.iter();
    for (name, value) in headers {
        if Some(name) == skip {
            continue;
        }
        match entries.next() {
            Some((n, v)) if n == name.as_str() && v == value.as_bytes() => {}
            _ => return false,
        }
    }
    entries.next().is_none()
}

/// A header map from the non-pseudo entries of a list; invalid entries are
/// dropped with a log line.
pub fn header_map(list: &HeaderList) -> HeaderMap {
    rebuild(list, &HeaderMap::new())
}

/// [`header_map`] of a list a chain made of `old`: a value it still holds
/// is taken from `old` (shared, not copied), so a filter that adds or
/// removes one header costs the copies of that header alone.
fn rebuild(list: &HeaderList, old: &HeaderMap) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(list.len());
    for (name, value) in list.iter().filter(|(n, _)| !n.starts_with(':')) {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            tracing::warn!(header = %name, "filter set an invalid header; dropped");
            continue;
        };
        let kept = old
            .get_all(&name)
            .iter()
            .find(|kept| kept.as_bytes() == value.as_slice());
        match kept
            .cloned()
            .map_or_else(|| HeaderValue::from_bytes(value), Ok)
        {
            Ok(value) => {
                map.append(name, value);
            }
            Err(_) => tracing::warn!(header = %name, "filter set an invalid header; dropped"),
        }
    }
    map
}

fn pseudo<'a>(list: &'a HeaderList, name: &str) -> Option<&'a [u8]> {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// Applies a filtered list back to the request head.
pub fn apply_request(list: &HeaderList, parts: &mut request::Parts) {
    let mut headers = rebuild(list, &parts.headers);
    if let Some(method) = pseudo(list, ":method").and_then(|m| Method::from_bytes(m).ok()) {
        parts.method = method;
    }
    if let Some(path) = pseudo(list, ":path").and_then(|p| Uri::try_from(p).ok())
        && let Some(path) = path.path_and_query()
    {
        let mut uri = http::uri::Parts::default();
        uri.path_and_query = Some(path.clone());
        if let Ok(uri) = Uri::from_parts(uri) {
            parts.uri = uri;
        }
    }
    if let Some(authority) =
        pseudo(list, ":authority").and_then(|a| HeaderValue::from_bytes(a).ok())
        && !authority.is_empty()
    {
        headers.insert(HOST, authority);
    }
    parts.headers = headers;
}

/// The response head as filters see it.
pub fn response_list(parts: &response::Parts) -> HeaderList {
    response_list_of(parts.status, &parts.headers)
}

/// [`response_list`] of a head's parts.
pub(crate) fn response_list_of(status: StatusCode, headers: &HeaderMap) -> HeaderList {
    let mut list = Vec::with_capacity(headers.len() + 1);
    list.push((":status".into(), status.as_str().as_bytes().to_vec()));
    push_headers(&mut list, headers, None);
    list
}

/// Applies a filtered list back to the response head.
pub fn apply_response(list: &HeaderList, parts: &mut response::Parts) {
    if let Some(status) = pseudo(list, ":status").and_then(|s| StatusCode::from_bytes(s).ok()) {
        parts.status = status;
    }
    parts.headers = rebuild(list, &parts.headers);
}

/// Trailers as filters see them.
pub fn trailer_list(trailers: &HeaderMap) -> HeaderList {
    let mut list = Vec::with_capacity(trailers.len());
    push_headers(&mut list, trailers, None);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_round_trip_with_pseudo_headers() {
        let req = http::Request::builder()
            .method("POST")
            .uri("/a/b?c=1")
            .header("host", "example.com")
            .header("x-one", "1")
            .body(())
            .unwrap();
        let (mut parts, ()) = req.into_parts();
        let mut list = request_list(&parts, "http");
        assert_eq!(
            &list[..4],
            &[
                (":method".to_owned(), b"POST".to_vec()),
                (":path".to_owned(), b"/a/b?c=1".to_vec()),
                (":authority".to_owned(), b"example.com".to_vec()),
                (":scheme".to_owned(), b"http".to_vec()),
            ]
        );
        assert!(!list.iter().any(|(n, _)| n == "host"));
        assert!(request_unchanged(&list, &parts, "http"));
        assert!(!request_unchanged(&list, &parts, "https"));
        list[1].1 = b"/rewritten".to_vec();
        assert!(!request_unchanged(&list, &parts, "http"));
        list.push(("x-two".into(), b"2".to_vec()));
        list.push(("bad header".into(), b"x".to_vec()));
        apply_request(&list, &mut parts);
        assert_eq!(parts.uri, "/rewritten");
        assert_eq!(parts.headers["host"], "example.com");
        assert_eq!(parts.headers["x-two"], "2");
        assert_eq!(parts.headers.len(), 3);
    }

    #[test]
    fn a_rebuilt_head_shares_the_values_the_filters_kept_and_copies_the_new_ones() {
        let (mut parts, ()) = http::Response::builder()
            .status(200)
            .header("x-kept", "same")
            .header("x-changed", "old")
            .header("x-removed", "gone")
            .body(())
            .unwrap()
            .into_parts();
        let kept = parts.headers["x-kept"].as_bytes().as_ptr();
        let mut list = response_list(&parts);
        list.retain(|(n, _)| n != "x-removed");
        list[2].1 = b"new".to_vec();
        list.push(("x-added".into(), b"1".to_vec()));
        apply_response(&list, &mut parts);
        assert_eq!(parts.headers.len(), 3);
        assert_eq!(
            parts.headers["x-kept"].as_bytes().as_ptr(),
            kept,
            "shared, not copied"
        );
        assert_eq!(parts.headers["x-changed"], "new");
        assert_eq!(parts.headers["x-added"], "1");
        assert!(!parts.headers.contains_key("x-removed"));
        let order: Vec<&str> = parts.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(order, ["x-kept", "x-changed", "x-added"]);
    }

    #[test]
    fn response_lists_tell_whether_a_filter_changed_them() {
        let (parts, ()) = http::Response::builder()
            .status(201)
            .header("x-one", "1")
            .header("x-one", "2")
            .body(())
            .unwrap()
            .into_parts();
        let mut list = response_list(&parts);
        assert!(response_unchanged(&list, &parts));
        list.swap(1, 2);
        assert!(!response_unchanged(&list, &parts));
        list.swap(1, 2);
        list.push(("x-two".into(), b"2".to_vec()));
        assert!(!response_unchanged(&list, &parts));
        list.pop();
        list[0].1 = b"200".to_vec();
        assert!(!response_unchanged(&list, &parts));
        list.truncate(2);
        list[0].1 = b"201".to_vec();
        assert!(!response_unchanged(&list, &parts));
    }
}
