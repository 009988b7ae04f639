//! Building the request sent to an endpoint, in the cluster's protocol:
//! HTTP/1.1 (origin-form path and `Host`) or HTTP/2 (absolute URI, no
//! `Host`). Used by the request path and by filter callouts.

use std::net::SocketAddr;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Request, Uri, Version};
use wasp_config::UpstreamProtocol;

use crate::body::UpstreamBody;

/// An upstream request for the cluster's protocol (HTTP/1.1 or HTTP/2).
pub fn build(
    method: &http::Method,
    mut headers: HeaderMap,
    path: &PathAndQuery,
    authority: Option<&HeaderValue>,
    endpoint: SocketAddr,
    protocol: UpstreamProtocol,
    body: UpstreamBody,
) -> Request<UpstreamBody> {
    let authority = authority.cloned().unwrap_or_else(|| {
        HeaderValue::from_str(&endpoint.to_string()).expect("an address is a valid header")
    });
    let mut request = Request::new(body);
    *request.method_mut() = method.clone();
    match protocol {
        UpstreamProtocol::Http1 => {
            *request.version_mut() = Version::HTTP_11;
            *request.uri_mut() = Uri::from(path.clone());
            headers.insert(HOST, authority);
        }
        UpstreamProtocol::Http2 => {
            *request.version_mut() = Version::HTTP_2;
            headers.remove(HOST);
            let mut uri = http::uri::Parts::default();
            uri.scheme = Some(Scheme::HTTP);
            uri.authority = Authority::try_from(authority.as_bytes()).ok();
            uri.path_and_query = Some(path.clone());
            *request.uri_mut() = Uri::from_parts(uri).unwrap_or_else(|_| Uri::from_static("/"));
        }
    }
    *request.headers_mut() = headers;
    request
}
