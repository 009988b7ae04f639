//! The context registry and the entry points behind the `proxy_on_*`
//! exports: it creates root and stream contexts, routes every host callback
//! to its context, tracks callout tokens, and drives stream timers from the
//! root context's tick.
//!
//! A callback borrows its context (an `Rc<RefCell<…>>`) outside the
//! registry, so a filter may call any SDK function (including ones that
//! touch the registry) without re-borrowing; a host that re-enters the same
//! context meanwhile is refused with an error log. Every callback looks its
//! context up once: it runs on every request, so the registry keeps no
//! other per-stream state.

mod detached;
mod holders;
mod ids;
mod table;
mod timers;

pub(crate) use detached::add as add_detached;
pub use holders::ErasedRoot;
pub(crate) use holders::boxed_root;
pub(crate) use ids::IdMap;
pub use timers::TIMER_GRANULARITY;
pub(crate) use timers::{add_timer, set_user_tick_period};

use crate::abi::hostcalls;
use holders::{CalloutSink, ErasedStream, SharedStream};
use std::cell::RefCell;
use std::rc::Rc;
use wasp_abi::{LogLevel, StreamType};

/// A root context, shared with the callback that runs on it.
type SharedRoot = Rc<RefCell<Box<dyn ErasedRoot>>>;

#[derive(Clone)]
enum Entry {
    Root(SharedRoot),
    Stream(SharedStream),
}

struct Registry {
    contexts: table::ContextTable<Entry>,
    /// Callout token → the context waiting on it.
    tokens: IdMap<u32, u32>,
    /// The context the host last called into.
    current: u32,
}

impl Registry {
    const fn new() -> Self {
        Registry {
            contexts: table::ContextTable::new(),
            tokens: ids::new_map(),
            current: 0,
        }
    }
}

thread_local! {
    // Initialised at compile time: every access is a plain static access
    // (a lazily initialised one costs a check and a call per access).
    static REGISTRY: RefCell<Registry> = const { RefCell::new(Registry::new()) };
}

/// Drops every context (the native test host starts each test afresh).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn reset() {
    REGISTRY.with(|r| *r.borrow_mut() = Registry::new());
    timers::reset();
    detached::reset();
}

fn enter(id: u32) {
    REGISTRY.with(|r| r.borrow_mut().current = id);
}

/// The context the host last called into.
pub(crate) fn current() -> u32 {
    REGISTRY.with(|r| r.borrow().current)
}

/// Makes `id` the current context and looks it up, in one registry access.
fn enter_entry(id: u32) -> Option<Entry> {
    enter_looking_up(id, id)
}

/// Makes `current` the current context and looks `id` up.
fn enter_looking_up(current: u32, id: u32) -> Option<Entry> {
    REGISTRY.with(|r| {
        let mut registry = r.borrow_mut();
        registry.current = current;
        registry.contexts.get(id).cloned()
    })
}

fn lookup(id: u32) -> Option<Entry> {
    REGISTRY.with(|r| r.borrow().contexts.get(id).cloned())
}

fn reentered(id: u32) {
    crate::log::log(
        LogLevel::Error,
        format_args!("context {id} was re-entered while its callback ran"),
    );
}

/// Runs `f` on context `entry` (of id `id`), borrowed for the call.
fn on_entry<T>(
    id: u32,
    entry: Option<Entry>,
    f: impl FnOnce(&mut dyn CalloutSink) -> T,
) -> Option<T> {
    match entry? {
        Entry::Root(root) => match root.try_borrow_mut() {
            Ok(mut root) => Some(f(&mut **root)),
            Err(_) => {
                reentered(id);
                None
            }
        },
        Entry::Stream(stream) => on_stream(id, Some(Entry::Stream(stream)), |s| f(s)),
    }
}

fn on_stream<T>(
    id: u32,
    entry: Option<Entry>,
    f: impl FnOnce(&mut dyn ErasedStream) -> T,
) -> Option<T> {
    let Entry::Stream(stream) = entry? else {
        return None;
    };
    let Ok(mut stream) = stream.try_borrow_mut() else {
        reentered(id);
        return None;
    };
    Some(f(&mut *stream))
}

fn on_root<T>(
    id: u32,
    entry: Option<Entry>,
    f: impl FnOnce(&mut dyn ErasedRoot) -> T,
) -> Option<T> {
    let Entry::Root(root) = entry? else {
        return None;
    };
    let Ok(mut root) = root.try_borrow_mut() else {
        reentered(id);
        return None;
    };
    Some(f(&mut **root))
}

fn with_stream<T>(id: u32, f: impl FnOnce(&mut dyn ErasedStream) -> T) -> Option<T> {
    on_stream(id, lookup(id), f)
}

fn with_root<T>(id: u32, f: impl FnOnce(&mut dyn ErasedRoot) -> T) -> Option<T> {
    on_root(id, lookup(id), f)
}

/// Remembers which context a callout token belongs to.
pub(crate) fn register_token(token: u32, context_id: u32) {
    REGISTRY.with(|r| r.borrow_mut().tokens.insert(token, context_id));
}

/// Runs `f` with `id` as the host's effective context, then switches back.
pub(crate) fn as_context<T>(id: u32, f: impl FnOnce() -> T) -> T {
    let previous = current();
    if previous == id {
        return f();
    }
    let _ = hostcalls::set_effective_context(id);
    enter(id);
    let out = f();
    enter(previous);
    let _ = hostcalls::set_effective_context(previous);
    out
}

/// `proxy_on_context_create`: a root context when `parent_id` is 0, else a
/// stream of the root `parent_id`.
pub fn on_context_create(id: u32, parent_id: u32, make_root: fn(u32) -> Box<dyn ErasedRoot>) {
    if parent_id == 0 {
        crate::log::install_panic_hook();
        enter(id);
        let root = Entry::Root(Rc::new(RefCell::new(make_root(id))));
        REGISTRY.with(|r| r.borrow_mut().contexts.insert(id, root));
        return;
    }
    let parent = enter_looking_up(id, parent_id);
    if let Some(Some(stream)) = on_root(parent_id, parent, |root| root.create_stream(id)) {
        REGISTRY.with(|r| r.borrow_mut().contexts.insert(id, Entry::Stream(stream)));
    }
}

/// `proxy_on_vm_start`.
pub fn on_vm_start(root_id: u32, size: usize) -> bool {
    enter(root_id);
    with_root(root_id, |root| root.on_vm_start(size)).unwrap_or(false)
}

/// `proxy_on_configure`.
pub fn on_configure(root_id: u32, size: usize) -> bool {
    enter(root_id);
    with_root(root_id, |root| root.on_configure(size)).unwrap_or(false)
}

/// `proxy_on_tick`: fires due stream timers, then the root's own tick.
pub fn on_tick(root_id: u32) {
    enter(root_id);
    let (due, user_tick) = timers::due(root_id);
    for (context, timer) in due {
        as_context(context, || with_stream(context, |s| s.on_timer(timer)));
    }
    if user_tick {
        with_root(root_id, |root| root.on_tick());
    }
    timers::reschedule(root_id);
}

/// `proxy_on_queue_ready`.
pub fn on_queue_ready(root_id: u32, queue: u32) {
    enter(root_id);
    with_root(root_id, |root| root.on_queue_ready(queue));
}

/// `proxy_on_request_headers` / `proxy_on_response_headers`.
pub fn on_headers(id: u32, phase: StreamType, end_of_stream: bool) -> u32 {
    on_stream(id, enter_entry(id), |s| s.on_headers(phase, end_of_stream)).unwrap_or(0)
}

/// `proxy_on_request_body` / `proxy_on_response_body`.
pub fn on_body(id: u32, phase: StreamType, size: usize, end_of_stream: bool) -> u32 {
    on_stream(id, enter_entry(id), |s| {
        s.on_body(phase, size, end_of_stream)
    })
    .unwrap_or(0)
}

/// `proxy_on_request_trailers` / `proxy_on_response_trailers`.
pub fn on_trailers(id: u32, phase: StreamType) -> u32 {
    on_stream(id, enter_entry(id), |s| s.on_trailers(phase)).unwrap_or(0)
}

/// `proxy_on_done`: contexts are always done at once.
pub fn on_done(id: u32) -> bool {
    enter(id);
    true
}

/// `proxy_on_log`.
pub fn on_log(id: u32) {
    on_stream(id, enter_entry(id), |s| s.on_log());
}

/// `proxy_on_delete`: drops the context, its pending callouts and timers.
pub fn on_delete(id: u32) {
    let removed = REGISTRY.with(|r| {
        let mut registry = r.borrow_mut();
        registry.current = id;
        if !registry.tokens.is_empty() {
            registry.tokens.retain(|_, owner| *owner != id);
        }
        registry.contexts.remove(id)
    });
    timers::forget_context(id);
    // Dropped outside the registry: a filter's `Drop` may use the SDK.
    drop(removed);
}

/// The context waiting on `token`, falling back to the id the host passed.
fn owner_of(token: u32, passed: u32, keep: bool) -> u32 {
    REGISTRY.with(|r| {
        let mut registry = r.borrow_mut();
        let owner = if keep {
            registry.tokens.get(&token).copied()
        } else {
            registry.tokens.remove(&token)
        };
        owner.unwrap_or(passed)
    })
}

fn deliver(id: u32, token: u32, done: bool, f: impl FnOnce(&mut dyn CalloutSink)) {
    enter(id);
    let owner = owner_of(token, id, !done);
    as_context(owner, || on_entry(owner, lookup(owner), f));
}

/// `proxy_on_http_call_response`: a detached callout's callback runs on
/// its own; any other goes to the context that made the call.
pub fn on_http_call_response(id: u32, token: u32, headers: usize, body: usize, trailers: usize) {
    if let Some(callback) = detached::take(token) {
        enter(id);
        callback(crate::callout::HttpResponse::read(headers, body, trailers));
        return;
    }
    deliver(id, token, true, |sink| {
        sink.on_http_call_response(token, headers, body, trailers)
    });
}

/// `proxy_on_grpc_receive_initial_metadata`.
pub fn on_grpc_initial_metadata(id: u32, token: u32, count: usize) {
    deliver(id, token, false, |sink| {
        sink.on_grpc_initial_metadata(token, count)
    });
}

/// `proxy_on_grpc_receive`.
pub fn on_grpc_message(id: u32, token: u32, size: usize) {
    deliver(id, token, false, |sink| sink.on_grpc_message(token, size));
}

/// `proxy_on_grpc_receive_trailing_metadata`.
pub fn on_grpc_trailing_metadata(id: u32, token: u32, count: usize) {
    deliver(id, token, false, |sink| {
        sink.on_grpc_trailing_metadata(token, count)
    });
}

/// `proxy_on_grpc_close`.
pub fn on_grpc_close(id: u32, token: u32, status: u32) {
    deliver(id, token, true, |sink| sink.on_grpc_close(token, status));
}

/// Registers an already built root context (the native test host).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn create_root(id: u32, root: Box<dyn ErasedRoot>) {
    crate::log::install_panic_hook();
    enter(id);
    let root = Entry::Root(Rc::new(RefCell::new(root)));
    REGISTRY.with(|r| r.borrow_mut().contexts.insert(id, root));
}
