//! A callback's CPU deadline, counted in CPU time rather than wall time.
//!
//! The first half of the deadline is kept by epoch ticks: a wall clock that
//! costs nothing per call. When it passes, the worker thread's CPU clock is
//! read, and from then on at each tick; the callback is stopped once it has
//! used the other half of the deadline in CPU time. A callback whose thread
//! the machine did not run (a busy host, a virtual machine's stolen time, a
//! host call that waited on a lock) is not stopped for the wait, while a
//! callback that loops on an idle machine is stopped after its deadline, as
//! before: half of it on the wall clock, half on the CPU clock, rounded up to
//! the tick.
//!
//! Where the thread CPU clock cannot be read, the first half passing stops
//! the callback (a wall-clock deadline of half the limit, never none).

#![allow(unsafe_code)]

use std::time::Duration;

use wasmtime::{Store, UpdateDeadline};

use crate::state::VmState;

/// How long a plugin's callbacks may run, as the engine enforces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deadline {
    /// Epoch ticks after which the CPU clock is consulted.
    pub wall_ticks: u64,
    /// CPU time the callback may use after that.
    pub cpu: Duration,
}

impl Deadline {
    /// The deadline for `limit` with epoch ticks of `tick`: half on the wall
    /// clock (at least one whole tick: the first tick may come at once),
    /// half in CPU time.
    pub fn new(limit: Duration, tick: Duration) -> Self {
        let wall = limit / 2;
        let tick = tick.as_nanos().max(1);
        Self {
            wall_ticks: (wall.as_nanos().div_ceil(tick) as u64).max(1) + 1,
            cpu: limit - wall,
        }
    }
}

/// What to do when the wall-clock part has passed, given the CPU time at
/// which it was first seen to pass (`mark`) and the CPU time `now`.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// First look: remember `now` and check again at the next tick.
    Mark(Duration),
    /// Within the CPU budget: check again at the next tick.
    Continue,
    /// The budget is used up.
    Stop,
}

fn verdict(mark: Option<Duration>, now: Duration, budget: Duration) -> Verdict {
    match mark {
        None => Verdict::Mark(now),
        Some(mark) if now.saturating_sub(mark) >= budget => Verdict::Stop,
        Some(_) => Verdict::Continue,
    }
}

/// Makes the store consult the CPU clock when a callback's wall-clock part
/// passes, instead of trapping at once. Callers reset
/// [`VmState::deadline_mark`] before each callback.
pub(crate) fn install(store: &mut Store<VmState>, budget: Duration) {
    store.epoch_deadline_callback(move |mut ctx| {
        let Some(now) = thread_cpu_time() else {
            return Ok(UpdateDeadline::Interrupt);
        };
        let state = ctx.data_mut();
        Ok(match verdict(state.deadline_mark, now, budget) {
            Verdict::Mark(now) => {
                state.deadline_mark = Some(now);
                UpdateDeadline::Continue(1)
            }
            Verdict::Continue => UpdateDeadline::Continue(1),
            Verdict::Stop => UpdateDeadline::Interrupt,
        })
    });
}

/// The CPU time the calling thread has used.
#[cfg(unix)]
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(not(unix))]
fn thread_cpu_time() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_split_between_wall_ticks_and_cpu_time() {
        let tick = Duration::from_millis(10);
        let d = Deadline::new(Duration::from_millis(20), tick);
        assert_eq!(d.wall_ticks, 2);
        assert_eq!(d.cpu, Duration::from_millis(10));
        let d = Deadline::new(Duration::from_millis(1), tick);
        assert_eq!(d.wall_ticks, 2, "at least one whole tick");
        assert_eq!(d.cpu, Duration::from_micros(500));
        let d = Deadline::new(Duration::from_secs(1), tick);
        assert_eq!(d.wall_ticks, 51);
        assert_eq!(d.cpu, Duration::from_millis(500));
        let d = Deadline::new(Duration::from_nanos(3), tick);
        assert_eq!((d.wall_ticks, d.cpu), (2, Duration::from_nanos(2)));
    }

    #[test]
    fn a_callback_is_stopped_only_once_it_has_used_its_cpu_budget() {
        let ms = Duration::from_millis;
        let budget = ms(10);
        assert_eq!(verdict(None, ms(7), budget), Verdict::Mark(ms(7)));
        assert_eq!(verdict(Some(ms(7)), ms(7), budget), Verdict::Continue);
        assert_eq!(verdict(Some(ms(7)), ms(16), budget), Verdict::Continue);
        assert_eq!(verdict(Some(ms(7)), ms(17), budget), Verdict::Stop);
        assert_eq!(verdict(Some(ms(7)), ms(90), budget), Verdict::Stop);
    }

    #[test]
    fn the_thread_cpu_clock_advances_with_work_and_not_with_sleep() {
        let Some(start) = thread_cpu_time() else {
            return;
        };
        std::thread::sleep(Duration::from_millis(50));
        let slept = thread_cpu_time().unwrap() - start;
        assert!(slept < Duration::from_millis(25), "sleeping used {slept:?}");
        let busy = std::time::Instant::now();
        let mut x = 0u64;
        while busy.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let worked = thread_cpu_time().unwrap() - start - slept;
        assert!(worked > Duration::from_millis(1), "working used {worked:?}");
    }
}
