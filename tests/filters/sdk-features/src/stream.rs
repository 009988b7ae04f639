//! The per-stream half of the test filter: what each `x-test` value does.

use crate::{Config, HITS_KEY, LAST_MESSAGE_KEY, Metrics, TICK_CALLOUT_KEY, TICKS_KEY};
use std::time::Duration;
use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::{HeaderList, info, shared};

/// The per-stream filter.
pub struct Features {
    config: Config,
    metrics: Metrics,
    queue: SharedQueue,
    tests: Vec<String>,
    /// Headers to add to the response.
    response: HeaderList,
}

impl Features {
    pub(crate) fn new(config: Config, metrics: Metrics, queue: SharedQueue) -> Features {
        Features {
            config,
            metrics,
            queue,
            tests: Vec::new(),
            response: Vec::new(),
        }
    }

    fn wants(&self, test: &str) -> bool {
        self.tests.iter().any(|t| t == test)
    }

    fn note(&mut self, name: &str, value: impl Into<String>) {
        self.response.push((name.into(), value.into()));
    }
}

fn failed(what: &str, error: wasp_filter_sdk::Error) -> Action {
    Action::respond(500, format!("{what}: {error}"))
}

impl HttpFilter for Features {
    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _end_of_stream: bool) -> Action {
        let headers = ctx.request_headers();
        self.tests = headers
            .get("x-test")
            .unwrap_or_default()
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        if self.wants("panic") {
            panic!("sdk-features asked to panic");
        }
        if self.wants("log") {
            info!("sdk-features: {}", headers.get(":path").unwrap_or_default());
        }
        if self.wants("local-reply") {
            return Action::Respond(
                418,
                vec![("x-local-reply".into(), "yes".into())],
                b"short and stout".to_vec(),
            );
        }
        if self.wants("metrics") {
            self.metrics.requests.increment(1);
            self.metrics.active.add(1);
            let total = self.metrics.requests.value().unwrap_or(0);
            self.note("x-metric-requests", total.to_string());
        }
        if self.wants("shared-data") {
            match shared::increment(HITS_KEY, 1) {
                Ok(hits) => self.note("x-shared-hits", hits.to_string()),
                Err(e) => return failed("shared data", e),
            }
        }
        if self.wants("queue") {
            let message = headers.get("x-message").unwrap_or_default();
            if let Err(e) = self.queue.enqueue(message.as_bytes()) {
                return failed("enqueue", e);
            }
        }
        if self.wants("properties") {
            let path = ctx.request_path().unwrap_or_default();
            let principal = ctx.source_principal().unwrap_or_default();
            let plugin = ctx.plugin_name().unwrap_or_default();
            self.note("x-prop-path", path);
            self.note("x-prop-principal", principal);
            self.note("x-prop-plugin", plugin);
        }
        let mut pause = false;
        if self.wants("callout") {
            let path = headers.get("x-callout-path").unwrap_or_else(|| "/".into());
            let request = HttpRequest::new(self.config.callout_cluster.as_str(), "GET", &path);
            let sent = ctx.http_call(request, |this: &mut Features, _, response| {
                match response.status() {
                    Some(status) => {
                        this.note("x-callout-status", status.to_string());
                        Action::Continue
                    }
                    None => Action::respond(503, "callout failed"),
                }
            });
            if let Err(e) = sent {
                return failed("callout", e);
            }
            pause = true;
        }
        if self.wants("timer") {
            let delay = headers
                .get("x-delay-ms")
                .and_then(|d| d.parse().ok())
                .unwrap_or(50);
            ctx.set_timer(Duration::from_millis(delay), |this: &mut Features, _| {
                this.note("x-timer-fired", "yes");
                Action::Continue
            });
            pause = true;
        }
        if pause {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_request_body(&mut self, ctx: &mut HttpCtx<Self>, size: usize, end: bool) -> Action {
        let rewrite = self.wants("body-rewrite");
        let grpc = self.wants("grpc");
        if !(rewrite || grpc) {
            return Action::Continue;
        }
        if !end {
            return Action::Pause;
        }
        if self.wants("metrics") {
            self.metrics.body_bytes.record(size as u64);
        }
        let mut body = ctx.request_body();
        let bytes = body.bytes();
        if rewrite {
            body.replace(&bytes.to_ascii_uppercase());
        }
        if grpc {
            let headers = ctx.request_headers();
            let service = headers.get("x-grpc-service").unwrap_or_default();
            let method = headers.get("x-grpc-method").unwrap_or_default();
            let request = GrpcRequest::new(&self.config.grpc_cluster, &service, &method, bytes);
            let sent = ctx.grpc_call(request, |this: &mut Features, _, response| {
                this.note("x-grpc-status", response.status.to_string());
                this.note("x-grpc-message-bytes", response.body.len().to_string());
                Action::Continue
            });
            return match sent {
                Ok(_) => Action::Pause,
                Err(e) => failed("grpc", e),
            };
        }
        Action::Continue
    }

    fn on_response_headers(&mut self, ctx: &mut HttpCtx<Self>, _end_of_stream: bool) -> Action {
        if self.wants("queue") {
            let last = shared::get(LAST_MESSAGE_KEY)
                .ok()
                .flatten()
                .map(|v| v.value);
            self.note(
                "x-queue-last",
                String::from_utf8_lossy(&last.unwrap_or_default()).into_owned(),
            );
        }
        if self.wants("ticks") {
            let ticks = shared::get(TICKS_KEY)
                .ok()
                .flatten()
                .and_then(|v| <[u8; 8]>::try_from(v.value.as_slice()).ok())
                .map_or(0, u64::from_le_bytes);
            self.note("x-ticks", ticks.to_string());
        }
        if self.wants("tick-callout") {
            let status = shared::get(TICK_CALLOUT_KEY)
                .ok()
                .flatten()
                .map(|v| v.value);
            let status = String::from_utf8_lossy(&status.unwrap_or_default()).into_owned();
            self.note("x-tick-callout", status);
        }
        let headers = ctx.response_headers();
        for (name, value) in &self.response {
            headers.set(name, value);
        }
        if self.wants("body-rewrite") {
            headers.remove("content-length");
        }
        Action::Continue
    }

    fn on_response_body(&mut self, ctx: &mut HttpCtx<Self>, _size: usize, end: bool) -> Action {
        if !self.wants("body-rewrite") {
            return Action::Continue;
        }
        if !end {
            return Action::Pause;
        }
        ctx.response_body().append(b" [rewritten]");
        Action::Continue
    }

    fn on_log(&mut self, _: &mut HttpCtx<Self>) {
        if self.wants("metrics") {
            self.metrics.active.add(-1);
        }
    }
}
