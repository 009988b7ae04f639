//! The data a wasmtime `Store` carries for one VM: the plugin it runs, its
//! limits, the guest's memory and allocator, and the contexts alive in it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Weak};

use wasmtime::{Memory, StoreLimits, TypedFunc};

use crate::limits::Limit;
use crate::node::NodeInfo;
use crate::plugin::PluginCore;
use crate::pool::VmSlot;
use crate::stream::{HeaderList, ResumeSignal, SharedStream, StreamData};

/// Log lines of a starting filter kept for the error that refuses it.
pub(crate) const START_LOG_LINES: usize = 10;
/// Longest log line kept for that error, in bytes.
pub(crate) const START_LOG_LINE_BYTES: usize = 300;

/// Hashes the ids the VM hands out itself (context ids, callout tokens):
/// one multiplication instead of SipHash, on every callback and hostcall.
#[derive(Clone, Copy, Default)]
pub(crate) struct IdHasher(u64);

/// Spreads consecutive ids over the whole hash (the golden ratio, odd).
const ID_SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(ID_SPREAD);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = (self.0 ^ u64::from(id)).wrapping_mul(ID_SPREAD);
    }
}

/// A filter state key: a dotted path's bytes (UTF-8), inline up to 24
/// bytes, as nearly every key filters publish is (`request.auth.principal`,
/// `telemetry.trace_id`): setting one allocates nothing.
pub(crate) type StateKey = smallvec::SmallVec<[u8; 24]>;

/// A filter state value, inline up to 32 bytes (a principal, a trace id, a
/// flag); longer values are on the heap.
pub(crate) type StateValue = smallvec::SmallVec<[u8; 32]>;

/// Filter state (`proxy_set_property` values) by dotted path, and the bytes
/// of its keys and values (what `max_property_bytes` limits), kept as
/// values are set. The keys are the filters' strings, which may come from
/// requests: hashed with a per-process random seed (foldhash), several
/// times faster than the standard library's SipHash on such short keys.
#[derive(Debug, Default)]
pub(crate) struct StateMap {
    values: HashMap<StateKey, StateValue, foldhash::fast::RandomState>,
    bytes: usize,
}

impl StateMap {
    /// True when nothing was set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value set under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&StateValue> {
        self.values.get(key)
    }

    /// Sets `key` to `value`, unless that grows the bytes of every key and
    /// value past `max` (a change that shrinks them is always taken).
    pub fn set(&mut self, key: StateKey, value: StateValue, max: u64) -> Result<(), Limit> {
        let before = self.bytes;
        let replaced = self.values.get(&key).map_or(0, |v| key.len() + v.len());
        let after = before - replaced + key.len() + value.len();
        if crate::limits::grows_past(before as u64, after as u64, max) {
            return Err(Limit::PropertyBytes);
        }
        if self.values.capacity() == 0 {
            // Filters publish a few values per stream (jwt-authn four):
            // room for them at once instead of growing twice.
            self.values.reserve(8);
        }
        self.values.insert(key, value);
        self.bytes = after;
        Ok(())
    }
}

/// A map keyed by ids the VM hands out.
pub(crate) type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// One HTTP stream bound to this VM.
pub(crate) struct StreamBinding {
    pub stream: Arc<SharedStream>,
    /// The filter's place in the chain (its signal's index).
    pub filter: usize,
}

impl StreamBinding {
    /// The stream's data, locked.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, StreamData> {
        self.stream.lock()
    }

    /// The filter's resumption signal.
    pub fn signal(&self) -> &ResumeSignal {
        &self.stream.signals[self.filter]
    }
}

/// What a callout callback may read while it runs.
#[derive(Default)]
pub(crate) struct CalloutView {
    pub headers: HeaderList,
    pub body: Vec<u8>,
    pub trailers: HeaderList,
    /// gRPC status code and message (`proxy_get_status`).
    pub status: Option<(u32, String)>,
}

/// What kind of callout a token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CalloutKind {
    Http,
    GrpcCall,
    GrpcStream,
}

/// A gRPC stream a filter opened.
pub(crate) struct GrpcStream {
    /// Sends request bytes; `None` once the filter ended its side.
    pub outgoing: Option<tokio::sync::mpsc::UnboundedSender<bytes::Bytes>>,
    /// Forwards response events to the VM (aborted on cancel).
    pub task: tokio::task::JoinHandle<()>,
    /// Response bytes that are not a whole message yet.
    pub inbound: Vec<u8>,
    /// gRPC status from the headers or trailers, or the failure.
    pub status: Option<(u32, String)>,
    /// Request bytes sent so far (headers and framed messages), counted
    /// against `max_callout_request_bytes`.
    pub sent: u64,
}

/// Per-VM store data.
pub(crate) struct VmState {
    pub core: Arc<PluginCore>,
    pub limits: StoreLimits,
    pub memory: Option<Memory>,
    pub malloc: Option<TypedFunc<u32, u32>>,
    pub root_context: u32,
    /// The context hostcalls act on (set before each callback).
    pub effective_context: u32,
    pub streams: IdMap<StreamBinding>,
    pub callout: Option<CalloutView>,
    /// Outstanding callouts by token. As in Envoy, every callout belongs to
    /// the root context, whichever context made it: its outcome is delivered
    /// with the root context's id and it outlives the HTTP context.
    pub pending: IdMap<CalloutKind>,
    pub tick_period_ms: u32,
    pub next_context: u32,
    pub next_token: u32,
    pub slot: Weak<VmSlot>,
    pub generation: u64,
    /// Open gRPC streams (`proxy_grpc_stream`) by token.
    pub grpc_streams: IdMap<GrpcStream>,
    /// Properties set outside any stream (root context).
    pub root_state: StateMap,
    /// Node facts as they were when this VM was created.
    pub node: Arc<NodeInfo>,
    /// The filter's log lines while its root context starts (shown when
    /// `proxy_on_vm_start` or `proxy_on_configure` refuses); `None` after.
    pub start_log: Option<Vec<String>>,
    /// The thread's CPU time when the running callback passed the wall-clock
    /// part of its deadline (see [`crate::vm::Deadline`]); reset before
    /// each callback.
    pub deadline_mark: Option<std::time::Duration>,
}

impl VmState {
    pub fn new(
        core: Arc<PluginCore>,
        limits: StoreLimits,
        slot: Weak<VmSlot>,
        generation: u64,
    ) -> Self {
        let node = core.services.node();
        Self {
            node,
            core,
            limits,
            memory: None,
            malloc: None,
            root_context: 1,
            effective_context: 1,
            streams: IdMap::default(),
            callout: None,
            pending: IdMap::default(),
            tick_period_ms: 0,
            next_context: 2,
            next_token: 1,
            slot,
            generation,
            grpc_streams: IdMap::default(),
            root_state: StateMap::default(),
            start_log: None,
            deadline_mark: None,
        }
    }

    /// Keeps a log line of the filter while its root context starts: the
    /// first [`START_LOG_LINES`], each cut to [`START_LOG_LINE_BYTES`].
    pub fn capture_log(&mut self, message: &str) {
        let Some(lines) = self.start_log.as_mut() else {
            return;
        };
        if lines.len() < START_LOG_LINES && !message.is_empty() {
            let mut end = message.len().min(START_LOG_LINE_BYTES);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            lines.push(message[..end].to_owned());
        }
    }

    /// The stream of the effective context, if it is an HTTP context.
    pub fn stream(&self) -> Option<&StreamBinding> {
        self.streams.get(&self.effective_context)
    }
}
