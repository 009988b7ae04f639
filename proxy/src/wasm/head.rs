//! The request and response heads handed to a filter chain as they are: a
//! filter's lookup of one header reads the proxy's `HeaderMap` (pseudo
//! headers `:method`, `:path`, `:authority`, `:scheme` and `:status`
//! synthesised), and the host builds the whole list only when a filter
//! writes to the headers or asks for all of them. They answer exactly as
//! [`convert::request_list`] and [`convert::response_list`] would.

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, request, response};
use wasp_filter_host::{HeaderList, HeaderSource};

use super::convert;

/// A request head as filters see it: `Host` becomes `:authority`.
pub struct RequestHead {
    method: Method,
    uri: Uri,
    scheme: &'static str,
    headers: HeaderMap,
}

impl RequestHead {
    /// The head of `parts` (copied: header values are shared, not copied).
    pub fn new(parts: &request::Parts, scheme: &'static str) -> Self {
        Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            scheme,
            headers: parts.headers.clone(),
        }
    }

    fn pseudo(&self) -> [(&'static str, &[u8]); 4] {
        convert::request_pseudo_headers(&self.method, &self.uri, &self.headers, self.scheme)
    }
}

/// The first value of a regular header `name`, `skip` left out.
fn regular<'a>(headers: &'a HeaderMap, name: &str, skip: Option<&HeaderName>) -> Option<&'a [u8]> {
    if skip.is_some_and(|skip| name.eq_ignore_ascii_case(skip.as_str())) {
        return None;
    }
    headers.get(name).map(HeaderValue::as_bytes)
}

/// Calls `pair` with the pairs of `headers`, `skip` left out.
fn regular_pairs<'a>(
    pair: &mut dyn FnMut(&'a str, &'a [u8]),
    headers: &'a HeaderMap,
    skip: Option<&HeaderName>,
) {
    for (name, value) in headers {
        if Some(name) != skip {
            pair(name.as_str(), value.as_bytes());
        }
    }
}

/// Bytes and entries of the values of a regular header `name`, `skip`
/// left out.
fn regular_size_of(headers: &HeaderMap, name: &str, skip: Option<&HeaderName>) -> (usize, usize) {
    if skip.is_some_and(|skip| name.eq_ignore_ascii_case(skip.as_str())) {
        return (0, 0);
    }
    headers
        .get_all(name)
        .iter()
        .fold((0, 0), |(bytes, n), value| {
            (bytes + name.len() + value.len(), n + 1)
        })
}

/// Bytes of every name and value of `headers`, `skip` left out.
fn regular_size(headers: &HeaderMap, skip: Option<&HeaderName>) -> usize {
    headers
        .iter()
        .filter(|(name, _)| Some(*name) != skip)
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
}

impl HeaderSource for RequestHead {
    fn count(&self) -> usize {
        4 + self.headers.len() - self.headers.get_all(HOST).iter().count()
    }

    fn get(&self, name: &str) -> Option<&[u8]> {
        if name.starts_with(':') {
            return self
                .pseudo()
                .into_iter()
                .find(|(pseudo, _)| pseudo.eq_ignore_ascii_case(name))
                .map(|(_, value)| value);
        }
        regular(&self.headers, name, Some(&HOST))
    }

    fn byte_size(&self) -> usize {
        let pseudo: usize = self.pseudo().iter().map(|(n, v)| n.len() + v.len()).sum();
        pseudo + regular_size(&self.headers, Some(&HOST))
    }

    fn for_each<'a>(&'a self, pair: &mut dyn FnMut(&'a str, &'a [u8])) {
        for (name, value) in self.pseudo() {
            pair(name, value);
        }
        regular_pairs(pair, &self.headers, Some(&HOST));
    }

    fn size_of(&self, name: &str) -> (usize, usize) {
        if name.starts_with(':') {
            return self
                .pseudo()
                .iter()
                .filter(|(pseudo, _)| pseudo.eq_ignore_ascii_case(name))
                .fold((0, 0), |(bytes, n), (k, v)| {
                    (bytes + k.len() + v.len(), n + 1)
                });
        }
        regular_size_of(&self.headers, name, Some(&HOST))
    }

    fn to_list(&self) -> HeaderList {
        convert::request_list_of(&self.method, &self.uri, &self.headers, self.scheme)
    }
}

/// A response head as filters see it: `:status`, then the headers.
pub struct ResponseHead {
    status: StatusCode,
    headers: HeaderMap,
}

impl ResponseHead {
    /// The head of `parts` (copied: header values are shared, not copied).
    pub fn new(parts: &response::Parts) -> Self {
        Self {
            status: parts.status,
            headers: parts.headers.clone(),
        }
    }
}

impl HeaderSource for ResponseHead {
    fn count(&self) -> usize {
        1 + self.headers.len()
    }

    fn get(&self, name: &str) -> Option<&[u8]> {
        if name.starts_with(':') {
            return name
                .eq_ignore_ascii_case(":status")
                .then(|| self.status.as_str().as_bytes());
        }
        regular(&self.headers, name, None)
    }

    fn byte_size(&self) -> usize {
        ":status".len() + self.status.as_str().len() + regular_size(&self.headers, None)
    }

    fn for_each<'a>(&'a self, pair: &mut dyn FnMut(&'a str, &'a [u8])) {
        pair(":status", self.status.as_str().as_bytes());
        regular_pairs(pair, &self.headers, None);
    }

    fn size_of(&self, name: &str) -> (usize, usize) {
        if name.starts_with(':') {
            return if name.eq_ignore_ascii_case(":status") {
                (":status".len() + self.status.as_str().len(), 1)
            } else {
                (0, 0)
            };
        }
        regular_size_of(&self.headers, name, None)
    }

    fn to_list(&self) -> HeaderList {
        convert::response_list_of(self.status, &self.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every answer of `source` is the answer of its list.
    fn answers_as_its_list(source: &dyn HeaderSource, names: &[&str]) {
        let list = source.to_list();
        let mut pairs = HeaderList::new();
        source.for_each(&mut |k, v| pairs.push((k.to_owned(), v.to_vec())));
        assert_eq!(pairs, list);
        assert_eq!(source.count(), list.len());
        let size: usize = list.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert_eq!(source.byte_size(), size);
        for name in names {
            let expected = list
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice());
            assert_eq!(source.get(name), expected, "{name}");
            let named = list.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name));
            assert_eq!(
                source.size_of(name),
                named.fold((0, 0), |(b, n), (k, v)| (b + k.len() + v.len(), n + 1)),
                "{name}"
            );
        }
    }

    const NAMES: &[&str] = &[
        ":method",
        ":path",
        ":authority",
        ":scheme",
        ":status",
        ":other",
        "host",
        "Host",
        "x-one",
        "X-One",
        "HOST",
        ":Status",
        ":PATH",
        "x-two",
        "accept",
        "missing",
        "",
        "bad name",
    ];

    #[test]
    fn request_heads_answer_as_their_lists() {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri("/a?b=1")
            .header("host", "example.com")
            .header("x-one", "1")
            .header("x-two", "2")
            .header("x-one", "3")
            .header("accept", "")
            .body(())
            .unwrap()
            .into_parts();
        let head = RequestHead::new(&parts, "https");
        answers_as_its_list(&head, NAMES);
        assert_eq!(head.to_list(), convert::request_list(&parts, "https"));
        assert_eq!(head.get(":authority"), Some(&b"example.com"[..]));
        assert_eq!(head.get("X-ONE"), Some(&b"1"[..]));

        let (absolute, ()) = http::Request::builder()
            .uri("http://upstream:8080/x")
            .header("host", "ignored")
            .body(())
            .unwrap()
            .into_parts();
        let head = RequestHead::new(&absolute, "http");
        answers_as_its_list(&head, NAMES);
        assert_eq!(head.get(":authority"), Some(&b"upstream:8080"[..]));

        let (bare, ()) = http::Request::builder().body(()).unwrap().into_parts();
        answers_as_its_list(&RequestHead::new(&bare, "http"), NAMES);
    }

    #[test]
    fn response_heads_answer_as_their_lists() {
        let (parts, ()) = http::Response::builder()
            .status(503)
            .header("x-one", "1")
            .header("x-one", "2")
            .header("host", "h")
            .body(())
            .unwrap()
            .into_parts();
        let head = ResponseHead::new(&parts);
        answers_as_its_list(&head, NAMES);
        assert_eq!(head.to_list(), convert::response_list(&parts));
        assert_eq!(head.get(":status"), Some(&b"503"[..]));
    }
}
