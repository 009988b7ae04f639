//! Stream timers on top of the ABI's one tick per root context: while any
//! timer is pending the root ticks at least every [`TIMER_GRANULARITY`], and
//! the root filter's own `on_tick` still runs at the period it asked for.

use crate::abi::hostcalls;
use std::cell::RefCell;
use std::time::Duration;

/// How often a root context ticks while stream timers are pending; timers
/// fire at most this late.
pub const TIMER_GRANULARITY: Duration = Duration::from_millis(10);

struct Timer {
    id: u64,
    root: u32,
    context: u32,
    deadline_ns: u64,
}

#[derive(Default, Clone, Copy)]
struct Tick {
    /// The period the root filter asked for (0: none).
    user_ms: u32,
    /// The period currently set on the host.
    host_ms: u32,
    /// When the root filter's `on_tick` last ran.
    last_user_tick_ns: u64,
}

struct Timers {
    pending: Vec<Timer>,
    ticks: super::ids::IdMap<u32, Tick>,
    next_id: u64,
}

impl Timers {
    const fn new() -> Self {
        Timers {
            pending: Vec::new(),
            ticks: super::ids::new_map(),
            next_id: 0,
        }
    }
}

thread_local! {
    // Initialised at compile time (see the registry's).
    static TIMERS: RefCell<Timers> = const { RefCell::new(Timers::new()) };
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn reset() {
    TIMERS.with(|t| *t.borrow_mut() = Timers::new());
}

fn now_ns() -> u64 {
    hostcalls::current_time_nanos().unwrap_or(0)
}

/// Schedules a timer of stream `context` (of root `root`); returns its id.
pub(crate) fn add_timer(root: u32, context: u32, delay: Duration) -> u64 {
    let deadline_ns = now_ns().saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX));
    let id = TIMERS.with(|t| {
        let mut timers = t.borrow_mut();
        timers.next_id += 1;
        let id = timers.next_id;
        timers.pending.push(Timer {
            id,
            root,
            context,
            deadline_ns,
        });
        id
    });
    reschedule(root);
    id
}

/// Records the root filter's own tick period and applies it.
pub(crate) fn set_user_tick_period(root: u32, millis: u32) {
    TIMERS.with(|t| {
        let mut timers = t.borrow_mut();
        let tick = timers.ticks.entry(root).or_default();
        tick.user_ms = millis;
        tick.last_user_tick_ns = 0;
    });
    if millis > 0 {
        let now = now_ns();
        TIMERS.with(|t| {
            if let Some(tick) = t.borrow_mut().ticks.get_mut(&root) {
                tick.last_user_tick_ns = now;
            }
        });
    }
    reschedule(root);
}

/// Drops the timers of a deleted context.
pub(crate) fn forget_context(context: u32) {
    TIMERS.with(|t| {
        let mut timers = t.borrow_mut();
        if !timers.pending.is_empty() {
            timers.pending.retain(|timer| timer.context != context);
        }
        if !timers.ticks.is_empty() {
            timers.ticks.remove(&context);
        }
    });
}

/// On a tick of `root`: the due timers (removed) and whether the root
/// filter's own tick is due.
pub(crate) fn due(root: u32) -> (Vec<(u32, u64)>, bool) {
    let now = now_ns();
    TIMERS.with(|t| {
        let mut timers = t.borrow_mut();
        let mut fired = Vec::new();
        timers.pending.retain(|timer| {
            let due = timer.root == root && timer.deadline_ns <= now;
            if due {
                fired.push((timer.deadline_ns, timer.context, timer.id));
            }
            !due
        });
        fired.sort_unstable();
        let tick = timers.ticks.entry(root).or_default();
        let user_due = tick.user_ms > 0
            && (tick.host_ms == tick.user_ms
                || now.saturating_sub(tick.last_user_tick_ns)
                    >= u64::from(tick.user_ms) * 1_000_000);
        if user_due {
            tick.last_user_tick_ns = now;
        }
        (
            fired.into_iter().map(|(_, c, id)| (c, id)).collect(),
            user_due,
        )
    })
}

/// Sets the host tick period of `root` to what its timers and filter need.
pub(crate) fn reschedule(root: u32) {
    let change = TIMERS.with(|t| {
        let mut timers = t.borrow_mut();
        let waiting = timers.pending.iter().any(|timer| timer.root == root);
        let tick = timers.ticks.entry(root).or_default();
        let granularity = TIMER_GRANULARITY.as_millis() as u32;
        let wanted = match (waiting, tick.user_ms) {
            (false, user) => user,
            (true, 0) => granularity,
            (true, user) => user.min(granularity),
        };
        (wanted != tick.host_ms).then(|| {
            tick.host_ms = wanted;
            wanted
        })
    });
    if let Some(period) = change {
        super::as_context(root, || {
            if let Err(e) = hostcalls::set_tick_period_ms(period) {
                crate::log::report(&e);
            }
        });
    }
}
