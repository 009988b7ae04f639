//! The traits a filter implements: [`RootFilter`] (one per plugin: configuration,
//! ticks, queues, creating per-request filters) and [`HttpFilter`] (one per HTTP
//! stream), and the [`Action`] a stream callback returns.

use crate::context::{HttpCtx, RootCtx};
use crate::shared::SharedQueue;
use serde::de::DeserializeOwned;

/// A header list as filters build it: `(name, value)` pairs.
pub type HeaderList = Vec<(String, String)>;

/// What the host does with the stream after a filter callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Go on to the next filter (and upstream/downstream).
    Continue,
    /// Stop here until the filter resumes the stream (from a callout
    /// callback, a timer, or [`HttpCtx::resume`]). While a body callback
    /// pauses, the host buffers the body.
    Pause,
    /// Answer the request locally with this status, headers and body; the
    /// upstream is not (or no longer) involved.
    Respond(u16, HeaderList, Vec<u8>),
}

impl Action {
    /// A local reply with a status and a body and no extra headers.
    pub fn respond(status: u16, body: impl Into<Vec<u8>>) -> Action {
        Action::Respond(status, Vec::new(), body.into())
    }
}

/// Which optional stream callbacks a filter needs ([`HttpFilter::CALLBACKS`]).
/// A method whose callback is left out is never called, even when the
/// filter overrides it. Each callback left out saves the host a call into
/// the filter per request (and per body chunk for the body callbacks); a
/// filter that needs no response callback at all costs nothing in the
/// response phase.
///
/// `proxy_on_done` is never needed (the SDK's answer is always "done"), so
/// the host is told to skip it whatever the fields say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Callbacks {
    /// [`HttpFilter::on_request_headers`].
    pub request_headers: bool,
    /// [`HttpFilter::on_request_body`] and [`HttpFilter::on_request_trailers`].
    pub request_body: bool,
    /// [`HttpFilter::on_response_headers`].
    pub response_headers: bool,
    /// [`HttpFilter::on_response_body`] and [`HttpFilter::on_response_trailers`].
    pub response_body: bool,
    /// [`HttpFilter::on_log`].
    pub log: bool,
}

impl Callbacks {
    /// Every callback (the default).
    pub const ALL: Callbacks = Callbacks {
        request_headers: true,
        request_body: true,
        response_headers: true,
        response_body: true,
        log: true,
    };
    /// The request and response header callbacks: no body, trailers or log.
    pub const HEADERS: Callbacks = Callbacks {
        request_body: false,
        response_body: false,
        log: false,
        ..Callbacks::ALL
    };
    /// Only [`HttpFilter::on_request_headers`]: a filter that acts on the
    /// request head alone (authentication, authorization, routing, fault
    /// injection).
    pub const REQUEST_HEADERS: Callbacks = Callbacks {
        response_headers: false,
        ..Callbacks::HEADERS
    };

    /// The bit set the host reads (`wasp_abi::HTTP_CALLBACK_*`): the body
    /// and log callbacks as needs, the header callbacks and
    /// `proxy_on_done` as opt-outs.
    pub const fn bits(self) -> u32 {
        let mut bits = wasp_abi::HTTP_CALLBACK_NO_DONE;
        if !self.request_headers {
            bits |= wasp_abi::HTTP_CALLBACK_NO_REQUEST_HEADERS;
        }
        if self.request_body {
            bits |= wasp_abi::HTTP_CALLBACK_REQUEST_BODY;
        }
        if !self.response_headers {
            bits |= wasp_abi::HTTP_CALLBACK_NO_RESPONSE_HEADERS;
        }
        if self.response_body {
            bits |= wasp_abi::HTTP_CALLBACK_RESPONSE_BODY;
        }
        if self.log {
            bits |= wasp_abi::HTTP_CALLBACK_LOG;
        }
        bits
    }
}

/// A per-stream HTTP filter. Every method has a default that lets the
/// stream through untouched, so a filter implements only the phases it needs.
#[allow(unused_variables)]
pub trait HttpFilter: Sized + 'static {
    /// The optional callbacks this filter needs the host to call. A filter
    /// that overrides none of the body, trailers and log methods can say
    /// [`Callbacks::HEADERS`]: bodies then stream past it without a call per
    /// chunk, which makes it cheaper per request. One that acts on the
    /// request headers alone can say [`Callbacks::REQUEST_HEADERS`]: the
    /// host then does not enter it in the response phase at all.
    /// Default: [`Callbacks::ALL`].
    const CALLBACKS: Callbacks = Callbacks::ALL;

    /// Runs when the request headers arrived (`end_of_stream`: the request has
    /// no body). Read or change them with [`HttpCtx::request_headers`].
    /// Default: [`Action::Continue`].
    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, end_of_stream: bool) -> Action {
        Action::Continue
    }

    /// Runs for each piece of request body; `body_size` is the size of the
    /// body buffered so far. Returning [`Action::Pause`] until
    /// `end_of_stream` makes the host buffer the whole body.
    /// Default: [`Action::Continue`].
    fn on_request_body(
        &mut self,
        ctx: &mut HttpCtx<Self>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }

    /// Runs when request trailers arrived. Default: [`Action::Continue`].
    fn on_request_trailers(&mut self, ctx: &mut HttpCtx<Self>) -> Action {
        Action::Continue
    }

    /// Runs when the response headers arrived. Default: [`Action::Continue`].
    fn on_response_headers(&mut self, ctx: &mut HttpCtx<Self>, end_of_stream: bool) -> Action {
        Action::Continue
    }

    /// Runs for each piece of response body (see [`HttpFilter::on_request_body`]).
    /// Default: [`Action::Continue`].
    fn on_response_body(
        &mut self,
        ctx: &mut HttpCtx<Self>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }

    /// Runs when response trailers arrived. Default: [`Action::Continue`].
    fn on_response_trailers(&mut self, ctx: &mut HttpCtx<Self>) -> Action {
        Action::Continue
    }

    /// Runs once when the stream is complete, for access logging. Headers
    /// can still be read. Default: nothing.
    fn on_log(&mut self, ctx: &mut HttpCtx<Self>) {}
}

/// Per-plugin state: one root filter exists per plugin (per VM); it receives
/// the plugin configuration, ticks and queue notifications, and creates an
/// [`HttpFilter`] for every HTTP stream.
#[allow(unused_variables)]
pub trait RootFilter: Sized + 'static {
    /// The plugin configuration, deserialized from the configuration's JSON.
    /// An empty configuration is read as JSON `null`, then as `{}`.
    type Config: DeserializeOwned;
    /// The per-stream filter this root creates.
    type Http: HttpFilter;

    /// Runs once when the VM starts, with the raw VM configuration.
    /// An `Err` fails the start and is logged. Default: `Ok(())`.
    fn on_vm_start(&mut self, ctx: &mut RootCtx<Self>, vm_config: &[u8]) -> Result<(), String> {
        Ok(())
    }

    /// Runs when the plugin is configured (and on every reconfiguration).
    /// A configuration that does not deserialize, or an `Err` returned here,
    /// fails `proxy_on_configure` (the host then rejects the plugin) and is
    /// logged at error level. Default: accepts any configuration.
    fn on_configure(
        &mut self,
        ctx: &mut RootCtx<Self>,
        config: Self::Config,
    ) -> Result<(), String> {
        Ok(())
    }

    /// Runs every tick period set with [`RootCtx::set_tick_period`]. Default: nothing.
    fn on_tick(&mut self, ctx: &mut RootCtx<Self>) {}

    /// Runs when a message arrived on a shared queue this VM registered.
    /// Default: nothing.
    fn on_queue_ready(&mut self, ctx: &mut RootCtx<Self>, queue: SharedQueue) {}

    /// Creates the filter for a new HTTP stream; `None` lets the stream pass
    /// this plugin untouched.
    fn create_http_filter(&mut self, ctx: &mut RootCtx<Self>) -> Option<Self::Http>;
}

#[cfg(test)]
mod tests {
    use super::Callbacks;
    use wasp_abi::{
        HTTP_CALLBACK_LOG, HTTP_CALLBACK_NO_DONE, HTTP_CALLBACK_NO_REQUEST_HEADERS,
        HTTP_CALLBACK_NO_RESPONSE_HEADERS, HTTP_CALLBACK_REQUEST_BODY, HTTP_CALLBACK_RESPONSE_BODY,
    };

    #[test]
    fn every_callback_is_the_old_value_plus_no_done() {
        assert_eq!(
            Callbacks::ALL.bits(),
            wasp_abi::HTTP_CALLBACK_ALL | HTTP_CALLBACK_NO_DONE
        );
    }

    #[test]
    fn header_only_filters_opt_out_of_bodies_and_log() {
        assert_eq!(Callbacks::HEADERS.bits(), HTTP_CALLBACK_NO_DONE);
        assert_eq!(
            Callbacks::REQUEST_HEADERS.bits(),
            HTTP_CALLBACK_NO_DONE | HTTP_CALLBACK_NO_RESPONSE_HEADERS
        );
    }

    #[test]
    fn each_field_sets_its_own_bit() {
        let none = Callbacks {
            request_headers: false,
            request_body: false,
            response_headers: false,
            response_body: false,
            log: false,
        };
        let base = HTTP_CALLBACK_NO_DONE
            | HTTP_CALLBACK_NO_REQUEST_HEADERS
            | HTTP_CALLBACK_NO_RESPONSE_HEADERS;
        assert_eq!(none.bits(), base);
        let with = |c: Callbacks| c.bits();
        assert_eq!(
            with(Callbacks {
                request_headers: true,
                ..none
            }),
            base & !HTTP_CALLBACK_NO_REQUEST_HEADERS
        );
        assert_eq!(
            with(Callbacks {
                response_headers: true,
                ..none
            }),
            base & !HTTP_CALLBACK_NO_RESPONSE_HEADERS
        );
        assert_eq!(
            with(Callbacks {
                request_body: true,
                ..none
            }),
            base | HTTP_CALLBACK_REQUEST_BODY
        );
        assert_eq!(
            with(Callbacks {
                response_body: true,
                ..none
            }),
            base | HTTP_CALLBACK_RESPONSE_BODY
        );
        assert_eq!(
            with(Callbacks { log: true, ..none }),
            base | HTTP_CALLBACK_LOG
        );
    }
}
