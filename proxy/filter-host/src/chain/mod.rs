//! Filter chains and the per-request driver: runs each phase through the
//! chain's filters (request phases in order, response phases in reverse),
//! waits while a filter is paused, buffers bodies a filter asked to see whole,
//! and applies the failure policy when a filter's VM fails.

mod filter;
mod replies;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use bytes::Bytes;
use wasp_abi::Action;

use crate::headers::{HeadChange, HeaderSource, Headers};
use crate::limits::{self, Limit};
use crate::plugin::Plugin;
use crate::pool::{SlotError, VmSlot};
use crate::spec::FailurePolicy;
use crate::stream::{HeaderList, LocalReply, ResumeSignal, SharedStream, StreamData, StreamInfo};
use crate::vm::{Direction, Vm, VmFailure};
use filter::Filter;
use replies::{closed_reply, failure_reply, grpc_trailers_only, is_grpc_request, too_large_reply};

/// A named, ordered list of plugins.
#[derive(Debug, Clone)]
pub struct FilterChain {
    name: String,
    /// Shared with every stream (one reference count per stream, not one
    /// per filter).
    plugins: Arc<[Arc<Plugin>]>,
}

impl FilterChain {
    /// A chain of `plugins`, run in this order on requests.
    pub fn new(name: impl Into<String>, plugins: Vec<Arc<Plugin>>) -> Self {
        Self {
            name: name.into(),
            plugins: plugins.into(),
        }
    }

    /// Chain name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugins in request order.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// True when a plugin handles request bodies or trailers; otherwise the
    /// request body need not pass through the chain.
    pub fn handles_request_body(&self) -> bool {
        self.plugins
            .iter()
            .any(|p| p.core.calls().body(Direction::Request))
    }

    /// True when a plugin handles response bodies or trailers.
    pub fn handles_response_body(&self) -> bool {
        self.plugins
            .iter()
            .any(|p| p.core.calls().body(Direction::Response))
    }

    /// Starts a stream. Each plugin's HTTP context is created in the VM of
    /// the calling thread's slot with the filter's first callback, under the
    /// same lock (as Envoy creates it with the request headers); a filter
    /// that never ran gets it when the stream ends, for `proxy_on_log`.
    pub fn start(&self, info: StreamInfo) -> ChainStream {
        let shared = Arc::new(SharedStream::new(StreamData::new(info), self.plugins.len()));
        let filters: Vec<Filter> = self.plugins.iter().map(|p| Filter::new(p)).collect();
        let responders = AtomicUsize::new(filters.len());
        ChainStream {
            plugins: Arc::clone(&self.plugins),
            shared,
            filters,
            responders,
            failures: AtomicU32::new(0),
        }
    }
}

/// The flag that resumes `dir` of a paused filter.
fn flag(signal: &ResumeSignal, dir: Direction) -> &AtomicBool {
    match dir {
        Direction::Request => &signal.request,
        Direction::Response => &signal.response,
    }
}

/// What a callback (or waiting for a paused filter) came to.
enum Step {
    Continue,
    Pause,
    /// Skip this filter (fail-open).
    Skip,
}

/// The chain's state for one request. Dropping it ends every filter context
/// (`proxy_on_done`, `proxy_on_log`, `proxy_on_delete`).
pub struct ChainStream {
    /// The chain's plugins, in the order of `filters`.
    plugins: Arc<[Arc<Plugin>]>,
    shared: Arc<SharedStream>,
    filters: Vec<Filter>,
    /// How many filters (in request order) take part in response phases:
    /// all, or those that saw the request up to a local reply.
    responders: AtomicUsize,
    /// How many times a filter failed on this stream (trap, deadline,
    /// dead VM), whatever its failure policy made of it.
    failures: AtomicU32,
}

impl std::fmt::Debug for ChainStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainStream")
            .field("filters", &self.filters.len())
            .finish()
    }
}

impl ChainStream {
    fn lock(&self) -> std::sync::MutexGuard<'_, StreamData> {
        self.shared.lock()
    }

    fn plugin(&self, i: usize) -> &Plugin {
        &self.plugins[i]
    }

    /// The VM slot of filter `i`.
    fn slot(&self, i: usize) -> &VmSlot {
        &self.plugins[i].pool.slots()[self.filters[i].slot]
    }

    fn signal(&self, i: usize) -> &ResumeSignal {
        &self.shared.signals[i]
    }

    /// Filter indexes in the order a phase of `dir` runs them.
    fn order(&self, dir: Direction) -> impl Iterator<Item = usize> + use<> {
        let (len, reverse) = match dir {
            Direction::Request => (self.filters.len(), false),
            Direction::Response => (
                self.filters
                    .len()
                    .min(self.responders.load(Ordering::Relaxed)),
                true,
            ),
        };
        (0..len).map(move |k| if reverse { len - 1 - k } else { k })
    }

    /// Applies the failure policy to filter `i`.
    fn fail(&self, i: usize, failure: Option<&VmFailure>) -> Result<Step, LocalReply> {
        let filter = &self.filters[i];
        let name = self.plugin(i).name();
        self.failures.fetch_add(1, Ordering::Relaxed);
        if let Some(failure) = failure {
            tracing::warn!(plugin = name, reason = %failure, "filter failed on this request");
        }
        match self.plugin(i).failure_policy() {
            FailurePolicy::FailOpen => {
                filter.skipped.store(true, Ordering::Relaxed);
                Ok(Step::Skip)
            }
            FailurePolicy::FailClosed => {
                self.responders.fetch_min(i, Ordering::Relaxed);
                Err(failure_reply(name))
            }
        }
    }

    /// Runs one callback of filter `i`, the first one right after creating
    /// the filter's context, under one lock of its VM.
    fn call(
        &self,
        i: usize,
        dir: Direction,
        f: impl FnOnce(&mut Vm, u32) -> Result<u32, VmFailure>,
    ) -> Result<Step, LocalReply> {
        let filter = &self.filters[i];
        flag(self.signal(i), dir).store(false, Ordering::Release);
        let called = match filter.bound.get() {
            Some(Some((generation, ctx))) => {
                self.slot(i).with_vm(Some(generation), |vm| f(vm, ctx))
            }
            Some(None) => Err(SlotError::Gone),
            None => {
                let first = self.slot(i).with_vm(None, |vm| {
                    let ctx = vm.create_stream(Arc::clone(&self.shared), i)?;
                    f(vm, ctx).map(|action| (action, ctx))
                });
                let bound = first
                    .as_ref()
                    .ok()
                    .map(|((_, ctx), generation)| (*generation, *ctx));
                filter.bound.set(bound);
                first.map(|((action, _), generation)| (action, generation))
            }
        };
        match called {
            Ok((action, _)) => {
                if let Some(reply) = self.shared.reply() {
                    self.responders.fetch_min(i + 1, Ordering::Relaxed);
                    return Err(reply);
                }
                Ok(if action == Action::Pause as u32 {
                    Step::Pause
                } else {
                    Step::Continue
                })
            }
            Err(SlotError::Failed(failure)) => self.fail(i, Some(&failure)),
            Err(_) => self.fail(i, None),
        }
    }

    /// Waits until paused filter `i` resumes `dir`, replies, or fails.
    async fn wait(&self, i: usize, dir: Direction) -> Result<Step, LocalReply> {
        let signal = self.signal(i);
        loop {
            if let Some(reply) = self.shared.reply() {
                self.responders.fetch_min(i + 1, Ordering::Relaxed);
                return Err(reply);
            }
            if flag(signal, dir).load(Ordering::Acquire) {
                return Ok(Step::Continue);
            }
            if signal.closed.load(Ordering::Acquire) {
                return Err(closed_reply(self.plugin(i).name()));
            }
            if signal.failed.load(Ordering::Acquire) {
                return self.fail(i, None);
            }
            signal.notify.notified().await;
        }
    }

    /// How many headers of `dir` the stream has now.
    fn header_count(&self, dir: Direction) -> u32 {
        let data = self.lock();
        let count = match dir {
            Direction::Request => data.request_headers.len(),
            Direction::Response => data.response_headers.len(),
        };
        count as u32
    }

    async fn headers_phase(&self, dir: Direction, eos: bool) -> Result<(), LocalReply> {
        // The count is read again only after a filter wrote to the headers.
        let mut known = None;
        let mut seen = 0;
        for i in self.order(dir) {
            let filter = &self.filters[i];
            if !filter.calls.headers(dir) || filter.skipped.load(Ordering::Relaxed) {
                continue;
            }
            let writes = self.shared.header_writes();
            let count = match known {
                Some(count) if writes == seen => count,
                _ => {
                    seen = writes;
                    *known.insert(self.header_count(dir))
                }
            };
            if let Step::Pause = self.call(i, dir, |vm, ctx| vm.on_headers(ctx, dir, count, eos))? {
                self.wait(i, dir).await?;
            }
        }
        Ok(())
    }

    /// Runs the request headers through the chain; returns them as the
    /// filters left them, or the reply to send instead of forwarding.
    pub async fn request_headers(
        &self,
        headers: HeaderList,
        end_of_stream: bool,
    ) -> Result<HeaderList, LocalReply> {
        let changed = self.filter_request_headers(headers, end_of_stream).await?;
        Ok(changed.unwrap_or_else(|| self.lock().request_headers.to_list()))
    }

    /// Runs the request headers through the chain; returns them as the
    /// filters left them only when a filter wrote to them (`None`: the
    /// headers passed unchanged, and need not be copied back).
    pub async fn filter_request_headers(
        &self,
        headers: HeaderList,
        end_of_stream: bool,
    ) -> Result<Option<HeaderList>, LocalReply> {
        self.headers_pass(Direction::Request, headers.into(), end_of_stream)
            .await?;
        Ok(self.changed_list(Direction::Request))
    }

    /// As [`ChainStream::filter_request_headers`], with the request head
    /// in the proxy's own representation: filters read it in place, and a
    /// list is built only when a filter writes to it or asks for all of it.
    /// What filters changed is shared with the stream (which keeps it for
    /// later reads), not copied: the edits of the head, for the proxy to
    /// apply to its own, or a whole new list.
    pub async fn filter_request_head(
        &self,
        head: impl HeaderSource,
        end_of_stream: bool,
    ) -> Result<Option<HeadChange>, LocalReply> {
        let head = Headers::source(Box::new(head));
        self.headers_pass(Direction::Request, head, end_of_stream)
            .await
    }

    /// Runs the response headers (with `:status`) through the chain in reverse.
    pub async fn response_headers(
        &self,
        headers: HeaderList,
        end_of_stream: bool,
    ) -> Result<HeaderList, LocalReply> {
        let changed = self.filter_response_headers(headers, end_of_stream).await?;
        Ok(changed.unwrap_or_else(|| self.lock().response_headers.to_list()))
    }

    /// Runs the response headers through the chain in reverse; as
    /// [`ChainStream::filter_request_headers`], `None` when no filter wrote
    /// to them.
    pub async fn filter_response_headers(
        &self,
        headers: HeaderList,
        end_of_stream: bool,
    ) -> Result<Option<HeaderList>, LocalReply> {
        self.headers_pass(Direction::Response, headers.into(), end_of_stream)
            .await?;
        Ok(self.changed_list(Direction::Response))
    }

    /// As [`ChainStream::filter_response_headers`], with the response head
    /// in the proxy's own representation (see
    /// [`ChainStream::filter_request_head`]).
    pub async fn filter_response_head(
        &self,
        head: impl HeaderSource,
        end_of_stream: bool,
    ) -> Result<Option<HeadChange>, LocalReply> {
        let head = Headers::source(Box::new(head));
        self.headers_pass(Direction::Response, head, end_of_stream)
            .await
    }

    async fn headers_pass(
        &self,
        dir: Direction,
        headers: Headers,
        end_of_stream: bool,
    ) -> Result<Option<HeadChange>, LocalReply> {
        {
            let mut data = self.lock();
            data.headers_changed[dir as usize] = false;
            match dir {
                Direction::Request => data.request_headers = headers,
                Direction::Response => data.response_headers = headers,
            }
        }
        self.headers_phase(dir, end_of_stream).await?;
        let mut data = self.lock();
        if !data.headers_changed[dir as usize] {
            return Ok(None);
        }
        Ok(match dir {
            Direction::Request => data.request_headers.share(),
            Direction::Response => data.response_headers.share(),
        })
    }

    /// The headers of `dir` as a list when a filter changed them in the
    /// phase that just ran (the list-based calls).
    fn changed_list(&self, dir: Direction) -> Option<HeaderList> {
        let data = self.lock();
        data.headers_changed[dir as usize].then(|| match dir {
            Direction::Request => data.request_headers.to_list(),
            Direction::Response => data.response_headers.to_list(),
        })
    }

    fn body_slot(data: &mut StreamData, dir: Direction) -> &mut Vec<u8> {
        match dir {
            Direction::Request => &mut data.request_body,
            Direction::Response => &mut data.response_body,
        }
    }

    async fn body_phase(
        &self,
        dir: Direction,
        chunk: Bytes,
        eos: bool,
    ) -> Result<Bytes, LocalReply> {
        let mut flowing = chunk.to_vec();
        for i in self.order(dir) {
            let filter = &self.filters[i];
            // A filter without body callbacks never buffers a body.
            if !filter.calls.body(dir) || filter.skipped.load(Ordering::Relaxed) {
                continue;
            }
            let mut shown = std::mem::take(&mut *filter.pending(dir));
            shown.append(&mut flowing);
            let size = shown.len() as u32;
            *Self::body_slot(&mut self.lock(), dir) = shown;
            let step = self.call(i, dir, |vm, ctx| vm.on_body(ctx, dir, size, eos));
            let step = match step {
                Ok(Step::Pause) if eos => self.wait(i, dir).await,
                other => other,
            };
            let body = std::mem::take(Self::body_slot(&mut self.lock(), dir));
            match step? {
                Step::Continue | Step::Skip => flowing = body,
                Step::Pause => {
                    // Buffer; the filter is called again with the cumulative size.
                    let core = &self.plugin(i).core;
                    if body.len() as u64 > core.spec.limits.max_buffered_body_bytes {
                        limits::exceeded(core, "buffering a paused body", Limit::BufferedBodyBytes);
                        self.responders.fetch_min(i + 1, Ordering::Relaxed);
                        return Err(too_large_reply(dir));
                    }
                    *filter.pending(dir) = body;
                    return Ok(Bytes::new());
                }
            }
        }
        Ok(flowing.into())
    }

    /// Runs a request body chunk through the chain; returns the bytes to send
    /// on now (empty while a filter buffers).
    pub async fn request_body(
        &self,
        chunk: Bytes,
        end_of_stream: bool,
    ) -> Result<Bytes, LocalReply> {
        self.body_phase(Direction::Request, chunk, end_of_stream)
            .await
    }

    /// Runs a response body chunk through the chain in reverse.
    pub async fn response_body(
        &self,
        chunk: Bytes,
        end_of_stream: bool,
    ) -> Result<Bytes, LocalReply> {
        self.body_phase(Direction::Response, chunk, end_of_stream)
            .await
    }

    async fn trailers_phase(
        &self,
        dir: Direction,
        trailers: HeaderList,
    ) -> Result<(Bytes, HeaderList), LocalReply> {
        {
            let mut data = self.lock();
            match dir {
                Direction::Request => data.request_trailers = trailers.into(),
                Direction::Response => data.response_trailers = trailers.into(),
            }
        }
        let mut flowing = Vec::new();
        for i in self.order(dir) {
            let filter = &self.filters[i];
            let mut buffered = std::mem::take(&mut *filter.pending(dir));
            buffered.append(&mut flowing);
            flowing = buffered;
            if !filter.calls.body(dir) || filter.skipped.load(Ordering::Relaxed) {
                continue;
            }
            let count = {
                let data = self.lock();
                match dir {
                    Direction::Request => data.request_trailers.len(),
                    Direction::Response => data.response_trailers.len(),
                }
            } as u32;
            if let Step::Pause = self.call(i, dir, |vm, ctx| vm.on_trailers(ctx, dir, count))? {
                self.wait(i, dir).await?;
            }
        }
        let data = self.lock();
        let trailers = match dir {
            Direction::Request => data.request_trailers.to_list(),
            Direction::Response => data.response_trailers.to_list(),
        };
        Ok((flowing.into(), trailers))
    }

    /// Runs request trailers through the chain; returns body bytes still
    /// buffered by filters (to send before the trailers) and the trailers.
    pub async fn request_trailers(
        &self,
        trailers: HeaderList,
    ) -> Result<(Bytes, HeaderList), LocalReply> {
        self.trailers_phase(Direction::Request, trailers).await
    }

    /// Runs response trailers through the chain in reverse.
    pub async fn response_trailers(
        &self,
        trailers: HeaderList,
    ) -> Result<(Bytes, HeaderList), LocalReply> {
        self.trailers_phase(Direction::Response, trailers).await
    }

    /// Passes a local reply sent in a request phase through the response
    /// phases of the filters that saw the request, up to and including the
    /// one that replied, in reverse (as Envoy does); returns the reply as they
    /// left it. A reply sent during this phase replaces it.
    pub async fn respond_locally(&self, reply: LocalReply) -> LocalReply {
        let is_grpc = is_grpc_request(&self.lock().request_headers);
        let reply = match reply.grpc_status {
            Some(grpc) if is_grpc => grpc_trailers_only(reply, grpc),
            _ => reply,
        };
        let mut headers = vec![(":status".to_owned(), reply.status.to_string().into_bytes())];
        headers.extend(reply.headers.iter().cloned());
        if let Some(grpc) = reply.grpc_status {
            headers.push(("grpc-status".into(), grpc.to_string().into_bytes()));
        }
        if !reply.body.is_empty() && !headers.iter().any(|(k, _)| k == "content-type") {
            headers.push(("content-type".into(), b"text/plain".to_vec()));
        }
        self.shared.clear_reply();
        self.lock().response_headers = headers.into();
        let body_ends = reply.body.is_empty();
        if let Err(other) = self.headers_phase(Direction::Response, body_ends).await {
            return other;
        }
        let body = if body_ends {
            reply.body
        } else {
            match self.body_phase(Direction::Response, reply.body, true).await {
                Ok(body) => body,
                Err(other) => return other,
            }
        };
        let headers = self.lock().response_headers.to_list();
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(reply.status);
        LocalReply {
            status,
            headers: headers
                .into_iter()
                .filter(|(k, _)| !k.starts_with(':'))
                .collect(),
            body,
            details: reply.details,
            grpc_status: None,
        }
    }

    /// How many times a filter failed on this stream so far (trap,
    /// deadline, dead VM): the failures its failure policy answered,
    /// whether with a 503 or by skipping the filter.
    pub fn failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Filter state set so far (`proxy_set_property`), by dotted path.
    pub fn filter_state(&self, path: &str) -> Option<Vec<u8>> {
        let data = self.lock();
        data.filter_state.get(path.as_bytes()).map(|v| v.to_vec())
    }
}

impl Drop for ChainStream {
    fn drop(&mut self) {
        {
            let mut data = self.lock();
            data.ended = Some(data.info.start.elapsed().unwrap_or_default());
        }
        for (i, filter) in self.filters.iter().enumerate() {
            let _ = match filter.bound.get() {
                Some(Some((generation, ctx))) => self
                    .slot(i)
                    .with_vm(Some(generation), |vm| vm.finish_stream(ctx)),
                // Its first callback failed: its VM is gone or never came.
                Some(None) => continue,
                // A filter that never ran (an earlier one replied) still
                // sees the stream end, as in Envoy.
                None => self.slot(i).with_vm(None, |vm| {
                    let ctx = vm.create_stream(Arc::clone(&self.shared), i)?;
                    vm.finish_stream(ctx)
                }),
            };
        }
    }
}
