//! The mock host's state: header maps and buffers per context, properties,
//! shared data, queues, metrics, logs, the clock, and a record of every
//! callout, local reply and stream resumption a filter made.

use crate::filter::HeaderList;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use wasp_abi::{BufferType, LogLevel, MapType, MetricType, StreamType};

/// The slot holding maps and buffers that belong to no stream (callout
/// responses, configurations).
pub(crate) const GLOBAL: u32 = 0;

/// An HTTP callout a filter made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCallRecord {
    /// The callout's token (pass it back to deliver the response).
    pub token: u32,
    /// The context that made it.
    pub context_id: u32,
    /// The cluster it was sent to.
    pub cluster: String,
    /// Its headers.
    pub headers: HeaderList,
    /// Its body.
    pub body: Vec<u8>,
    /// Its trailers.
    pub trailers: HeaderList,
    /// Its timeout.
    pub timeout: Duration,
}

impl HttpCallRecord {
    /// A header's first value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A gRPC callout a filter made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCallRecord {
    /// The callout's token.
    pub token: u32,
    /// The context that made it.
    pub context_id: u32,
    /// The cluster it was sent to.
    pub cluster: String,
    /// The service name.
    pub service: String,
    /// The method name.
    pub method: String,
    /// Initial metadata.
    pub metadata: HeaderList,
    /// The request message.
    pub message: Vec<u8>,
    /// Its timeout.
    pub timeout: Duration,
}

/// A local reply a filter sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u32,
    /// Status details.
    pub details: String,
    /// Extra headers.
    pub headers: HeaderList,
    /// Body.
    pub body: Vec<u8>,
    /// gRPC status, when one was given.
    pub grpc_status: Option<i32>,
}

impl LocalReply {
    /// The body as text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's first value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A metric a filter defined, with what was recorded on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricRecord {
    /// The metric's kind.
    pub kind: MetricType,
    /// Its name.
    pub name: String,
    /// Counter/gauge value, or the last histogram value.
    pub value: i64,
    /// Every value recorded on a histogram.
    pub samples: Vec<u64>,
}

pub(crate) struct Queue {
    pub name: String,
    pub owner_root: u32,
    pub messages: VecDeque<Vec<u8>>,
}

#[derive(Default)]
pub(crate) struct MockState {
    pub effective: u32,
    pub roots_of: HashMap<u32, u32>,
    pub maps: HashMap<(u32, u32), HeaderList>,
    pub buffers: HashMap<(u32, u32), Vec<u8>>,
    /// Body bytes a filter let through (it continued): gone from its buffer,
    /// as in Envoy and wasp, but still part of the stream's body.
    pub passed: HashMap<(u32, u32), Vec<u8>>,
    pub properties: HashMap<Vec<String>, Vec<u8>>,
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    pub queues: Vec<Queue>,
    pub queue_ready: VecDeque<(u32, u32)>,
    pub metrics: Vec<MetricRecord>,
    pub logs: Vec<(LogLevel, String)>,
    pub log_level: Option<LogLevel>,
    pub now_ns: u64,
    pub tick_ms: HashMap<u32, u32>,
    pub next_tick_ns: HashMap<u32, u64>,
    pub next_token: u32,
    pub http_calls: Vec<HttpCallRecord>,
    pub grpc_calls: Vec<GrpcCallRecord>,
    pub cancelled_grpc: Vec<u32>,
    /// (callout token, context id its outcome was delivered with).
    pub deliveries: Vec<(u32, u32)>,
    pub grpc_status: (u32, String),
    pub local_replies: HashMap<u32, LocalReply>,
    pub continued: Vec<(u32, StreamType)>,
    pub closed: Vec<(u32, StreamType)>,
}

thread_local! {
    pub(crate) static MOCK: RefCell<MockState> = RefCell::new(MockState::default());
}

/// Runs `f` on this thread's mock host state.
pub(crate) fn with<T>(f: impl FnOnce(&mut MockState) -> T) -> T {
    MOCK.with(|m| f(&mut m.borrow_mut()))
}

fn is_global_map(map: u32) -> bool {
    !matches!(
        MapType::try_from(map),
        Ok(MapType::HttpRequestHeaders
            | MapType::HttpRequestTrailers
            | MapType::HttpResponseHeaders
            | MapType::HttpResponseTrailers)
    )
}

fn is_global_buffer(buffer: u32) -> bool {
    !matches!(
        BufferType::try_from(buffer),
        Ok(BufferType::HttpRequestBody | BufferType::HttpResponseBody)
    )
}

impl MockState {
    /// The key of a header map as seen from the effective context.
    pub fn map_key(&self, map: u32) -> (u32, u32) {
        (
            if is_global_map(map) {
                GLOBAL
            } else {
                self.effective
            },
            map,
        )
    }

    /// The key of a buffer as seen from the effective context.
    pub fn buffer_key(&self, buffer: u32) -> (u32, u32) {
        (
            if is_global_buffer(buffer) {
                GLOBAL
            } else {
                self.effective
            },
            buffer,
        )
    }

    /// The root context of `context` (itself for roots).
    pub fn root_of(&self, context: u32) -> u32 {
        self.roots_of.get(&context).copied().unwrap_or(context)
    }

    pub fn metric(&self, name: &str) -> Option<&MetricRecord> {
        self.metrics.iter().find(|m| m.name == name)
    }
}
