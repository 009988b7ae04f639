//! VM slots of a plugin: one VM per slot (slots are picked by worker thread),
//! each callback holding only its slot's lock. A failed VM is dropped, and
//! re-created on demand after a back-off that grows while the plugin keeps
//! failing; a plugin failing too often is marked unhealthy.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::callout::{CalloutError, CalloutResponse};
use crate::plugin::PluginCore;
use crate::shared::QueueOwner;
use crate::vm::{Vm, VmFailure};

/// First back-off after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest back-off.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Failures counted for the crash-loop decision.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// This many failures within the window mark the plugin unhealthy.
const CRASH_LOOP_FAILURES: usize = 5;

/// Why a slot could not run a callback.
#[derive(Clone, Debug)]
pub(crate) enum SlotError {
    /// The callback failed and killed the VM.
    Failed(VmFailure),
    /// No VM: waiting out the back-off, or creation failed.
    Unavailable,
    /// The VM the stream was bound to is gone.
    Gone,
}

#[derive(Default)]
struct SlotState {
    vm: Option<Vm>,
    generation: u64,
    failures: VecDeque<Instant>,
    retry_at: Option<Instant>,
    ticker_period: u32,
}

/// One VM place of a plugin.
pub(crate) struct VmSlot {
    pub core: Arc<PluginCore>,
    me: Weak<VmSlot>,
    state: Mutex<SlotState>,
}

impl VmSlot {
    pub fn new(core: Arc<PluginCore>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            core,
            me: me.clone(),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates the VM now (plugin load), reporting why it failed.
    pub fn start(&self) -> Result<(), crate::error::HostError> {
        let mut st = self.lock();
        let vm = Vm::new(&self.core, self.me.clone(), st.generation + 1)?;
        st.generation += 1;
        st.vm = Some(vm);
        self.core.metrics_vms(1);
        self.after_call(&mut st);
        Ok(())
    }

    /// Runs `f` on the VM. With `generation`, only on that incarnation;
    /// without, a missing VM is (re-)created if the back-off allows.
    pub fn with_vm<R>(
        &self,
        generation: Option<u64>,
        f: impl FnOnce(&mut Vm) -> Result<R, VmFailure>,
    ) -> Result<(R, u64), SlotError> {
        let mut st = self.lock();
        if let Some(generation) = generation
            && (generation != st.generation || st.vm.is_none())
        {
            return Err(SlotError::Gone);
        }
        if st.vm.is_none() {
            self.recreate(&mut st)?;
        }
        let Some(vm) = st.vm.as_mut() else {
            return Err(SlotError::Unavailable);
        };
        match f(vm) {
            Ok(value) => {
                self.after_call(&mut st);
                Ok((value, st.generation))
            }
            Err(failure) => {
                self.kill(&mut st, &failure);
                Err(SlotError::Failed(failure))
            }
        }
    }

    fn recreate(&self, st: &mut SlotState) -> Result<(), SlotError> {
        if st.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err(SlotError::Unavailable);
        }
        let restart = st.generation > 0;
        match Vm::new(&self.core, self.me.clone(), st.generation + 1) {
            Ok(vm) => {
                st.generation += 1;
                st.vm = Some(vm);
                st.ticker_period = 0;
                self.core.metrics_vms(1);
                if restart {
                    self.core.stats.restarts.fetch_add(1, Ordering::Relaxed);
                    self.core.counter_restart();
                }
                Ok(())
            }
            Err(err) => {
                tracing::error!(plugin = %self.core.spec.name, error = %err, "VM could not be re-created");
                self.note_failure(st);
                Err(SlotError::Unavailable)
            }
        }
    }

    fn kill(&self, st: &mut SlotState, failure: &VmFailure) {
        tracing::error!(plugin = %self.core.spec.name, reason = %failure, "filter VM failed and was stopped");
        match failure {
            VmFailure::Timeout => {
                self.core.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                self.core.counter_timeout();
            }
            _ => {
                self.core.stats.traps.fetch_add(1, Ordering::Relaxed);
                self.core.counter_trap();
            }
        }
        if let Some(vm) = st.vm.take() {
            vm.fail_streams();
            self.core.metrics_vms(-1);
        }
        self.note_failure(st);
    }

    fn note_failure(&self, st: &mut SlotState) {
        let now = Instant::now();
        st.failures.push_back(now);
        while st
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > FAILURE_WINDOW)
        {
            st.failures.pop_front();
        }
        let recent = st.failures.len();
        let backoff = BACKOFF_MIN
            .saturating_mul(1 << (recent.saturating_sub(1)).min(16))
            .min(BACKOFF_MAX);
        st.retry_at = Some(now + backoff);
        self.core.set_healthy(recent < CRASH_LOOP_FAILURES);
    }

    /// Starts a ticker when the root context set (or changed) its tick period.
    fn after_call(&self, st: &mut SlotState) {
        let Some(vm) = st.vm.as_ref() else { return };
        let period = vm.tick_period_ms();
        if period == st.ticker_period {
            return;
        }
        st.ticker_period = period;
        if period == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(plugin = %self.core.spec.name, "no runtime: proxy_on_tick will not run");
            return;
        };
        let (slot, generation) = (self.me.clone(), st.generation);
        runtime.spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(u64::from(period)));
            interval.tick().await;
            loop {
                interval.tick().await;
                let Some(slot) = slot.upgrade() else { break };
                if !slot.tick(generation, period) {
                    break;
                }
            }
        });
    }

    fn tick(&self, generation: u64, period: u32) -> bool {
        {
            let st = self.lock();
            if st.generation != generation || st.ticker_period != period || st.vm.is_none() {
                return false;
            }
        }
        self.with_vm(Some(generation), Vm::tick).is_ok()
    }

    /// Delivers a callout result to the VM incarnation that made the call.
    pub fn deliver(
        &self,
        generation: u64,
        token: u32,
        result: Result<CalloutResponse, CalloutError>,
    ) {
        let _ = self.with_vm(Some(generation), |vm| vm.deliver(token, result));
    }

    /// Delivers a gRPC stream event to the VM incarnation that opened it.
    pub fn deliver_stream_event(
        &self,
        generation: u64,
        token: u32,
        event: Option<crate::callout::StreamEvent>,
    ) {
        let _ = self.with_vm(Some(generation), |vm| vm.deliver_stream_event(token, event));
    }

    /// Calls `proxy_on_queue_ready` on the VM incarnation that owns the queue.
    pub fn queue_ready(&self, generation: u64, queue: u32) {
        let _ = self.with_vm(Some(generation), |vm| vm.queue_ready(queue));
    }

    /// Bytes of linear memory of the live VM, if any.
    pub fn memory_bytes(&self) -> Option<usize> {
        self.lock().vm.as_ref().map(Vm::memory_bytes)
    }
}

/// Tells a queue's owner that it has an item, from a runtime task.
pub(crate) fn notify_queue_ready(owner: QueueOwner, queue: u32) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        if let Some(slot) = owner.slot.upgrade() {
            slot.queue_ready(owner.generation, queue);
        }
    });
}

/// The slots of a plugin.
pub(crate) struct VmPool {
    slots: Vec<Arc<VmSlot>>,
}

impl VmPool {
    pub fn new(core: &Arc<PluginCore>, size: usize) -> Self {
        Self {
            slots: (0..size.max(1))
                .map(|_| VmSlot::new(Arc::clone(core)))
                .collect(),
        }
    }

    /// The first slot (started at load).
    pub fn first(&self) -> &Arc<VmSlot> {
        &self.slots[0]
    }

    /// The index of the calling thread's slot in [`VmPool::slots`].
    pub fn pick_index(&self) -> usize {
        thread_index() % self.slots.len()
    }

    pub fn slots(&self) -> &[Arc<VmSlot>] {
        &self.slots
    }
}

/// A small stable number per thread.
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        if index.get() == usize::MAX {
            index.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        index.get()
    })
}
