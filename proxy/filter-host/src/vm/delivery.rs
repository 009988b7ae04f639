//! Delivering callout outcomes to the VM: HTTP call responses, unary gRPC
//! answers, and the events of gRPC streams.
//!
//! Every outcome goes to the plugin's root context, as in Envoy, whose
//! `proxy_on_http_call_response`, `proxy_on_grpc_receive*` and
//! `proxy_on_grpc_close` carry the id of the root context the callout was
//! registered on, whichever context made the call. The SDKs (C++, Go,
//! AssemblyScript) look that id up as a root context; the Rust SDKs map the
//! token to the context that made the call themselves. To act on an HTTP
//! stream (continue it, reply, change its headers), a filter switches to it
//! with `proxy_set_effective_context` during the callback. The response
//! itself (buffer 4 or 5, maps 4 to 7, `proxy_get_status`) is readable from
//! whichever context is effective, as Envoy reads it from the root context.

use crate::callout::{CalloutError, CalloutResponse, StreamEvent};
use crate::limits::{self, callout_size};
use crate::state::{CalloutKind, CalloutView};
use crate::stream::header_get;

use super::{Vm, VmFailure, invoke};

impl Vm {
    /// Makes the root context effective and returns its id: the context a
    /// callout's outcome is delivered to.
    fn enter_root(&mut self) -> u32 {
        let state = self.store.data_mut();
        state.effective_context = state.root_context;
        state.root_context
    }

    /// Delivers a callout's outcome to the root context.
    pub fn deliver(
        &mut self,
        token: u32,
        result: Result<CalloutResponse, CalloutError>,
    ) -> Result<(), VmFailure> {
        let Some(kind) = self.store.data_mut().pending.remove(&token) else {
            return Ok(());
        };
        // The proxy stops reading past the limit; a response that still
        // passes it (another Callouts implementation) fails here.
        let core = std::sync::Arc::clone(&self.store.data().core);
        let max = core.spec.limits.max_callout_response_bytes;
        let result = match result {
            Ok(r) if callout_size(&r.headers, r.body.len(), &r.trailers) > max => {
                Err(CalloutError::ResponseTooLarge(max))
            }
            other => other,
        };
        if let Err(CalloutError::ResponseTooLarge(_)) = &result {
            let call = match kind {
                CalloutKind::Http => "proxy_http_call (response)",
                _ => "proxy_grpc_call (response)",
            };
            limits::response_too_large(&core, call);
        }
        let root = self.enter_root();
        let outcome = match kind {
            CalloutKind::Http => self.deliver_http(root, token, result),
            CalloutKind::GrpcCall => self.deliver_grpc_call(root, token, result),
            CalloutKind::GrpcStream => Ok(()),
        };
        self.store.data_mut().callout = None;
        outcome
    }

    fn deliver_http(
        &mut self,
        ctx: u32,
        token: u32,
        result: Result<CalloutResponse, CalloutError>,
    ) -> Result<(), VmFailure> {
        let view = match result {
            Ok(response) => CalloutView {
                headers: response.headers,
                body: response.body.to_vec(),
                trailers: response.trailers,
                status: None,
            },
            Err(err) => {
                tracing::debug!(plugin = %self.store.data().core.spec.name, error = %err, "http callout failed");
                CalloutView::default()
            }
        };
        let counts = (
            view.headers.len() as u32,
            view.body.len() as u32,
            view.trailers.len() as u32,
        );
        self.store.data_mut().callout = Some(view);
        match self.ex.http_call_response.as_ref() {
            Some(f) => invoke(
                &mut self.store,
                self.deadline_ticks,
                f,
                (ctx, token, counts.0, counts.1, counts.2),
            ),
            None => Ok(()),
        }
    }

    /// A unary call: its one message on success, otherwise `proxy_on_grpc_close`.
    fn deliver_grpc_call(
        &mut self,
        ctx: u32,
        token: u32,
        result: Result<CalloutResponse, CalloutError>,
    ) -> Result<(), VmFailure> {
        let (status, message, messages) = grpc_outcome(result);
        if status == wasp_abi::GRPC_STATUS_OK
            && let Some(body) = messages.into_iter().next()
        {
            let len = body.len() as u32;
            self.store.data_mut().callout = Some(CalloutView {
                body,
                status: Some((status, message)),
                ..CalloutView::default()
            });
            return match self.ex.grpc_receive.as_ref() {
                Some(f) => invoke(&mut self.store, self.deadline_ticks, f, (ctx, token, len)),
                None => Ok(()),
            };
        }
        let status = if status == wasp_abi::GRPC_STATUS_OK {
            wasp_abi::GRPC_STATUS_UNAVAILABLE
        } else {
            status
        };
        self.store.data_mut().callout = Some(CalloutView {
            status: Some((status, message)),
            ..CalloutView::default()
        });
        match self.ex.grpc_close.as_ref() {
            Some(f) => invoke(
                &mut self.store,
                self.deadline_ticks,
                f,
                (ctx, token, status),
            ),
            None => Ok(()),
        }
    }

    /// Delivers one event of a gRPC stream (`None`: the stream ended) to the
    /// root context.
    pub fn deliver_stream_event(
        &mut self,
        token: u32,
        event: Option<StreamEvent>,
    ) -> Result<(), VmFailure> {
        if !self.store.data().pending.contains_key(&token) {
            return Ok(());
        }
        let root = self.enter_root();
        let outcome = self.stream_event(root, token, event);
        self.store.data_mut().callout = None;
        outcome
    }

    fn stream_event(
        &mut self,
        ctx: u32,
        token: u32,
        event: Option<StreamEvent>,
    ) -> Result<(), VmFailure> {
        let set_status = |vm: &mut Self, status: Option<(u32, String)>| {
            if let (Some(status), Some(stream)) =
                (status, vm.store.data_mut().grpc_streams.get_mut(&token))
            {
                stream.status = Some(status);
            }
        };
        match event {
            Some(StreamEvent::Headers(headers)) => {
                set_status(self, grpc_status(&headers));
                let count = headers.len() as u32;
                self.store.data_mut().callout = Some(CalloutView {
                    headers,
                    ..CalloutView::default()
                });
                match self.ex.grpc_initial_metadata.as_ref() {
                    Some(f) => invoke(&mut self.store, self.deadline_ticks, f, (ctx, token, count)),
                    None => Ok(()),
                }
            }
            Some(StreamEvent::Data(bytes)) => {
                let core = std::sync::Arc::clone(&self.store.data().core);
                let max = core.spec.limits.max_callout_response_bytes;
                let messages = {
                    let Some(stream) = self.store.data_mut().grpc_streams.get_mut(&token) else {
                        return Ok(());
                    };
                    stream.inbound.extend_from_slice(&bytes);
                    let messages = take_messages(&mut stream.inbound);
                    if stream.inbound.len() as u64 > max {
                        // A message larger than the limit: end the stream.
                        stream.inbound = Vec::new();
                        stream.outgoing = None;
                        stream.task.abort();
                        stream.status = Some((
                            wasp_abi::GRPC_STATUS_RESOURCE_EXHAUSTED,
                            CalloutError::ResponseTooLarge(max).to_string(),
                        ));
                        limits::response_too_large(&core, "proxy_grpc_stream (response)");
                        return self.stream_event(ctx, token, None);
                    }
                    messages
                };
                for body in messages {
                    let len = body.len() as u32;
                    self.store.data_mut().callout = Some(CalloutView {
                        body,
                        ..CalloutView::default()
                    });
                    if let Some(f) = self.ex.grpc_receive.as_ref() {
                        invoke(&mut self.store, self.deadline_ticks, f, (ctx, token, len))?;
                    }
                }
                Ok(())
            }
            Some(StreamEvent::Trailers(trailers)) => {
                set_status(self, grpc_status(&trailers));
                let count = trailers.len() as u32;
                self.store.data_mut().callout = Some(CalloutView {
                    trailers,
                    ..CalloutView::default()
                });
                match self.ex.grpc_trailing_metadata.as_ref() {
                    Some(f) => invoke(&mut self.store, self.deadline_ticks, f, (ctx, token, count)),
                    None => Ok(()),
                }
            }
            Some(StreamEvent::Failed(err)) => {
                let code = match err {
                    CalloutError::Timeout => wasp_abi::GRPC_STATUS_DEADLINE_EXCEEDED,
                    CalloutError::ResponseTooLarge(_) => {
                        let core = std::sync::Arc::clone(&self.store.data().core);
                        limits::response_too_large(&core, "proxy_grpc_stream (response)");
                        wasp_abi::GRPC_STATUS_RESOURCE_EXHAUSTED
                    }
                    _ => wasp_abi::GRPC_STATUS_UNAVAILABLE,
                };
                set_status(self, Some((code, err.to_string())));
                Ok(())
            }
            None => {
                let state = self.store.data_mut();
                state.pending.remove(&token);
                let status = state
                    .grpc_streams
                    .remove(&token)
                    .and_then(|s| s.status)
                    .unwrap_or((
                        wasp_abi::GRPC_STATUS_UNAVAILABLE,
                        "stream ended without a status".into(),
                    ));
                let code = status.0;
                state.callout = Some(CalloutView {
                    status: Some(status),
                    ..CalloutView::default()
                });
                match self.ex.grpc_close.as_ref() {
                    Some(f) => invoke(&mut self.store, self.deadline_ticks, f, (ctx, token, code)),
                    None => Ok(()),
                }
            }
        }
    }
}

/// gRPC status, message and response messages of a callout's outcome.
fn grpc_outcome(result: Result<CalloutResponse, CalloutError>) -> (u32, String, Vec<Vec<u8>>) {
    match result {
        Ok(response) => {
            let find = |name: &str| {
                header_get(&response.trailers, name).or_else(|| header_get(&response.headers, name))
            };
            let status = find("grpc-status")
                .and_then(|s| std::str::from_utf8(s).ok()?.parse::<u32>().ok())
                .unwrap_or(wasp_abi::GRPC_STATUS_UNAVAILABLE);
            let message = find("grpc-message")
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .unwrap_or_default();
            let messages = crate::abi::parse_grpc_messages(&response.body).unwrap_or_default();
            (status, message, messages)
        }
        Err(CalloutError::Timeout) => (
            wasp_abi::GRPC_STATUS_DEADLINE_EXCEEDED,
            "timeout".to_owned(),
            Vec::new(),
        ),
        Err(err @ CalloutError::ResponseTooLarge(_)) => (
            wasp_abi::GRPC_STATUS_RESOURCE_EXHAUSTED,
            err.to_string(),
            Vec::new(),
        ),
        Err(err) => (
            wasp_abi::GRPC_STATUS_UNAVAILABLE,
            err.to_string(),
            Vec::new(),
        ),
    }
}

/// The gRPC status in headers or trailers, if any.
fn grpc_status(headers: &crate::stream::HeaderList) -> Option<(u32, String)> {
    let code = std::str::from_utf8(header_get(headers, "grpc-status")?)
        .ok()?
        .parse()
        .ok()?;
    let message = header_get(headers, "grpc-message")
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    Some((code, message))
}

/// Takes every whole length-prefixed message off the front of `inbound`.
fn take_messages(inbound: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut at = 0;
    while inbound.len() >= at + 5 {
        let len = u32::from_be_bytes([
            inbound[at + 1],
            inbound[at + 2],
            inbound[at + 3],
            inbound[at + 4],
        ]) as usize;
        let Some(message) = inbound.get(at + 5..at + 5 + len) else {
            break;
        };
        messages.push(message.to_vec());
        at += 5 + len;
    }
    inbound.drain(..at);
    messages
}
