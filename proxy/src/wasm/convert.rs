//! Conversions between hyper's request/response heads and the header lists
//! filters see (with pseudo headers `:method`, `:path`, `:authority`,
//! `:scheme` and `:status`).

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, request, response};
use wasp_filter_host::{HeaderEdits, HeaderList};

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
        append(&mut map, name, value, old);
    }
    map
}

/// Appends a pair a filter left to `headers`; a value equal to one `old`
/// holds under that name is shared with it, not copied. An invalid name or
/// value is dropped with a log line.
fn append(headers: &mut HeaderMap, name: &str, value: &[u8], old: &HeaderMap) {
    let Ok(name) = super::names::header_name(name) else {
        tracing::warn!(header = %name, "filter set an invalid header; dropped");
        return;
    };
    let kept = old
        .get_all(&name)
        .iter()
        .find(|kept| kept.as_bytes() == value);
    match kept
        .cloned()
        .map_or_else(|| HeaderValue::from_bytes(value), Ok)
    {
        Ok(value) => {
            headers.append(name, value);
        }
        Err(_) => tracing::warn!(header = %name, "filter set an invalid header; dropped"),
    }
}

fn pseudo<'a>(list: &'a HeaderList, name: &str) -> Option<&'a [u8]> {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// Applies a filtered list back to the request head.
pub fn apply_request(list: &HeaderList, parts: &mut request::Parts) {
    let mut headers = rebuild(list, &parts.headers);
    set_method_and_path(parts, pseudo(list, ":method"), pseudo(list, ":path"));
    if let Some(authority) =
        pseudo(list, ":authority").and_then(|a| HeaderValue::from_bytes(a).ok())
        && !authority.is_empty()
    {
        headers.insert(HOST, authority);
    }
    parts.headers = headers;
}

/// Sets the request's method and path from a filter's `:method` and
/// `:path` (invalid ones are ignored); the URI becomes the path alone.
fn set_method_and_path(parts: &mut request::Parts, method: Option<&[u8]>, path: Option<&[u8]>) {
    if let Some(method) = method.and_then(|m| Method::from_bytes(m).ok()) {
        parts.method = method;
    }
    if let Some(path) = path.and_then(|p| Uri::try_from(p).ok())
        && let Some(path) = path.path_and_query()
    {
        let mut uri = http::uri::Parts::default();
        uri.path_and_query = Some(path.clone());
        if let Ok(uri) = Uri::from_parts(uri) {
            parts.uri = uri;
        }
    }
}

/// The value a pseudo header has after `edits`: `None` when the filters
/// left the proxy's own (it is neither removed nor replaced), else the
/// first one they added (`Some(None)`: removed, none added).
fn edited_pseudo<'a>(edits: &'a HeaderEdits, name: &str) -> Option<Option<&'a [u8]>> {
    edits
        .removed()
        .iter()
        .any(|r| r == name)
        .then(|| pseudo(edits.added(), name))
}

/// Applies the regular (non-pseudo) edits to `headers`: removed names go,
/// added pairs are appended.
fn edit_headers(edits: &HeaderEdits, headers: &mut HeaderMap) {
    for name in edits.removed().iter().filter(|n| !n.starts_with(':')) {
        headers.remove(name.as_str());
    }
    let none = HeaderMap::new();
    // Room for every pair at once: one growth of the map, not one per pair.
    headers.reserve(edits.added().len());
    for (name, value) in edits.added().iter().filter(|(n, _)| !n.starts_with(':')) {
        append(headers, name, value, &none);
    }
}

/// Applies filters' edits of the request head to it, as [`apply_request`]
/// applies the list those edits make: headers removed and added,
/// `:method` and `:path` when replaced, and `Host` as `:authority` says
/// when a filter touched either.
pub fn edit_request(edits: &HeaderEdits, parts: &mut request::Parts) {
    let touches_host = edits.removed().iter().any(|n| n == ":authority")
        || edits
            .added()
            .iter()
            .any(|(n, _)| n == "host" || n == ":authority");
    // The authority the filters see last: the proxy's own, unless replaced.
    let authority = touches_host.then(|| match edited_pseudo(edits, ":authority") {
        Some(edited) => edited.map(<[u8]>::to_vec),
        None => {
            let [_, _, (_, own), _] =
                request_pseudo_headers(&parts.method, &parts.uri, &parts.headers, "");
            Some(own.to_vec())
        }
    });
    if touches_host {
        // The filters never see `Host` as such: it is `:authority`.
        parts.headers.remove(HOST);
    }
    edit_headers(edits, &mut parts.headers);
    set_method_and_path(
        parts,
        edited_pseudo(edits, ":method").flatten(),
        edited_pseudo(edits, ":path").flatten(),
    );
    if let Some(Some(authority)) = authority
        && let Ok(authority) = HeaderValue::from_bytes(&authority)
        && !authority.is_empty()
    {
        parts.headers.insert(HOST, authority);
    }
}

/// Applies filters' edits of the response head to it, as
/// [`apply_response`] applies the list those edits make.
pub fn edit_response(edits: &HeaderEdits, parts: &mut response::Parts) {
    edit_headers(edits, &mut parts.headers);
    if let Some(Some(status)) = edited_pseudo(edits, ":status")
        && let Ok(status) = StatusCode::from_bytes(status)
    {
        parts.status = status;
    }
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

    /// The list filters see once `edits` are made to `list`.
    fn edited(mut list: HeaderList, edits: &HeaderEdits) -> HeaderList {
        list.retain(|(n, _)| !edits.removed().contains(n));
        list.extend(edits.added().iter().cloned());
        list
    }

    /// A head's headers, name by name, values in order.
    fn by_name(headers: &HeaderMap) -> Vec<(String, Vec<Vec<u8>>)> {
        let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let values = headers
                    .get_all(n.as_str())
                    .iter()
                    .map(|v| v.as_bytes().to_vec())
                    .collect();
                (n, values)
            })
            .collect()
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn pairs(pairs: &[(&str, &str)]) -> HeaderList {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn edits_change_a_request_head_as_the_list_they_make_would() {
        let cases = [
            HeaderEdits::new(
                names(&["authorization"]),
                pairs(&[
                    ("traceparent", "00-1-2-01"),
                    ("x-b3-sampled", "1"),
                    ("b3", "1-2-1"),
                ]),
            ),
            HeaderEdits::new(names(&[":path"]), pairs(&[(":path", "/new?x=1")])),
            HeaderEdits::new(names(&[":method"]), pairs(&[(":method", "PUT")])),
            HeaderEdits::new(names(&[":authority"]), pairs(&[(":authority", "other:81")])),
            HeaderEdits::new(names(&[":authority"]), Vec::new()),
            HeaderEdits::new(Vec::new(), pairs(&[("host", "added"), ("x-one", "2")])),
            HeaderEdits::new(
                names(&["x-one"]),
                pairs(&[("x-one", "3"), ("bad name", "x")]),
            ),
            HeaderEdits::new(Vec::new(), pairs(&[(":path", "/ignored-second")])),
        ];
        for edits in &cases {
            let make = || {
                http::Request::builder()
                    .method("GET")
                    .uri("/a?b=1")
                    .header("host", "example.com")
                    .header("x-one", "1")
                    .header("authorization", "Bearer t")
                    .body(())
                    .unwrap()
                    .into_parts()
                    .0
            };
            let (mut by_edits, mut by_list) = (make(), make());
            let list = edited(request_list(&by_list, "http"), edits);
            apply_request(&list, &mut by_list);
            edit_request(edits, &mut by_edits);
            assert_eq!(by_edits.method, by_list.method, "{edits:?}");
            assert_eq!(by_edits.uri, by_list.uri, "{edits:?}");
            assert_eq!(
                by_name(&by_edits.headers),
                by_name(&by_list.headers),
                "{edits:?}"
            );
        }
    }

    #[test]
    fn edits_change_a_response_head_as_the_list_they_make_would() {
        let cases = [
            HeaderEdits::new(
                Vec::new(),
                pairs(&[("x-envoy-peer-metadata", "abc"), ("x-one", "2")]),
            ),
            HeaderEdits::new(names(&[":status"]), pairs(&[(":status", "503")])),
            HeaderEdits::new(names(&["x-one", "server"]), Vec::new()),
        ];
        for edits in &cases {
            let make = || {
                http::Response::builder()
                    .status(200)
                    .header("server", "up")
                    .header("x-one", "1")
                    .body(())
                    .unwrap()
                    .into_parts()
                    .0
            };
            let (mut by_edits, mut by_list) = (make(), make());
            apply_response(&edited(response_list(&by_list), edits), &mut by_list);
            edit_response(edits, &mut by_edits);
            assert_eq!(by_edits.status, by_list.status, "{edits:?}");
            assert_eq!(
                by_name(&by_edits.headers),
                by_name(&by_list.headers),
                "{edits:?}"
            );
        }
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
