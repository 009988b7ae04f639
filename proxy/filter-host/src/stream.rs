//! Per-request data shared by every filter of a chain: header maps, the body
//! buffer a filter is currently shown, trailers, a local reply, filter state,
//! and the signals a paused filter is resumed with.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::facts::StreamFacts;
use crate::headers::Headers;

/// Header (or trailer) pairs in order; names lower-case, request pseudo
/// headers (`:method`, `:path`, `:authority`, `:scheme`) and `:status` included.
pub type HeaderList = Vec<(String, Vec<u8>)>;

/// A response a filter generated with `proxy_send_local_response`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: HeaderList,
    /// Body.
    pub body: Bytes,
    /// Status details (why the reply was sent).
    pub details: String,
    /// gRPC status, when the filter passed one (>= 0).
    pub grpc_status: Option<u32>,
}

/// TLS facts of the downstream connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// SNI the client asked for.
    pub server_name: Option<String>,
    /// Negotiated version, e.g. `TLSv1.3`.
    pub version: Option<String>,
    /// URI SANs of the client certificate (SPIFFE id first), when mTLS.
    pub peer_uri_sans: Vec<String>,
    /// Subject of the client certificate, when mTLS.
    pub peer_subject: Option<String>,
    /// Lowercase hex SHA-256 of the client certificate (DER), when mTLS.
    pub peer_cert_sha256: Option<String>,
    /// URI SANs of the certificate the proxy presented.
    pub local_uri_sans: Vec<String>,
}

/// What the host knows about the request when its chain starts (for
/// properties); what is learnt later arrives through `facts`.
#[derive(Clone, Debug)]
pub struct StreamInfo {
    /// Client address.
    pub source: SocketAddr,
    /// Local address that accepted the connection.
    pub destination: SocketAddr,
    /// Connection id.
    pub connection_id: u64,
    /// TLS, when the connection is encrypted.
    pub tls: Option<TlsInfo>,
    /// HTTP protocol, e.g. `HTTP/1.1`.
    pub protocol: &'static str,
    /// Request id (`x-request-id`).
    pub request_id: String,
    /// When the request started.
    pub start: SystemTime,
    /// Facts the proxy adds while serving the request (route, cluster,
    /// upstream, response details, body sizes).
    pub facts: Arc<StreamFacts>,
}

impl Default for StreamInfo {
    fn default() -> Self {
        let any = SocketAddr::from(([0, 0, 0, 0], 0));
        Self {
            source: any,
            destination: any,
            connection_id: 0,
            tls: None,
            protocol: "HTTP/1.1",
            request_id: String::new(),
            start: SystemTime::now(),
            facts: Arc::default(),
        }
    }
}

/// The mutable per-request state every filter's hostcalls act on.
#[derive(Debug)]
pub(crate) struct StreamData {
    pub request_headers: Headers,
    pub request_trailers: Headers,
    pub response_headers: Headers,
    pub response_trailers: Headers,
    /// A filter changed the request headers (index 0) or the response
    /// headers (index 1) in the current headers phase.
    pub headers_changed: [bool; 2],
    /// The request body bytes shown to the filter being called.
    pub request_body: Vec<u8>,
    /// The response body bytes shown to the filter being called.
    pub response_body: Vec<u8>,
    /// A local reply, first one wins.
    pub local_reply: Option<LocalReply>,
    /// Values set with `proxy_set_property`, by dotted path.
    pub filter_state: crate::state::StateMap,
    pub info: StreamInfo,
    /// How long the stream took, once it ended (`request.duration`).
    pub ended: Option<Duration>,
}

impl StreamData {
    /// A stream's data before any phase: `info`, and nothing else yet.
    pub fn new(info: StreamInfo) -> Self {
        Self {
            request_headers: Headers::default(),
            request_trailers: Headers::default(),
            response_headers: Headers::default(),
            response_trailers: Headers::default(),
            headers_changed: [false; 2],
            request_body: Vec::new(),
            response_body: Vec::new(),
            local_reply: None,
            filter_state: crate::state::StateMap::default(),
            info,
            ended: None,
        }
    }
}

impl Default for StreamData {
    fn default() -> Self {
        Self::new(StreamInfo::default())
    }
}

/// What the filters of one stream share: its data, a flag raised with a
/// local reply (read without the lock after every callback), and one
/// resumption signal per filter, all in one allocation.
#[derive(Debug)]
pub(crate) struct SharedStream {
    data: Mutex<StreamData>,
    /// `data.local_reply` is set.
    replied: AtomicBool,
    /// Writes by filters to the request or response headers so far: the
    /// chain re-reads the header count under the lock only when it moved.
    header_writes: AtomicU32,
    /// One per filter of the chain, in request order.
    pub signals: Box<[ResumeSignal]>,
}

impl SharedStream {
    /// A stream's shared state with a signal for each of `filters`.
    pub fn new(data: StreamData, filters: usize) -> Self {
        Self {
            data: Mutex::new(data),
            replied: AtomicBool::new(false),
            header_writes: AtomicU32::new(0),
            signals: (0..filters).map(|_| ResumeSignal::default()).collect(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, StreamData> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a filter's write to the request or response headers.
    pub fn note_header_write(&self) {
        self.header_writes.fetch_add(1, Ordering::Release);
    }

    /// How many header writes were noted so far.
    pub fn header_writes(&self) -> u32 {
        self.header_writes.load(Ordering::Acquire)
    }

    /// The local reply a filter sent, if any (the lock is taken only then).
    pub fn reply(&self) -> Option<LocalReply> {
        if !self.replied.load(Ordering::Acquire) {
            return None;
        }
        self.lock().local_reply.clone()
    }

    /// Keeps `reply` unless one was sent before (the first one wins).
    pub fn set_reply(&self, reply: LocalReply) {
        self.lock().local_reply.get_or_insert(reply);
        self.replied.store(true, Ordering::Release);
    }

    /// Forgets the local reply (its response phase is running).
    pub fn clear_reply(&self) {
        self.lock().local_reply = None;
        self.replied.store(false, Ordering::Release);
    }
}

/// Resumption signals of one filter on one stream.
#[derive(Debug, Default)]
pub(crate) struct ResumeSignal {
    pub request: AtomicBool,
    pub response: AtomicBool,
    /// The filter closed the stream.
    pub closed: AtomicBool,
    /// The filter's VM died.
    pub failed: AtomicBool,
    pub notify: Notify,
}

impl ResumeSignal {
    pub fn set(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

/// Case-insensitive header lookup helpers over a [`HeaderList`].
pub(crate) fn header_get<'a>(list: &'a HeaderList, name: &str) -> Option<&'a [u8]> {
    list.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Replaces every value of `name` with one value (or adds it).
#[cfg(test)]
pub(crate) fn header_replace(list: &mut HeaderList, mut name: String, value: Vec<u8>) {
    header_remove(list, &name);
    name.make_ascii_lowercase();
    list.push((name, value));
}

/// Removes every value of `name`.
pub(crate) fn header_remove(list: &mut HeaderList, name: &str) {
    list.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
}
