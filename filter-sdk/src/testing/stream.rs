//! [`HttpStream`]: one HTTP stream driven through a filter on the mock host,
//! phase by phase, with accessors for what the filter changed.

use super::state::{LocalReply, with};
use super::{HostAction, call};
use crate::dispatch;
use wasp_abi::{BufferType, MapType, StreamType};

/// One HTTP stream on the mock host.
#[derive(Debug)]
pub struct HttpStream {
    id: u32,
}

fn to_pairs(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn action(raw: u32) -> HostAction {
    HostAction::try_from(raw).unwrap_or_else(|raw| panic!("filter returned unknown action {raw}"))
}

impl HttpStream {
    pub(crate) fn new(id: u32) -> HttpStream {
        HttpStream { id }
    }

    /// The stream's context id.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn set_map(&self, map: MapType, headers: &[(&str, &str)]) -> usize {
        with(|m| m.maps.insert((self.id, map as u32), to_pairs(headers)));
        headers.len()
    }

    fn map(&self, map: MapType) -> Vec<(String, String)> {
        with(|m| {
            m.maps
                .get(&(self.id, map as u32))
                .cloned()
                .unwrap_or_default()
        })
    }

    fn first(&self, map: MapType, name: &str) -> Option<String> {
        self.map(map)
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn push_body(&self, buffer: BufferType, chunk: &[u8]) -> usize {
        with(|m| {
            let body = m.buffers.entry((self.id, buffer as u32)).or_default();
            body.extend_from_slice(chunk);
            body.len()
        })
    }

    fn body(&self, buffer: BufferType) -> Vec<u8> {
        with(|m| {
            let key = (self.id, buffer as u32);
            let mut body = m.passed.get(&key).cloned().unwrap_or_default();
            body.extend_from_slice(m.buffers.get(&key).map_or(&[][..], Vec::as_slice));
            body
        })
    }

    /// After a body callback: data a filter continued with has gone on, so
    /// the next callback shows only the new chunk (as Envoy and wasp do);
    /// data it paused on stays buffered and grows.
    fn settle_body(&self, buffer: BufferType, action: HostAction) -> HostAction {
        if action == HostAction::Continue {
            with(|m| {
                let key = (self.id, buffer as u32);
                let sent = m.buffers.remove(&key).unwrap_or_default();
                m.passed.entry(key).or_default().extend_from_slice(&sent);
            });
        }
        action
    }

    /// Delivers the request headers (`proxy_on_request_headers`).
    pub fn request_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> HostAction {
        self.set_map(MapType::HttpRequestHeaders, headers);
        let id = self.id;
        action(call(id, || {
            dispatch::on_headers(id, StreamType::HttpRequest, end_of_stream)
        }))
    }

    /// Delivers a chunk of request body; the filter sees the size buffered
    /// so far: the chunks since it last continued.
    pub fn request_body(&mut self, chunk: &[u8], end_of_stream: bool) -> HostAction {
        let size = self.push_body(BufferType::HttpRequestBody, chunk);
        let id = self.id;
        let raw = action(call(id, || {
            dispatch::on_body(id, StreamType::HttpRequest, size, end_of_stream)
        }));
        self.settle_body(BufferType::HttpRequestBody, raw)
    }

    /// Delivers the request trailers.
    pub fn request_trailers(&mut self, trailers: &[(&str, &str)]) -> HostAction {
        self.set_map(MapType::HttpRequestTrailers, trailers);
        let id = self.id;
        action(call(id, || {
            dispatch::on_trailers(id, StreamType::HttpRequest)
        }))
    }

    /// Delivers the response headers (`proxy_on_response_headers`).
    pub fn response_headers(
        &mut self,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> HostAction {
        self.set_map(MapType::HttpResponseHeaders, headers);
        let id = self.id;
        action(call(id, || {
            dispatch::on_headers(id, StreamType::HttpResponse, end_of_stream)
        }))
    }

    /// Delivers a chunk of response body (see [`HttpStream::request_body`]).
    pub fn response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> HostAction {
        let size = self.push_body(BufferType::HttpResponseBody, chunk);
        let id = self.id;
        let raw = action(call(id, || {
            dispatch::on_body(id, StreamType::HttpResponse, size, end_of_stream)
        }));
        self.settle_body(BufferType::HttpResponseBody, raw)
    }

    /// Delivers the response trailers.
    pub fn response_trailers(&mut self, trailers: &[(&str, &str)]) -> HostAction {
        self.set_map(MapType::HttpResponseTrailers, trailers);
        let id = self.id;
        action(call(id, || {
            dispatch::on_trailers(id, StreamType::HttpResponse)
        }))
    }

    /// Ends the stream: `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`.
    pub fn finish(self) {
        let id = self.id;
        call(id, || {
            dispatch::on_done(id);
            dispatch::on_log(id);
            dispatch::on_delete(id);
        });
    }

    /// A request header's first value as the filter left it.
    pub fn request_header(&self, name: &str) -> Option<String> {
        self.first(MapType::HttpRequestHeaders, name)
    }

    /// All request headers as the filter left them.
    pub fn request_header_list(&self) -> Vec<(String, String)> {
        self.map(MapType::HttpRequestHeaders)
    }

    /// A response header's first value as the filter left it.
    pub fn response_header(&self, name: &str) -> Option<String> {
        self.first(MapType::HttpResponseHeaders, name)
    }

    /// All response headers as the filter left them.
    pub fn response_header_list(&self) -> Vec<(String, String)> {
        self.map(MapType::HttpResponseHeaders)
    }

    /// A request trailer's value.
    pub fn request_trailer(&self, name: &str) -> Option<String> {
        self.first(MapType::HttpRequestTrailers, name)
    }

    /// A response trailer's value.
    pub fn response_trailer(&self, name: &str) -> Option<String> {
        self.first(MapType::HttpResponseTrailers, name)
    }

    /// The request body as the filter left it.
    pub fn request_body_bytes(&self) -> Vec<u8> {
        self.body(BufferType::HttpRequestBody)
    }

    /// The response body as the filter left it.
    pub fn response_body_bytes(&self) -> Vec<u8> {
        self.body(BufferType::HttpResponseBody)
    }

    /// The local reply the filter sent on this stream, if any.
    pub fn local_reply(&self) -> Option<LocalReply> {
        with(|m| m.local_replies.get(&self.id).cloned())
    }

    /// The directions the filter closed (`proxy_close_stream`), in order.
    pub fn closed(&self) -> Vec<StreamType> {
        with(|m| {
            m.closed
                .iter()
                .filter(|(ctx, _)| *ctx == self.id)
                .map(|(_, s)| *s)
                .collect()
        })
    }

    /// The directions the filter resumed (`proxy_continue_stream`), in order.
    pub fn resumed(&self) -> Vec<StreamType> {
        with(|m| {
            m.continued
                .iter()
                .filter(|(ctx, _)| *ctx == self.id)
                .map(|(_, s)| *s)
                .collect()
        })
    }
}
