//! [`Fault`]: one request through the filter. A delay pauses the request
//! headers and sets a stream timer (the SDK drives it from the root
//! context's tick, so a delayed request holds memory, not a thread); an
//! abort, right away or when the delay ends, is a local reply. While a
//! request has a fault it counts in `active_faults`.

use crate::Shared;
use crate::plan::{Injected, Plan, Rolls};
use std::rc::Rc;
use wasp_filter_sdk::Gauge;
use wasp_filter_sdk::prelude::*;

/// The body of an abort's reply (Envoy's).
pub const ABORT_BODY: &str = "fault filter abort";

/// A request counted in `active_faults` until this is dropped (when its
/// delay ends without an abort, or when the stream is deleted).
struct ActiveFault(Gauge);

impl Drop for ActiveFault {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

/// The per-request filter.
pub struct Fault {
    shared: Rc<Shared>,
    rolls: Rolls,
    active: Option<ActiveFault>,
}

impl Fault {
    pub(crate) fn new(shared: Rc<Shared>, rolls: Rolls) -> Fault {
        Fault {
            shared,
            rolls,
            active: None,
        }
    }

    /// Counts this request as having a fault; false (and counted as an
    /// overflow) when `max_active_faults` are active already. The check is
    /// not atomic across VMs, as Envoy's is not.
    fn activate(&mut self) -> bool {
        if self.active.is_some() {
            return true;
        }
        let metrics = &self.shared.metrics;
        if let Some(max) = self.shared.config.max_active_faults {
            if metrics.active_faults.value().unwrap_or(0) >= max {
                metrics.faults_overflow.increment(1);
                return false;
            }
        }
        metrics.active_faults.add(1);
        self.active = Some(ActiveFault(metrics.active_faults));
        true
    }

    fn abort(&mut self, ctx: &mut HttpCtx<Self>, injected: Option<Injected>) -> Action {
        let Some(injected) = injected else {
            return Action::Continue;
        };
        if !self.activate() {
            return Action::Continue;
        }
        self.shared.metrics.aborts_injected.increment(1);
        match injected {
            Injected::Http(status) => Action::respond(status, ABORT_BODY),
            Injected::Grpc(code) => {
                ctx.respond_grpc(code, ABORT_BODY);
                Action::Pause
            }
        }
    }
}

impl HttpFilter for Fault {
    /// Only the request headers (a delay resumes from a timer): bodies and
    /// responses pass untouched.
    const CALLBACKS: Callbacks = Callbacks::REQUEST_HEADERS;

    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
        let headers = ctx.request_headers();
        let header = |name: &str| headers.get(name);
        let config = &self.shared.config;
        if let Some(matcher) = &config.matcher {
            if !matcher.matches(header) {
                return Action::Continue;
            }
        }
        let plan = Plan::decide(config, header, self.rolls);
        if let Some(delay) = plan.delay {
            if self.activate() {
                self.shared.metrics.delays_injected.increment(1);
                let abort = plan.abort;
                ctx.set_timer(delay, move |this: &mut Fault, ctx| {
                    let action = this.abort(ctx, abort);
                    if action == Action::Continue {
                        this.active = None;
                    }
                    action
                });
                return Action::Pause;
            }
        }
        self.abort(ctx, plan.abort)
    }
}
