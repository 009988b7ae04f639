//! One filter of a stream: its plugin, the VM slot that holds its context,
//! where that context lives once created, and body bytes it buffers.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::calls::StreamCalls;
use crate::plugin::Plugin;
use crate::vm::Direction;

/// A filter of a [`super::ChainStream`].
pub(super) struct Filter {
    /// The callbacks the host calls for the plugin: a phase whose callback
    /// the filter does not have passes it without taking its VM's lock.
    pub(super) calls: StreamCalls,
    /// The plugin's slot (index in its pool) whose VM holds the filter's
    /// context for the whole stream.
    pub(super) slot: usize,
    /// Set by the filter's first callback: the context it created.
    pub(super) bound: Binding,
    /// Fail-open filters that failed are skipped for the rest of the stream.
    pub(super) skipped: AtomicBool,
    /// Body bytes buffered while the filter pauses, per direction.
    pub(super) pending: [Mutex<Vec<u8>>; 2],
}

/// Where a filter's context lives, set once by its first callback (plain
/// atomics: a `OnceLock` costs a slow-path call on every stream).
#[derive(Default)]
pub(super) struct Binding {
    state: AtomicU8,
    generation: AtomicU64,
    ctx: AtomicU32,
}

const UNBOUND: u8 = 0;
const BOUND: u8 = 1;
const UNBINDABLE: u8 = 2;

impl Binding {
    /// `None` before the first callback; then the (VM generation, context
    /// id) of the context it created, or `None` when that callback failed.
    pub(super) fn get(&self) -> Option<Option<(u64, u32)>> {
        match self.state.load(Ordering::Acquire) {
            UNBOUND => None,
            BOUND => Some(Some((
                self.generation.load(Ordering::Relaxed),
                self.ctx.load(Ordering::Relaxed),
            ))),
            _ => Some(None),
        }
    }

    pub(super) fn set(&self, bound: Option<(u64, u32)>) {
        let state = match bound {
            Some((generation, ctx)) => {
                self.generation.store(generation, Ordering::Relaxed);
                self.ctx.store(ctx, Ordering::Relaxed);
                BOUND
            }
            None => UNBINDABLE,
        };
        self.state.store(state, Ordering::Release);
    }
}

impl Filter {
    /// `plugin` in a new stream, on the VM slot of the calling thread.
    pub(super) fn new(plugin: &Plugin) -> Self {
        Self {
            calls: plugin.core.calls(),
            slot: plugin.pool.pick_index(),
            bound: Binding::default(),
            skipped: AtomicBool::new(false),
            pending: [Mutex::default(), Mutex::default()],
        }
    }

    pub(super) fn pending(&self, dir: Direction) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.pending[dir as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
