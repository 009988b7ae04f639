//! [`RootCtx`]: what a plugin's root filter can do — tick period and
//! callouts that are not tied to a stream.

use crate::callout::{Callouts, GrpcRequest, GrpcResponse, HttpRequest, HttpResponse};
use crate::dispatch;
use crate::error::Result;
use crate::filter::RootFilter;
use crate::properties::Properties;
use std::time::Duration;

/// The context of a plugin's root filter.
pub struct RootCtx<R: RootFilter> {
    id: u32,
    pub(crate) callouts: Callouts<R, RootCtx<R>, ()>,
}

impl<R: RootFilter> Properties for RootCtx<R> {}

impl<R: RootFilter> RootCtx<R> {
    pub(crate) fn new(id: u32) -> RootCtx<R> {
        RootCtx {
            id,
            callouts: Callouts::default(),
        }
    }

    /// The host's id of this root context.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Calls [`RootFilter::on_tick`] every `period` (zero stops ticking).
    /// Periods are whole milliseconds.
    pub fn set_tick_period(&mut self, period: Duration) {
        let millis = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
        dispatch::set_user_tick_period(self.id, millis);
    }

    /// Sends an HTTP callout; `callback` runs with the root filter when the
    /// response (or failure) arrives.
    pub fn http_call(
        &mut self,
        request: HttpRequest,
        callback: impl FnOnce(&mut R, &mut RootCtx<R>, HttpResponse) + 'static,
    ) -> Result<u32> {
        let token = request.dispatch()?;
        dispatch::register_token(token, self.id);
        self.callouts.add_http(token, Box::new(callback));
        Ok(token)
    }

    /// Sends a unary gRPC callout; like [`RootCtx::http_call`].
    pub fn grpc_call(
        &mut self,
        request: GrpcRequest,
        callback: impl FnOnce(&mut R, &mut RootCtx<R>, GrpcResponse) + 'static,
    ) -> Result<u32> {
        let token = request.dispatch()?;
        dispatch::register_token(token, self.id);
        self.callouts.add_grpc(token, Box::new(callback));
        Ok(token)
    }
}
