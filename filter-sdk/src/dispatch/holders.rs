//! Type erasure between the registry and user filters: [`RootHolder`] and
//! [`StreamHolder`] own a concrete filter with its context and turn raw host
//! callbacks into typed trait calls.

use crate::callout::{HttpResponse, read_grpc_message, read_grpc_metadata};
use crate::context::{HttpCtx, RootCtx};
use crate::filter::{HttpFilter, RootFilter};
use crate::shared::SharedQueue;
use std::cell::RefCell;
use std::rc::Rc;
use wasp_abi::{BufferType, LogLevel, MapType, StreamType};

/// A stream context, shared with the callback that runs on it: one
/// allocation per stream.
pub type SharedStream = Rc<RefCell<dyn ErasedStream>>;

/// Callout deliveries every context accepts.
pub trait CalloutSink {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize);
    fn on_grpc_initial_metadata(&mut self, token: u32, count: usize);
    fn on_grpc_message(&mut self, token: u32, size: usize);
    fn on_grpc_trailing_metadata(&mut self, token: u32, count: usize);
    fn on_grpc_close(&mut self, token: u32, status: u32);
}

/// A root filter, type-erased.
pub trait ErasedRoot: CalloutSink {
    fn on_vm_start(&mut self, size: usize) -> bool;
    fn on_configure(&mut self, size: usize) -> bool;
    fn on_tick(&mut self);
    fn on_queue_ready(&mut self, queue: u32);
    fn create_stream(&mut self, id: u32) -> Option<SharedStream>;
}

/// A stream filter, type-erased. Phase methods return the raw action.
pub trait ErasedStream: CalloutSink {
    fn on_headers(&mut self, phase: StreamType, end_of_stream: bool) -> u32;
    fn on_body(&mut self, phase: StreamType, size: usize, end_of_stream: bool) -> u32;
    fn on_trailers(&mut self, phase: StreamType) -> u32;
    fn on_log(&mut self);
    fn on_timer(&mut self, timer: u64);
}

/// Boxes a root filter for the registry.
pub(crate) fn boxed_root<R: RootFilter>(id: u32, filter: R) -> Box<dyn ErasedRoot> {
    Box::new(RootHolder {
        filter,
        ctx: RootCtx::new(id),
    })
}

struct RootHolder<R: RootFilter> {
    filter: R,
    ctx: RootCtx<R>,
}

fn read_plugin_buffer(buffer: BufferType, size: usize) -> Result<Vec<u8>, String> {
    if size == 0 {
        return Ok(Vec::new());
    }
    crate::abi::hostcalls::get_buffer(buffer, 0, size)
        .map(Option::unwrap_or_default)
        .map_err(|e| e.to_string())
}

fn parse_config<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_str("null")
            .or_else(|_| serde_json::from_str("{}"))
            .map_err(|e| format!("plugin configuration is empty and the filter needs one: {e}"));
    }
    let mut json = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("invalid plugin configuration: {}", e.inner())
        } else {
            format!("invalid plugin configuration: {path}: {}", e.inner())
        }
    })
}

impl<R: RootFilter> ErasedRoot for RootHolder<R> {
    fn on_vm_start(&mut self, size: usize) -> bool {
        let outcome = read_plugin_buffer(BufferType::VmConfiguration, size)
            .and_then(|bytes| self.filter.on_vm_start(&mut self.ctx, &bytes));
        match outcome {
            Ok(()) => true,
            Err(e) => {
                crate::log::log(LogLevel::Error, format_args!("VM start failed: {e}"));
                false
            }
        }
    }

    fn on_configure(&mut self, size: usize) -> bool {
        let outcome = read_plugin_buffer(BufferType::PluginConfiguration, size)
            .and_then(|bytes| parse_config::<R::Config>(&bytes))
            .and_then(|config| self.filter.on_configure(&mut self.ctx, config));
        match outcome {
            Ok(()) => true,
            Err(e) => {
                crate::log::log(LogLevel::Error, format_args!("configuration rejected: {e}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.filter.on_tick(&mut self.ctx);
    }

    fn on_queue_ready(&mut self, queue: u32) {
        self.filter
            .on_queue_ready(&mut self.ctx, SharedQueue::from_id(queue));
    }

    fn create_stream(&mut self, id: u32) -> Option<SharedStream> {
        let filter = self.filter.create_http_filter(&mut self.ctx)?;
        Some(Rc::new(RefCell::new(StreamHolder {
            filter,
            ctx: HttpCtx::new(id, self.ctx.id()),
        })))
    }
}

impl<R: RootFilter> CalloutSink for RootHolder<R> {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        if let Some(callback) = self.ctx.callouts.take_http(token) {
            let response = HttpResponse::read(headers, body, trailers);
            callback(&mut self.filter, &mut self.ctx, response);
        }
    }

    fn on_grpc_initial_metadata(&mut self, token: u32, count: usize) {
        if count > 0 {
            let metadata = read_grpc_metadata(MapType::GrpcReceiveInitialMetadata);
            self.ctx
                .callouts
                .grpc_part(token, |r| r.initial_metadata = metadata);
        }
    }

    fn on_grpc_message(&mut self, token: u32, size: usize) {
        let message = read_grpc_message(size);
        if let Some((callback, response)) = self.ctx.callouts.complete_grpc(token, message) {
            callback(&mut self.filter, &mut self.ctx, response);
        }
    }

    fn on_grpc_trailing_metadata(&mut self, token: u32, count: usize) {
        if count > 0 {
            let metadata = read_grpc_metadata(MapType::GrpcReceiveTrailingMetadata);
            self.ctx
                .callouts
                .grpc_part(token, |r| r.trailing_metadata = metadata);
        }
    }

    fn on_grpc_close(&mut self, token: u32, status: u32) {
        if let Some((callback, response)) = self.ctx.callouts.take_grpc(token, status) {
            callback(&mut self.filter, &mut self.ctx, response);
        }
    }
}

struct StreamHolder<F: HttpFilter> {
    filter: F,
    ctx: HttpCtx<F>,
}

fn body_buffer(phase: StreamType) -> BufferType {
    match phase {
        StreamType::HttpResponse => BufferType::HttpResponseBody,
        _ => BufferType::HttpRequestBody,
    }
}

impl<F: HttpFilter> ErasedStream for StreamHolder<F> {
    fn on_headers(&mut self, phase: StreamType, end_of_stream: bool) -> u32 {
        self.ctx.enter(phase);
        let action = if phase == StreamType::HttpResponse {
            self.filter
                .on_response_headers(&mut self.ctx, end_of_stream)
        } else {
            self.filter.on_request_headers(&mut self.ctx, end_of_stream)
        };
        self.ctx.finish_phase(action)
    }

    fn on_body(&mut self, phase: StreamType, size: usize, end_of_stream: bool) -> u32 {
        self.ctx.enter(phase);
        self.ctx.set_body_size(body_buffer(phase), size);
        let action = if phase == StreamType::HttpResponse {
            self.filter
                .on_response_body(&mut self.ctx, size, end_of_stream)
        } else {
            self.filter
                .on_request_body(&mut self.ctx, size, end_of_stream)
        };
        self.ctx.finish_phase(action)
    }

    fn on_trailers(&mut self, phase: StreamType) -> u32 {
        self.ctx.enter(phase);
        let action = if phase == StreamType::HttpResponse {
            self.filter.on_response_trailers(&mut self.ctx)
        } else {
            self.filter.on_request_trailers(&mut self.ctx)
        };
        self.ctx.finish_phase(action)
    }

    fn on_log(&mut self) {
        self.filter.on_log(&mut self.ctx);
    }

    fn on_timer(&mut self, timer: u64) {
        if let Some(callback) = self.ctx.timers.remove(&timer) {
            let action = callback(&mut self.filter, &mut self.ctx);
            self.ctx.finish_async(action);
        }
    }
}

impl<F: HttpFilter> CalloutSink for StreamHolder<F> {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        if let Some(callback) = self.ctx.callouts.take_http(token) {
            let response = HttpResponse::read(headers, body, trailers);
            let action = callback(&mut self.filter, &mut self.ctx, response);
            self.ctx.finish_async(action);
        }
    }

    fn on_grpc_initial_metadata(&mut self, token: u32, count: usize) {
        if count > 0 {
            let metadata = read_grpc_metadata(MapType::GrpcReceiveInitialMetadata);
            self.ctx
                .callouts
                .grpc_part(token, |r| r.initial_metadata = metadata);
        }
    }

    fn on_grpc_message(&mut self, token: u32, size: usize) {
        let message = read_grpc_message(size);
        if let Some((callback, response)) = self.ctx.callouts.complete_grpc(token, message) {
            let action = callback(&mut self.filter, &mut self.ctx, response);
            self.ctx.finish_async(action);
        }
    }

    fn on_grpc_trailing_metadata(&mut self, token: u32, count: usize) {
        if count > 0 {
            let metadata = read_grpc_metadata(MapType::GrpcReceiveTrailingMetadata);
            self.ctx
                .callouts
                .grpc_part(token, |r| r.trailing_metadata = metadata);
        }
    }

    fn on_grpc_close(&mut self, token: u32, status: u32) {
        if let Some((callback, response)) = self.ctx.callouts.take_grpc(token, status) {
            let action = callback(&mut self.filter, &mut self.ctx, response);
            self.ctx.finish_async(action);
        }
    }
}
