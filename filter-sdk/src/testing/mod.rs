//! The native test host. On non-wasm targets every host call of the SDK goes
//! to an in-process mock host; [`Harness`] drives a filter through it the way
//! a proxy would — configuration, streams, callout responses, ticks — and
//! lets tests assert on what the filter did.
//!
//! ```
//! # use wasp_filter_sdk::prelude::*;
//! # use wasp_filter_sdk::testing::Harness;
//! #[derive(Default)]
//! struct Root;
//! struct Tag;
//! impl RootFilter for Root {
//!     type Config = ();
//!     type Http = Tag;
//!     fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Tag> { Some(Tag) }
//! }
//! impl HttpFilter for Tag {
//!     fn on_response_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
//!         ctx.response_headers().set("x-tag", "1");
//!         Action::Continue
//!     }
//! }
//! let mut host = Harness::new(Root);
//! assert!(host.configure(""));
//! let mut stream = host.stream();
//! stream.response_headers(&[(":status", "200")], true);
//! assert_eq!(stream.response_header("x-tag").as_deref(), Some("1"));
//! ```
//!
//! The mock host is per thread (each `#[test]` runs on its own thread);
//! creating a [`Harness`] resets it.

pub(crate) mod state;
mod stream;

pub use state::{GrpcCallRecord, HttpCallRecord, LocalReply, MetricRecord};
pub use stream::HttpStream;
pub use wasp_abi::Action as HostAction;
pub use wasp_abi::{LogLevel, MetricType, StreamType};

use crate::dispatch;
use crate::filter::RootFilter;
use state::{GLOBAL, with};
use std::time::Duration;
use wasp_abi::{BufferType, MapType};

/// The root context id the harness gives its plugin.
pub const ROOT_ID: u32 = 1;

/// Drives one plugin (a root filter and its streams) on the mock host.
pub struct Harness {
    next_id: u32,
    vm_started: bool,
}

/// Delivers queue notifications the filter caused, as a host would after
/// the callback returned.
pub(crate) fn flush() {
    while let Some((root, queue)) = with(|m| m.queue_ready.pop_front()) {
        with(|m| m.effective = root);
        dispatch::on_queue_ready(root, queue);
    }
}

/// Runs `f` as a host callback into `context`.
pub(crate) fn call<T>(context: u32, f: impl FnOnce() -> T) -> T {
    with(|m| m.effective = context);
    let out = f();
    flush();
    out
}

fn property_path<S: AsRef<str>>(path: &[S]) -> Vec<String> {
    path.iter().map(|s| s.as_ref().to_string()).collect()
}

impl Harness {
    /// A fresh mock host with `root` as the plugin's root filter (context
    /// [`ROOT_ID`]). Call [`Harness::configure`] next.
    pub fn new<R: RootFilter>(root: R) -> Harness {
        with(|m| *m = Default::default());
        dispatch::reset();
        crate::metrics::reset_cache();
        let mut root = Some(root);
        call(ROOT_ID, || {
            dispatch::create_root(
                ROOT_ID,
                dispatch::boxed_root(ROOT_ID, root.take().expect("once")),
            )
        });
        Harness {
            next_id: ROOT_ID + 1,
            vm_started: false,
        }
    }

    /// Runs `proxy_on_vm_start` with a VM configuration; its result.
    pub fn start_vm(&mut self, vm_config: &[u8]) -> bool {
        self.vm_started = true;
        with(|m| {
            m.buffers.insert(
                (GLOBAL, BufferType::VmConfiguration as u32),
                vm_config.to_vec(),
            )
        });
        call(ROOT_ID, || dispatch::on_vm_start(ROOT_ID, vm_config.len()))
    }

    /// Runs `proxy_on_configure` with this plugin configuration (starting the
    /// VM first if needed); false when the filter rejected it.
    pub fn configure(&mut self, config: &str) -> bool {
        if !self.vm_started && !self.start_vm(b"") {
            return false;
        }
        with(|m| {
            m.buffers.insert(
                (GLOBAL, BufferType::PluginConfiguration as u32),
                config.as_bytes().to_vec(),
            )
        });
        call(ROOT_ID, || dispatch::on_configure(ROOT_ID, config.len()))
    }

    /// Opens a new HTTP stream (`proxy_on_context_create` with the root as parent).
    pub fn stream(&mut self) -> HttpStream {
        let id = self.next_id;
        self.next_id += 1;
        with(|m| m.roots_of.insert(id, ROOT_ID));
        call(id, || {
            dispatch::on_context_create(id, ROOT_ID, |_| unreachable!("the root exists"))
        });
        HttpStream::new(id)
    }

    /// The tick period the root context asked the host for (`None`: no ticks).
    pub fn tick_period(&self) -> Option<Duration> {
        with(|m| m.tick_ms.get(&ROOT_ID).copied())
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(u64::from(ms)))
    }

    /// Moves the clock forward by `by`, ticking the root context whenever its
    /// tick period elapses on the way.
    pub fn advance(&mut self, by: Duration) {
        let target = with(|m| m.now_ns) + u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        loop {
            let next = with(|m| {
                m.tick_ms
                    .get(&ROOT_ID)
                    .filter(|ms| **ms > 0)
                    .and_then(|_| m.next_tick_ns.get(&ROOT_ID).copied())
            });
            match next {
                Some(at) if at <= target => {
                    with(|m| {
                        m.now_ns = at;
                        let period = u64::from(m.tick_ms[&ROOT_ID]) * 1_000_000;
                        m.next_tick_ns.insert(ROOT_ID, at + period);
                    });
                    call(ROOT_ID, || dispatch::on_tick(ROOT_ID));
                }
                _ => break,
            }
        }
        with(|m| m.now_ns = target);
    }

    /// Every HTTP callout made so far.
    pub fn http_calls(&self) -> Vec<HttpCallRecord> {
        with(|m| m.http_calls.clone())
    }

    /// Delivers a response to the HTTP callout `token`.
    pub fn respond_http_call(
        &mut self,
        token: u32,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        let mut pairs = vec![(":status".to_string(), status.to_string())];
        pairs.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let count = pairs.len();
        with(|m| {
            m.maps
                .insert((GLOBAL, MapType::HttpCallResponseHeaders as u32), pairs);
            m.buffers.insert(
                (GLOBAL, BufferType::HttpCallResponseBody as u32),
                body.to_vec(),
            );
        });
        self.deliver_http(token, count, body.len());
    }

    /// Fails the HTTP callout `token` (no headers, as on a reset or timeout).
    pub fn fail_http_call(&mut self, token: u32) {
        self.deliver_http(token, 0, 0);
    }

    /// Delivers with the id of the caller's root context, as Envoy and wasp
    /// do (callouts belong to the root context); the SDK finds the context
    /// that made the call from the token.
    fn deliver_http(&mut self, token: u32, headers: usize, body: usize) {
        let root = self.root_of_caller(token, self.owner(token, |m| &m.http_calls));
        call(root, || {
            dispatch::on_http_call_response(root, token, headers, body, 0)
        });
    }

    /// The root context of the context that made callout `token`, which
    /// its outcome is delivered with.
    fn root_of_caller(&self, token: u32, caller: u32) -> u32 {
        with(|m| {
            let root = m.root_of(caller);
            m.deliveries.push((token, root));
            root
        })
    }

    /// The context ids the outcomes of callout `token` were delivered with,
    /// in order: always the root context of the context that made it.
    pub fn callout_deliveries(&self, token: u32) -> Vec<u32> {
        with(|m| {
            m.deliveries
                .iter()
                .filter(|(t, _)| *t == token)
                .map(|(_, context)| *context)
                .collect()
        })
    }

    fn owner(&self, token: u32, calls: impl Fn(&state::MockState) -> &Vec<HttpCallRecord>) -> u32 {
        with(|m| {
            calls(m)
                .iter()
                .find(|c| c.token == token)
                .map(|c| c.context_id)
                .unwrap_or_else(|| panic!("no HTTP callout with token {token}"))
        })
    }

    /// Every gRPC callout made so far.
    pub fn grpc_calls(&self) -> Vec<GrpcCallRecord> {
        with(|m| m.grpc_calls.clone())
    }

    /// Completes the gRPC callout `token` with status OK and `message`.
    pub fn respond_grpc_call(&mut self, token: u32, message: &[u8]) {
        let root = self.root_of_caller(token, self.grpc_owner(token));
        with(|m| {
            m.buffers.insert(
                (GLOBAL, BufferType::GrpcReceiveBuffer as u32),
                message.to_vec(),
            );
            m.grpc_status = (0, String::new());
        });
        // A unary call's success is its one message and no close, as in
        // Envoy and wasp.
        call(root, || {
            dispatch::on_grpc_message(root, token, message.len())
        });
    }

    /// Ends the gRPC callout `token` with an error status and message.
    pub fn fail_grpc_call(&mut self, token: u32, status: u32, message: &str) {
        let root = self.root_of_caller(token, self.grpc_owner(token));
        with(|m| m.grpc_status = (status, message.to_string()));
        call(root, || dispatch::on_grpc_close(root, token, status));
    }

    fn grpc_owner(&self, token: u32) -> u32 {
        with(|m| {
            m.grpc_calls
                .iter()
                .find(|c| c.token == token)
                .map(|c| c.context_id)
                .unwrap_or_else(|| panic!("no gRPC callout with token {token}"))
        })
    }

    /// Tokens of the gRPC callouts the filter cancelled.
    pub fn cancelled_grpc_calls(&self) -> Vec<u32> {
        with(|m| m.cancelled_grpc.clone())
    }

    /// Every log line written so far.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        with(|m| m.logs.clone())
    }

    /// True when a log line at `level` contains `needle`.
    pub fn logged(&self, level: LogLevel, needle: &str) -> bool {
        with(|m| {
            m.logs
                .iter()
                .any(|(l, text)| *l == level && text.contains(needle))
        })
    }

    /// Sets the level `proxy_get_log_level` reports.
    pub fn set_log_level(&mut self, level: LogLevel) {
        with(|m| m.log_level = Some(level));
    }

    /// A metric the filter defined.
    pub fn metric(&self, name: &str) -> Option<MetricRecord> {
        with(|m| m.metric(name).cloned())
    }

    /// The series of a labeled family the filter defined (labels in any
    /// order), as `Counter::with_labels` and the like name it.
    pub fn labeled_metric(&self, family: &str, labels: &[(&str, &str)]) -> Option<MetricRecord> {
        self.metric(&crate::metrics::labeled_name(family, labels))
    }

    /// Every series of the labeled family `family` the filter defined.
    pub fn metric_family(&self, family: &str) -> Vec<MetricRecord> {
        let prefix = format!("{family}{{");
        with(|m| {
            m.metrics
                .iter()
                .filter(|r| r.name == family || r.name.starts_with(&prefix))
                .cloned()
                .collect()
        })
    }

    /// A shared-data value and its CAS version.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        with(|m| m.shared.get(key).cloned())
    }

    /// Writes shared data as another VM would (bumps the CAS version).
    pub fn set_shared_data(&mut self, key: &str, value: &[u8]) {
        with(|m| {
            let version = m.shared.get(key).map(|(_, v)| *v).unwrap_or(0);
            m.shared
                .insert(key.to_string(), (value.to_vec(), version + 1));
        });
    }

    /// Sets a property the host reports, e.g. `(["source", "principal"], b"spiffe://…")`.
    pub fn set_property<S: AsRef<str>>(&mut self, path: &[S], value: &[u8]) {
        let key = property_path(path);
        with(|m| m.properties.insert(key, value.to_vec()));
    }

    /// Forgets a property: the host answers `NotFound` for it again.
    pub fn remove_property<S: AsRef<str>>(&mut self, path: &[S]) {
        let key = property_path(path);
        with(|m| m.properties.remove(&key));
    }

    /// A property's current value (including ones the filter set).
    pub fn property<S: AsRef<str>>(&self, path: &[S]) -> Option<Vec<u8>> {
        let key = property_path(path);
        with(|m| m.properties.get(&key).cloned())
    }

    /// Appends a message to the shared queue `name` as another VM would, and
    /// delivers `on_queue_ready` to its owner. False when no such queue exists.
    pub fn enqueue(&mut self, name: &str, message: &[u8]) -> bool {
        let queued = with(|m| {
            let at = m.queues.iter().position(|q| q.name == name)?;
            let queue = &mut m.queues[at];
            queue.messages.push_back(message.to_vec());
            let owner = queue.owner_root;
            m.queue_ready.push_back((owner, at as u32 + 1));
            Some(())
        });
        flush();
        queued.is_some()
    }

    /// Takes the oldest message of the shared queue `name`.
    pub fn dequeue(&mut self, name: &str) -> Option<Vec<u8>> {
        with(|m| {
            m.queues
                .iter_mut()
                .find(|q| q.name == name)
                .and_then(|q| q.messages.pop_front())
        })
    }
}
