//! [`HttpCtx`]: everything a stream callback can do — headers, bodies,
//! trailers, local replies, pausing and resuming, callouts and timers.

use crate::abi::hostcalls;
use crate::callout::{Callouts, GrpcRequest, GrpcResponse, HttpRequest, HttpResponse};
use crate::dispatch;
use crate::error::Result;
use crate::filter::{Action, HttpFilter};
use crate::headers::{Body, Headers};
use crate::properties::Properties;
use std::time::Duration;
use wasp_abi::{BufferType, MapType, StreamType};

/// A pending timer callback of a stream.
pub(crate) type TimerCallback<F> = Box<dyn FnOnce(&mut F, &mut HttpCtx<F>) -> Action>;

/// The context of one HTTP stream, handed to every [`HttpFilter`] callback.
pub struct HttpCtx<F: HttpFilter> {
    id: u32,
    root_id: u32,
    phase: StreamType,
    paused: bool,
    responded: bool,
    request_body_size: usize,
    response_body_size: usize,
    pub(crate) callouts: Callouts<F, HttpCtx<F>, Action>,
    pub(crate) timers: dispatch::IdMap<u64, TimerCallback<F>>,
}

impl<F: HttpFilter> Properties for HttpCtx<F> {}

impl<F: HttpFilter> HttpCtx<F> {
    pub(crate) fn new(id: u32, root_id: u32) -> HttpCtx<F> {
        HttpCtx {
            id,
            root_id,
            phase: StreamType::HttpRequest,
            paused: false,
            responded: false,
            request_body_size: 0,
            response_body_size: 0,
            callouts: Callouts::default(),
            timers: dispatch::IdMap::default(),
        }
    }

    /// The host's id of this stream context.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The id of the plugin's root context.
    pub fn root_id(&self) -> u32 {
        self.root_id
    }

    /// The request headers.
    pub fn request_headers(&self) -> Headers {
        Headers::new(MapType::HttpRequestHeaders)
    }

    /// The request trailers.
    pub fn request_trailers(&self) -> Headers {
        Headers::new(MapType::HttpRequestTrailers)
    }

    /// The response headers.
    pub fn response_headers(&self) -> Headers {
        Headers::new(MapType::HttpResponseHeaders)
    }

    /// The response trailers.
    pub fn response_trailers(&self) -> Headers {
        Headers::new(MapType::HttpResponseTrailers)
    }

    /// The request body buffered so far (pause in `on_request_body` until
    /// `end_of_stream` to see all of it).
    pub fn request_body(&mut self) -> Body<'_> {
        Body::new(BufferType::HttpRequestBody, &mut self.request_body_size)
    }

    /// The response body buffered so far.
    pub fn response_body(&mut self) -> Body<'_> {
        Body::new(BufferType::HttpResponseBody, &mut self.response_body_size)
    }

    /// True while the stream is paused by this filter.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// True once this filter sent a local reply.
    pub fn has_responded(&self) -> bool {
        self.responded
    }

    /// Resumes the stream if this filter paused it.
    pub fn resume(&mut self) {
        if self.paused {
            self.paused = false;
            if let Err(e) = hostcalls::continue_stream(self.phase) {
                crate::log::report(&e);
            }
        }
    }

    /// Resets the stream in the current direction (`proxy_close_stream`).
    pub fn close(&mut self) {
        if let Err(e) = hostcalls::close_stream(self.phase) {
            crate::log::report(&e);
        }
    }

    /// Cancels a pending gRPC callout; its callback will not run.
    pub fn cancel_grpc(&mut self, token: u32) {
        self.callouts.forget_grpc(token);
        if let Err(e) = hostcalls::grpc_cancel(token) {
            crate::log::report(&e);
        }
    }

    /// Sends a local reply now (what [`Action::Respond`] does).
    pub fn respond(&mut self, status: u16, headers: &[(String, String)], body: &[u8]) {
        self.responded = true;
        if let Err(e) = hostcalls::send_local_response(u32::from(status), "", body, headers, None) {
            crate::log::report(&e);
        }
    }

    /// Answers with a gRPC status (`proxy_send_local_response` with its
    /// `grpc_status` argument), as Envoy's gRPC local replies: a gRPC request
    /// gets a trailers-only response (HTTP 200, `content-type:
    /// application/grpc`, `grpc-status`, `message` as `grpc-message`); any
    /// other request gets HTTP 200 with `message` as its body. Return
    /// [`Action::Pause`] from the callback that calls it.
    pub fn respond_grpc(&mut self, grpc_status: u32, message: &str) {
        self.responded = true;
        let grpc = i32::try_from(grpc_status).unwrap_or(i32::MAX);
        if let Err(e) = hostcalls::send_local_response(200, "", message.as_bytes(), &[], Some(grpc))
        {
            crate::log::report(&e);
        }
    }

    /// Sends an HTTP callout; `callback` runs with the filter and this
    /// context when the response (or failure) arrives, and its [`Action`]
    /// decides what happens to the stream (`Continue` resumes it if paused).
    /// Pause the stream (return [`Action::Pause`]) to wait for the response.
    pub fn http_call(
        &mut self,
        request: HttpRequest,
        callback: impl FnOnce(&mut F, &mut HttpCtx<F>, HttpResponse) -> Action + 'static,
    ) -> Result<u32> {
        let token = request.dispatch()?;
        dispatch::register_token(token, self.id);
        self.callouts.add_http(token, Box::new(callback));
        Ok(token)
    }

    /// Sends an HTTP callout that is not tied to this stream (fire and
    /// forget): the stream neither waits for it nor is resumed by it, and
    /// `callback` gets only the response (or failure, `status() == None`)
    /// when it arrives, even after this stream has ended. Use it for work
    /// whose outcome must not touch the request, such as a mirrored copy;
    /// count outcomes with metrics from the callback.
    pub fn http_call_detached(
        &mut self,
        request: HttpRequest,
        callback: impl FnOnce(HttpResponse) + 'static,
    ) -> Result<u32> {
        let token = request.dispatch()?;
        dispatch::add_detached(token, Box::new(callback));
        Ok(token)
    }

    /// Sends a unary gRPC callout; like [`HttpCtx::http_call`].
    pub fn grpc_call(
        &mut self,
        request: GrpcRequest,
        callback: impl FnOnce(&mut F, &mut HttpCtx<F>, GrpcResponse) -> Action + 'static,
    ) -> Result<u32> {
        let token = request.dispatch()?;
        dispatch::register_token(token, self.id);
        self.callouts.add_grpc(token, Box::new(callback));
        Ok(token)
    }

    /// Runs `callback` after `delay` (driven by the root context's tick, with
    /// [`crate::TIMER_GRANULARITY`]); its [`Action`] applies to the stream.
    /// Returns the timer's id.
    pub fn set_timer(
        &mut self,
        delay: Duration,
        callback: impl FnOnce(&mut F, &mut HttpCtx<F>) -> Action + 'static,
    ) -> u64 {
        let timer = dispatch::add_timer(self.root_id, self.id, delay);
        self.timers.insert(timer, Box::new(callback));
        timer
    }

    /// Enters a stream phase callback.
    pub(crate) fn enter(&mut self, phase: StreamType) {
        self.phase = phase;
    }

    pub(crate) fn set_body_size(&mut self, buffer: BufferType, size: usize) {
        match buffer {
            BufferType::HttpResponseBody => self.response_body_size = size,
            _ => self.request_body_size = size,
        }
    }

    /// Applies the action a phase callback returned; the raw action for the host.
    pub(crate) fn finish_phase(&mut self, action: Action) -> u32 {
        match action {
            Action::Continue => {
                self.paused = false;
                wasp_abi::Action::Continue as u32
            }
            Action::Pause => {
                self.paused = true;
                wasp_abi::Action::Pause as u32
            }
            Action::Respond(status, headers, body) => {
                self.respond(status, &headers, &body);
                self.paused = true;
                wasp_abi::Action::Pause as u32
            }
        }
    }

    /// Applies the action a callout or timer callback returned.
    pub(crate) fn finish_async(&mut self, action: Action) {
        match action {
            Action::Continue => self.resume(),
            Action::Pause => {}
            Action::Respond(status, headers, body) => self.respond(status, &headers, &body),
        }
    }
}
