//! One VM: a wasmtime `Store` and an instance of the plugin's module with its
//! root context started, and typed entry points for every callback. Each call
//! runs under the plugin's CPU deadline; any trap surfaces as a [`VmFailure`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use wasmtime::{Instance, Store, StoreLimitsBuilder, Trap, TypedFunc, WasmParams, WasmResults};

use crate::callout::{CalloutError, CalloutResponse, StreamEvent};
use crate::error::HostError;
use crate::plugin::PluginCore;
use crate::pool::VmSlot;
use crate::state::{CalloutKind, CalloutView, StreamBinding, VmState};
use crate::stream::{ResumeSignal, StreamData, header_get};

/// Why a VM stopped working.
#[derive(Clone, Debug)]
pub(crate) enum VmFailure {
    /// A trap (including out-of-memory and `proc_exit`).
    Trap(String),
    /// A callback ran past its CPU deadline.
    Timeout,
    /// The module misbehaved at start (bad export, a start callback said no).
    Refused(String),
}

impl std::fmt::Display for VmFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Trap(reason) => write!(f, "trap: {reason}"),
            Self::Timeout => f.write_str("callback exceeded its CPU deadline"),
            Self::Refused(reason) => f.write_str(reason),
        }
    }
}

fn classify(err: wasmtime::Error) -> VmFailure {
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => VmFailure::Timeout,
        Some(trap) => VmFailure::Trap(trap.to_string()),
        None => VmFailure::Trap(err.to_string()),
    }
}

/// Which half of the exchange a callback belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

type F2 = TypedFunc<(u32, u32), u32>;
type F3 = TypedFunc<(u32, u32, u32), u32>;
type Unit1 = TypedFunc<u32, ()>;
type Unit5 = TypedFunc<(u32, u32, u32, u32, u32), ()>;

/// Callbacks the module exports (all optional but context creation).
struct Exports {
    context_create: TypedFunc<(u32, u32), ()>,
    vm_start: Option<F2>,
    configure: Option<F2>,
    tick: Option<Unit1>,
    request_headers: Option<F3>,
    request_body: Option<F3>,
    request_trailers: Option<F2>,
    response_headers: Option<F3>,
    response_body: Option<F3>,
    response_trailers: Option<F2>,
    done: Option<TypedFunc<u32, u32>>,
    log: Option<Unit1>,
    delete: Option<Unit1>,
    http_call_response: Option<Unit5>,
    grpc_initial_metadata: Option<TypedFunc<(u32, u32, u32), ()>>,
    grpc_receive: Option<TypedFunc<(u32, u32, u32), ()>>,
    grpc_trailing_metadata: Option<TypedFunc<(u32, u32, u32), ()>>,
    grpc_close: Option<TypedFunc<(u32, u32, u32), ()>>,
    queue_ready: Option<TypedFunc<(u32, u32), ()>>,
}

fn typed<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<VmState>,
    name: &str,
) -> Result<Option<TypedFunc<P, R>>, HostError> {
    let Some(func) = instance.get_func(&mut *store, name) else {
        return Ok(None);
    };
    func.typed::<P, R>(&*store)
        .map(Some)
        .map_err(|e| HostError::BadExport {
            name: name.to_owned(),
            reason: e.to_string(),
        })
}

/// A live VM.
pub(crate) struct Vm {
    pub store: Store<VmState>,
    ex: Exports,
    deadline_ticks: u64,
}

impl Vm {
    /// Instantiates the module and starts the root context.
    pub fn new(
        core: &Arc<PluginCore>,
        slot: Weak<VmSlot>,
        generation: u64,
    ) -> Result<Self, HostError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(core.spec.limits.memory_bytes as usize)
            .instances(1)
            .trap_on_grow_failure(true)
            .build();
        let state = VmState::new(Arc::clone(core), limits, slot, generation);
        let mut store = Store::new(core.pre.module().engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(core.deadline_ticks);
        let start_err = |reason: String| HostError::Start {
            plugin: core.spec.name.clone(),
            reason,
        };
        let instance = core
            .pre
            .instantiate(&mut store)
            .map_err(|e| start_err(classify(e).to_string()))?;
        store.data_mut().memory = instance.get_memory(&mut store, "memory");
        let malloc = match typed::<u32, u32>(&instance, &mut store, "proxy_on_memory_allocate")? {
            Some(f) => Some(f),
            None => typed::<u32, u32>(&instance, &mut store, "malloc")?,
        };
        store.data_mut().malloc = malloc;
        let Some(context_create) = typed(&instance, &mut store, "proxy_on_context_create")? else {
            return Err(HostError::MissingExport("proxy_on_context_create".into()));
        };
        let ex = Exports {
            context_create,
            vm_start: typed(&instance, &mut store, "proxy_on_vm_start")?,
            configure: typed(&instance, &mut store, "proxy_on_configure")?,
            tick: typed(&instance, &mut store, "proxy_on_tick")?,
            request_headers: typed(&instance, &mut store, "proxy_on_request_headers")?,
            request_body: typed(&instance, &mut store, "proxy_on_request_body")?,
            request_trailers: typed(&instance, &mut store, "proxy_on_request_trailers")?,
            response_headers: typed(&instance, &mut store, "proxy_on_response_headers")?,
            response_body: typed(&instance, &mut store, "proxy_on_response_body")?,
            response_trailers: typed(&instance, &mut store, "proxy_on_response_trailers")?,
            done: typed(&instance, &mut store, "proxy_on_done")?,
            log: typed(&instance, &mut store, "proxy_on_log")?,
            delete: typed(&instance, &mut store, "proxy_on_delete")?,
            http_call_response: typed(&instance, &mut store, "proxy_on_http_call_response")?,
            grpc_initial_metadata: typed(
                &instance,
                &mut store,
                "proxy_on_grpc_receive_initial_metadata",
            )?,
            grpc_receive: typed(&instance, &mut store, "proxy_on_grpc_receive")?,
            grpc_trailing_metadata: typed(
                &instance,
                &mut store,
                "proxy_on_grpc_receive_trailing_metadata",
            )?,
            grpc_close: typed(&instance, &mut store, "proxy_on_grpc_close")?,
            queue_ready: typed(&instance, &mut store, "proxy_on_queue_ready")?,
        };
        // WASI reactors initialise with `_initialize`, commands with `_start`.
        let init = match typed::<(), ()>(&instance, &mut store, "_initialize")? {
            Some(f) => Some(f),
            None => typed::<(), ()>(&instance, &mut store, "_start")?,
        };
        let mut vm = Self {
            store,
            ex,
            deadline_ticks: core.deadline_ticks,
        };
        if let Some(init) = init {
            vm.call(&init, ()).map_err(|f| start_err(f.to_string()))?;
        }
        vm.start_root().map_err(|f| start_err(f.to_string()))?;
        Ok(vm)
    }

    fn start_root(&mut self) -> Result<(), VmFailure> {
        let root = self.store.data().root_context;
        let f = self.ex.context_create.clone();
        self.call(&f, (root, 0))?;
        let spec = &self.store.data().core.spec;
        let (vm_config, config) = (
            spec.vm_configuration.len() as u32,
            spec.configuration.len() as u32,
        );
        if let Some(f) = self.ex.vm_start.clone()
            && self.call(&f, (root, vm_config))? == 0
        {
            return Err(VmFailure::Refused(
                "proxy_on_vm_start returned false".into(),
            ));
        }
        if let Some(f) = self.ex.configure.clone()
            && self.call(&f, (root, config))? == 0
        {
            return Err(VmFailure::Refused(
                "proxy_on_configure returned false (configuration rejected)".into(),
            ));
        }
        Ok(())
    }

    /// Calls into the guest under the CPU deadline.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        f: &TypedFunc<P, R>,
        args: P,
    ) -> Result<R, VmFailure> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        f.call(&mut self.store, args).map_err(classify)
    }

    fn enter(&mut self, context: u32) {
        self.store.data_mut().effective_context = context;
    }

    /// Bytes of linear memory in use.
    pub fn memory_bytes(&self) -> usize {
        self.store
            .data()
            .memory
            .map_or(0, |m| m.data_size(&self.store))
    }

    /// The tick period the root context asked for (0: none).
    pub fn tick_period_ms(&self) -> u32 {
        self.store.data().tick_period_ms
    }

    /// Creates an HTTP context bound to a stream; returns its id.
    pub fn create_stream(
        &mut self,
        data: Arc<Mutex<StreamData>>,
        signal: Arc<ResumeSignal>,
    ) -> Result<u32, VmFailure> {
        let state = self.store.data_mut();
        let id = state.next_context;
        state.next_context += 1;
        let root = state.root_context;
        state.streams.insert(id, StreamBinding { data, signal });
        self.enter(id);
        let f = self.ex.context_create.clone();
        self.call(&f, (id, root))?;
        Ok(id)
    }

    /// `proxy_on_{request,response}_headers`; returns the raw action.
    pub fn on_headers(
        &mut self,
        ctx: u32,
        dir: Direction,
        count: u32,
        eos: bool,
    ) -> Result<u32, VmFailure> {
        let f = match dir {
            Direction::Request => self.ex.request_headers.clone(),
            Direction::Response => self.ex.response_headers.clone(),
        };
        let Some(f) = f else { return Ok(0) };
        self.enter(ctx);
        self.call(&f, (ctx, count, u32::from(eos)))
    }

    /// `proxy_on_{request,response}_body`; returns the raw action.
    pub fn on_body(
        &mut self,
        ctx: u32,
        dir: Direction,
        size: u32,
        eos: bool,
    ) -> Result<u32, VmFailure> {
        let f = match dir {
            Direction::Request => self.ex.request_body.clone(),
            Direction::Response => self.ex.response_body.clone(),
        };
        let Some(f) = f else { return Ok(0) };
        self.enter(ctx);
        self.call(&f, (ctx, size, u32::from(eos)))
    }

    /// `proxy_on_{request,response}_trailers`; returns the raw action.
    pub fn on_trailers(&mut self, ctx: u32, dir: Direction, count: u32) -> Result<u32, VmFailure> {
        let f = match dir {
            Direction::Request => self.ex.request_trailers.clone(),
            Direction::Response => self.ex.response_trailers.clone(),
        };
        let Some(f) = f else { return Ok(0) };
        self.enter(ctx);
        self.call(&f, (ctx, count))
    }

    /// `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`, then forgets the context.
    pub fn finish_stream(&mut self, ctx: u32) -> Result<(), VmFailure> {
        self.enter(ctx);
        let result = (|| {
            if let Some(f) = self.ex.done.clone() {
                self.call(&f, ctx)?;
            }
            if let Some(f) = self.ex.log.clone() {
                self.call(&f, ctx)?;
            }
            if let Some(f) = self.ex.delete.clone() {
                self.call(&f, ctx)?;
            }
            Ok(())
        })();
        let state = self.store.data_mut();
        state.streams.remove(&ctx);
        let gone: Vec<u32> = state
            .pending
            .iter()
            .filter(|(_, p)| p.context == ctx)
            .map(|(token, _)| *token)
            .collect();
        for token in gone {
            state.pending.remove(&token);
            if let Some(stream) = state.grpc_streams.remove(&token) {
                stream.task.abort();
            }
        }
        state.effective_context = state.root_context;
        result
    }

    /// `proxy_on_tick` on the root context.
    pub fn tick(&mut self) -> Result<(), VmFailure> {
        let root = self.store.data().root_context;
        self.enter(root);
        match self.ex.tick.clone() {
            Some(f) => self.call(&f, root),
            None => Ok(()),
        }
    }

    /// `proxy_on_queue_ready` on the root context.
    pub fn queue_ready(&mut self, queue: u32) -> Result<(), VmFailure> {
        let root = self.store.data().root_context;
        self.enter(root);
        match self.ex.queue_ready.clone() {
            Some(f) => self.call(&f, (root, queue)),
            None => Ok(()),
        }
    }

    /// Every stream bound to this VM learns that it died.
    pub fn fail_streams(&self) {
        for binding in self.store.data().streams.values() {
            binding.signal.failed.store(true, Ordering::Release);
            binding.signal.notify.notify_one();
        }
    }

    /// Delivers a callout's outcome to the context that made it.
    pub fn deliver(
        &mut self,
        token: u32,
        result: Result<CalloutResponse, CalloutError>,
    ) -> Result<(), VmFailure> {
        let state = self.store.data_mut();
        let Some(pending) = state.pending.remove(&token) else {
            return Ok(());
        };
        let ctx = pending.context;
        if ctx != state.root_context && !state.streams.contains_key(&ctx) {
            return Ok(());
        }
        self.enter(ctx);
        let outcome = match pending.kind {
            CalloutKind::Http => self.deliver_http(ctx, token, result),
            CalloutKind::GrpcCall => self.deliver_grpc_call(ctx, token, result),
            CalloutKind::GrpcStream => Ok(()),
        };
        self.store.data_mut().callout = None;
        outcome
    }

    fn deliver_http(
        &mut self,
        ctx: u32,
        token: u32,
        result: Result<CalloutResponse, CalloutError>,
    ) -> Result<(), VmFailure> {
        let view = match result {
            Ok(response) => CalloutView {
                headers: response.headers,
                body: response.body.to_vec(),
                trailers: response.trailers,
                status: None,
            },
            Err(err) => {
                tracing::debug!(plugin = %self.store.data().core.spec.name, error = %err, "http callout failed");
                CalloutView::default()
            }
        };
        let counts = (
            view.headers.len() as u32,
            view.body.len() as u32,
            view.trailers.len() as u32,
        );
        self.store.data_mut().callout = Some(view);
        match self.ex.http_call_response.clone() {
            Some(f) => self.call(&f, (ctx, token, counts.0, counts.1, counts.2)),
            None => Ok(()),
        }
    }

    /// A unary call: its one message on success, otherwise `proxy_on_grpc_close`.
    fn deliver_grpc_call(
        &mut self,
        ctx: u32,
        token: u32,
        result: Result<CalloutResponse, CalloutError>,
    ) -> Result<(), VmFailure> {
        let (status, message, messages) = grpc_outcome(result);
        if status == wasp_abi::GRPC_STATUS_OK
            && let Some(body) = messages.into_iter().next()
        {
            let len = body.len() as u32;
            self.store.data_mut().callout = Some(CalloutView {
                body,
                status: Some((status, message)),
                ..CalloutView::default()
            });
            return match self.ex.grpc_receive.clone() {
                Some(f) => self.call(&f, (ctx, token, len)),
                None => Ok(()),
            };
        }
        let status = if status == wasp_abi::GRPC_STATUS_OK {
            wasp_abi::GRPC_STATUS_UNAVAILABLE
        } else {
            status
        };
        self.store.data_mut().callout = Some(CalloutView {
            status: Some((status, message)),
            ..CalloutView::default()
        });
        match self.ex.grpc_close.clone() {
            Some(f) => self.call(&f, (ctx, token, status)),
            None => Ok(()),
        }
    }

    /// Delivers one event of a gRPC stream (`None`: the stream ended).
    pub fn deliver_stream_event(
        &mut self,
        token: u32,
        event: Option<StreamEvent>,
    ) -> Result<(), VmFailure> {
        let state = self.store.data_mut();
        let Some(pending) = state.pending.get(&token).copied() else {
            return Ok(());
        };
        let ctx = pending.context;
        if ctx != state.root_context && !state.streams.contains_key(&ctx) {
            state.pending.remove(&token);
            state.grpc_streams.remove(&token);
            return Ok(());
        }
        self.enter(ctx);
        let outcome = self.stream_event(ctx, token, event);
        self.store.data_mut().callout = None;
        outcome
    }

    fn stream_event(
        &mut self,
        ctx: u32,
        token: u32,
        event: Option<StreamEvent>,
    ) -> Result<(), VmFailure> {
        let set_status = |vm: &mut Self, status: Option<(u32, String)>| {
            if let (Some(status), Some(stream)) =
                (status, vm.store.data_mut().grpc_streams.get_mut(&token))
            {
                stream.status = Some(status);
            }
        };
        match event {
            Some(StreamEvent::Headers(headers)) => {
                set_status(self, grpc_status(&headers));
                let count = headers.len() as u32;
                self.store.data_mut().callout = Some(CalloutView {
                    headers,
                    ..CalloutView::default()
                });
                match self.ex.grpc_initial_metadata.clone() {
                    Some(f) => self.call(&f, (ctx, token, count)),
                    None => Ok(()),
                }
            }
            Some(StreamEvent::Data(bytes)) => {
                let messages = {
                    let Some(stream) = self.store.data_mut().grpc_streams.get_mut(&token) else {
                        return Ok(());
                    };
                    stream.inbound.extend_from_slice(&bytes);
                    take_messages(&mut stream.inbound)
                };
                for body in messages {
                    let len = body.len() as u32;
                    self.store.data_mut().callout = Some(CalloutView {
                        body,
                        ..CalloutView::default()
                    });
                    if let Some(f) = self.ex.grpc_receive.clone() {
                        self.call(&f, (ctx, token, len))?;
                    }
                }
                Ok(())
            }
            Some(StreamEvent::Trailers(trailers)) => {
                set_status(self, grpc_status(&trailers));
                let count = trailers.len() as u32;
                self.store.data_mut().callout = Some(CalloutView {
                    trailers,
                    ..CalloutView::default()
                });
                match self.ex.grpc_trailing_metadata.clone() {
                    Some(f) => self.call(&f, (ctx, token, count)),
                    None => Ok(()),
                }
            }
            Some(StreamEvent::Failed(err)) => {
                let code = match err {
                    CalloutError::Timeout => wasp_abi::GRPC_STATUS_DEADLINE_EXCEEDED,
                    _ => wasp_abi::GRPC_STATUS_UNAVAILABLE,
                };
                set_status(self, Some((code, err.to_string())));
                Ok(())
            }
            None => {
                let state = self.store.data_mut();
                state.pending.remove(&token);
                let status = state
                    .grpc_streams
                    .remove(&token)
                    .and_then(|s| s.status)
                    .unwrap_or((
                        wasp_abi::GRPC_STATUS_UNAVAILABLE,
                        "stream ended without a status".into(),
                    ));
                let code = status.0;
                state.callout = Some(CalloutView {
                    status: Some(status),
                    ..CalloutView::default()
                });
                match self.ex.grpc_close.clone() {
                    Some(f) => self.call(&f, (ctx, token, code)),
                    None => Ok(()),
                }
            }
        }
    }
}

/// gRPC status, message and response messages of a callout's outcome.
fn grpc_outcome(result: Result<CalloutResponse, CalloutError>) -> (u32, String, Vec<Vec<u8>>) {
    match result {
        Ok(response) => {
            let find = |name: &str| {
                header_get(&response.trailers, name).or_else(|| header_get(&response.headers, name))
            };
            let status = find("grpc-status")
                .and_then(|s| std::str::from_utf8(s).ok()?.parse::<u32>().ok())
                .unwrap_or(wasp_abi::GRPC_STATUS_UNAVAILABLE);
            let message = find("grpc-message")
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .unwrap_or_default();
            let messages = crate::abi::parse_grpc_messages(&response.body).unwrap_or_default();
            (status, message, messages)
        }
        Err(CalloutError::Timeout) => (
            wasp_abi::GRPC_STATUS_DEADLINE_EXCEEDED,
            "timeout".to_owned(),
            Vec::new(),
        ),
        Err(err) => (
            wasp_abi::GRPC_STATUS_UNAVAILABLE,
            err.to_string(),
            Vec::new(),
        ),
    }
}

/// The gRPC status in headers or trailers, if any.
fn grpc_status(headers: &crate::stream::HeaderList) -> Option<(u32, String)> {
    let code = std::str::from_utf8(header_get(headers, "grpc-status")?)
        .ok()?
        .parse()
        .ok()?;
    let message = header_get(headers, "grpc-message")
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    Some((code, message))
}

/// Takes every whole length-prefixed message off the front of `inbound`.
fn take_messages(inbound: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut at = 0;
    while inbound.len() >= at + 5 {
        let len = u32::from_be_bytes([
            inbound[at + 1],
            inbound[at + 2],
            inbound[at + 3],
            inbound[at + 4],
        ]) as usize;
        let Some(message) = inbound.get(at + 5..at + 5 + len) else {
            break;
        };
        messages.push(message.to_vec());
        at += 5 + len;
    }
    inbound.drain(..at);
    messages
}
