//! One VM: a wasmtime `Store` and an instance of the plugin's module with its
//! root context started, and typed entry points for every callback. Each call
//! runs under the plugin's CPU deadline; any trap surfaces as a [`VmFailure`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

mod deadline;
mod delivery;

pub(crate) use deadline::Deadline;

use wasmtime::{Instance, Store, StoreLimitsBuilder, Trap, TypedFunc, WasmParams, WasmResults};

use crate::error::HostError;
use crate::plugin::PluginCore;
use crate::pool::VmSlot;
use crate::state::{StreamBinding, VmState};
use crate::stream::SharedStream;

const VM_START: &str = "proxy_on_vm_start";
const CONFIGURE: &str = "proxy_on_configure";

/// Why a VM stopped working.
#[derive(Clone, Debug)]
pub(crate) enum VmFailure {
    /// A trap (including out-of-memory and `proc_exit`).
    Trap(String),
    /// A callback ran past its CPU deadline.
    Timeout,
    /// A start callback (named) answered false.
    Refused(&'static str),
}

impl std::fmt::Display for VmFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Trap(reason) => write!(f, "trap: {reason}"),
            Self::Timeout => f.write_str("callback exceeded its CPU deadline"),
            Self::Refused(callback) => write!(f, "{callback} returned false"),
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

/// Calls `f` under the CPU deadline. Exports are borrowed, not cloned: a
/// `TypedFunc` clone registers its type again, which costs more than the call.
fn invoke<P: WasmParams, R: WasmResults>(
    store: &mut Store<VmState>,
    deadline_ticks: u64,
    f: &TypedFunc<P, R>,
    args: P,
) -> Result<R, VmFailure> {
    store.set_epoch_deadline(deadline_ticks);
    store.data_mut().deadline_mark = None;
    f.call(store, args).map_err(classify)
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
        store.set_epoch_deadline(core.deadline.wall_ticks);
        deadline::install(&mut store, core.deadline.cpu);
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
        let declared = typed::<(), u32>(&instance, &mut store, wasp_abi::HTTP_CALLBACKS_EXPORT)?;
        let mut vm = Self {
            store,
            ex,
            deadline_ticks: core.deadline.wall_ticks,
        };
        if let Some(init) = init {
            vm.call(&init, ()).map_err(|f| start_err(f.to_string()))?;
        }
        if let Some(declared) = declared {
            let callbacks = vm
                .call(&declared, ())
                .map_err(|f| start_err(f.to_string()))?;
            vm.drop_undeclared(callbacks);
            core.declare_callbacks(callbacks);
        }
        vm.store.data_mut().start_log = Some(Vec::new());
        let started = vm.start_root();
        let log = vm.store.data_mut().start_log.take().unwrap_or_default();
        match started {
            Ok(()) => Ok(vm),
            Err(VmFailure::Refused(callback)) => Err(HostError::Rejected {
                plugin: core.spec.name.clone(),
                what: if callback == VM_START {
                    "VM configuration"
                } else {
                    "configuration"
                },
                callback,
                log,
            }),
            Err(failure) => Err(start_err(failure.to_string())),
        }
    }

    /// Forgets the optional callbacks the module declared it does not need
    /// (`wasp_abi::HTTP_CALLBACKS_EXPORT`): they are never called.
    fn drop_undeclared(&mut self, callbacks: u32) {
        let ex = &mut self.ex;
        if callbacks & wasp_abi::HTTP_CALLBACK_REQUEST_BODY == 0 {
            ex.request_body = None;
            ex.request_trailers = None;
        }
        if callbacks & wasp_abi::HTTP_CALLBACK_RESPONSE_BODY == 0 {
            ex.response_body = None;
            ex.response_trailers = None;
        }
        if callbacks & wasp_abi::HTTP_CALLBACK_LOG == 0 {
            ex.log = None;
        }
        if callbacks & wasp_abi::HTTP_CALLBACK_NO_REQUEST_HEADERS != 0 {
            ex.request_headers = None;
        }
        if callbacks & wasp_abi::HTTP_CALLBACK_NO_RESPONSE_HEADERS != 0 {
            ex.response_headers = None;
        }
        if callbacks & wasp_abi::HTTP_CALLBACK_NO_DONE != 0 {
            ex.done = None;
        }
    }

    fn start_root(&mut self) -> Result<(), VmFailure> {
        let root = self.store.data().root_context;
        let f = &self.ex.context_create;
        invoke(&mut self.store, self.deadline_ticks, f, (root, 0))?;
        let spec = &self.store.data().core.spec;
        let (vm_config, config) = (
            spec.vm_configuration.len() as u32,
            spec.configuration.len() as u32,
        );
        if let Some(f) = self.ex.vm_start.as_ref()
            && invoke(&mut self.store, self.deadline_ticks, f, (root, vm_config))? == 0
        {
            return Err(VmFailure::Refused(VM_START));
        }
        if let Some(f) = self.ex.configure.as_ref()
            && invoke(&mut self.store, self.deadline_ticks, f, (root, config))? == 0
        {
            return Err(VmFailure::Refused(CONFIGURE));
        }
        Ok(())
    }

    /// Calls a local function into the guest under the CPU deadline.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        f: &TypedFunc<P, R>,
        args: P,
    ) -> Result<R, VmFailure> {
        invoke(&mut self.store, self.deadline_ticks, f, args)
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
        stream: Arc<SharedStream>,
        filter: usize,
    ) -> Result<u32, VmFailure> {
        let state = self.store.data_mut();
        let id = state.next_context;
        state.next_context += 1;
        let root = state.root_context;
        state.streams.insert(id, StreamBinding { stream, filter });
        self.store.data_mut().effective_context = id;
        let f = &self.ex.context_create;
        invoke(&mut self.store, self.deadline_ticks, f, (id, root))?;
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
            Direction::Request => self.ex.request_headers.as_ref(),
            Direction::Response => self.ex.response_headers.as_ref(),
        };
        let Some(f) = f else { return Ok(0) };
        self.store.data_mut().effective_context = ctx;
        invoke(
            &mut self.store,
            self.deadline_ticks,
            f,
            (ctx, count, u32::from(eos)),
        )
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
            Direction::Request => self.ex.request_body.as_ref(),
            Direction::Response => self.ex.response_body.as_ref(),
        };
        let Some(f) = f else { return Ok(0) };
        self.store.data_mut().effective_context = ctx;
        invoke(
            &mut self.store,
            self.deadline_ticks,
            f,
            (ctx, size, u32::from(eos)),
        )
    }

    /// `proxy_on_{request,response}_trailers`; returns the raw action.
    pub fn on_trailers(&mut self, ctx: u32, dir: Direction, count: u32) -> Result<u32, VmFailure> {
        let f = match dir {
            Direction::Request => self.ex.request_trailers.as_ref(),
            Direction::Response => self.ex.response_trailers.as_ref(),
        };
        let Some(f) = f else { return Ok(0) };
        self.store.data_mut().effective_context = ctx;
        invoke(&mut self.store, self.deadline_ticks, f, (ctx, count))
    }

    /// `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`, then forgets the
    /// context (not its callouts, which belong to the root context).
    pub fn finish_stream(&mut self, ctx: u32) -> Result<(), VmFailure> {
        self.store.data_mut().effective_context = ctx;
        let result = (|| {
            if let Some(f) = self.ex.done.as_ref() {
                invoke(&mut self.store, self.deadline_ticks, f, ctx)?;
            }
            if let Some(f) = self.ex.log.as_ref() {
                invoke(&mut self.store, self.deadline_ticks, f, ctx)?;
            }
            if let Some(f) = self.ex.delete.as_ref() {
                invoke(&mut self.store, self.deadline_ticks, f, ctx)?;
            }
            Ok(())
        })();
        // Callouts the context made stay: they belong to the root context
        // (as in Envoy), which still receives their outcome.
        let state = self.store.data_mut();
        state.streams.remove(&ctx);
        state.effective_context = state.root_context;
        result
    }

    /// `proxy_on_tick` on the root context.
    pub fn tick(&mut self) -> Result<(), VmFailure> {
        let root = self.store.data().root_context;
        self.store.data_mut().effective_context = root;
        match self.ex.tick.as_ref() {
            Some(f) => invoke(&mut self.store, self.deadline_ticks, f, root),
            None => Ok(()),
        }
    }

    /// `proxy_on_queue_ready` on the root context.
    pub fn queue_ready(&mut self, queue: u32) -> Result<(), VmFailure> {
        let root = self.store.data().root_context;
        self.store.data_mut().effective_context = root;
        match self.ex.queue_ready.as_ref() {
            Some(f) => invoke(&mut self.store, self.deadline_ticks, f, (root, queue)),
            None => Ok(()),
        }
    }

    /// Every stream bound to this VM learns that it died.
    pub fn fail_streams(&self) {
        for binding in self.store.data().streams.values() {
            let signal = binding.signal();
            signal.failed.store(true, Ordering::Release);
            signal.notify.notify_one();
        }
    }
}
