//! [`Mirror`]: one request through the filter. Every callback returns
//! `Continue`, so the original request is never held: the filter keeps its
//! own copy of the headers and of each body chunk as it passes (up to
//! `max_body_bytes`; past that the copy goes out headers-only at once), and
//! sends the copy as a detached callout when the body ends (or with the
//! headers when there is no body). The copy's outcome only moves counters.

use crate::Shared;
use crate::copy;
use std::rc::Rc;
use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::{HeaderList, debug};

/// Where a request's copy stands.
enum Copy {
    /// Already sent (or given up).
    Done,
    /// Collecting: the headers and the body so far.
    Collecting { headers: HeaderList, body: Vec<u8> },
}

/// The per-request filter.
pub struct Mirror {
    shared: Rc<Shared>,
    copy: Copy,
    /// Sampled for mirroring and not yet sent (a drop now means skipped).
    pending: bool,
}

impl Mirror {
    /// The filter of a request sampled for mirroring.
    pub(crate) fn new(shared: Rc<Shared>) -> Mirror {
        Mirror {
            shared,
            copy: Copy::Done,
            pending: true,
        }
    }

    /// Sends the copy (`body: None`: headers-only) and forgets it.
    fn send(&mut self, ctx: &mut HttpCtx<Self>, headers: &HeaderList, body: Option<Vec<u8>>) {
        self.pending = false;
        self.copy = Copy::Done;
        let metrics = self.shared.metrics;
        let config = &self.shared.config;
        if body.is_none() {
            metrics.headers_only.increment(1);
        }
        let request = copy::request(
            &config.cluster,
            headers,
            body.unwrap_or_default(),
            config.timeout,
        );
        let sent = ctx.http_call_detached(request, move |response| {
            let answered = response.status().is_some_and(|status| status < 500);
            if !answered {
                metrics.failed.increment(1);
            }
        });
        match sent {
            Ok(_) => metrics.mirrored.increment(1),
            Err(e) => {
                debug!("mirror: the copy to `{}` was not sent: {e}", config.cluster);
                metrics.failed.increment(1);
            }
        }
    }

    /// Sends the collected copy with its body.
    fn finish(&mut self, ctx: &mut HttpCtx<Self>) {
        if let Copy::Collecting { headers, body } = std::mem::replace(&mut self.copy, Copy::Done) {
            self.send(ctx, &headers, Some(body));
        }
    }
}

impl HttpFilter for Mirror {
    /// The request headers, body and trailers (the copy's); the response
    /// passes untouched.
    const CALLBACKS: Callbacks = Callbacks {
        request_body: true,
        ..Callbacks::REQUEST_HEADERS
    };

    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, end_of_stream: bool) -> Action {
        if !self.pending {
            return Action::Continue;
        }
        let headers = ctx.request_headers().all();
        if end_of_stream {
            self.send(ctx, &headers, Some(Vec::new()));
        } else {
            self.copy = Copy::Collecting {
                headers,
                body: Vec::new(),
            };
        }
        Action::Continue
    }

    fn on_request_body(&mut self, ctx: &mut HttpCtx<Self>, size: usize, end: bool) -> Action {
        let limit = self.shared.config.max_body_bytes;
        let over = match &mut self.copy {
            Copy::Done => return Action::Continue,
            Copy::Collecting { body, .. } => {
                // The filter continues, so the host shows only this chunk.
                let over = (body.len() + size) as u64 > limit;
                if !over {
                    body.extend_from_slice(&ctx.request_body().bytes());
                }
                over
            }
        };
        if over {
            if let Copy::Collecting { headers, .. } = std::mem::replace(&mut self.copy, Copy::Done)
            {
                self.send(ctx, &headers, None);
            }
        } else if end {
            self.finish(ctx);
        }
        Action::Continue
    }

    fn on_request_trailers(&mut self, ctx: &mut HttpCtx<Self>) -> Action {
        self.finish(ctx);
        Action::Continue
    }
}

impl Drop for Mirror {
    /// A sampled request that ended before its body did is not mirrored.
    fn drop(&mut self) {
        if self.pending {
            self.shared.metrics.skipped.increment(1);
        }
    }
}
