//! The per-request filter: metadata exchange on the way in and out, trace
//! propagation on the request, and the metrics once the request is done
//! (`on_log`, when duration, sizes, status and flags are known).

use std::rc::Rc;

use wasp_filter_sdk::prelude::*;

use crate::Shared;
use crate::config::Reporter;
use crate::labels::{RequestFacts, response_flags, service};
use crate::peer::{METADATA_HEADER, METADATA_ID_HEADER, UNKNOWN, Workload};
use crate::trace::{Span, extract};

/// The property names under which the trace ids are published for later
/// filters of the same request (one dotted segment each, as Envoy keys
/// filter state).
pub mod properties {
    /// 32 lowercase hex digits.
    pub const TRACE_ID: &str = "telemetry.trace_id";
    /// This proxy's span id, 16 lowercase hex digits.
    pub const SPAN_ID: &str = "telemetry.span_id";
    /// The caller's span id (absent when the trace started here).
    pub const PARENT_SPAN_ID: &str = "telemetry.parent_span_id";
    /// `1` when sampled, else `0`.
    pub const SAMPLED: &str = "telemetry.sampled";
}

/// One request's telemetry.
pub struct Telemetry {
    shared: Rc<Shared>,
    rng: fastrand::Rng,
    peer: Option<Workload>,
    authority: Option<String>,
    grpc: bool,
}

impl Telemetry {
    pub(crate) fn new(shared: Rc<Shared>, seed: u64) -> Telemetry {
        Telemetry {
            shared,
            rng: fastrand::Rng::with_seed(seed),
            peer: None,
            authority: None,
            grpc: false,
        }
    }

    fn propagate(&mut self, ctx: &mut HttpCtx<Self>) {
        let tracing = &self.shared.config.tracing;
        let headers = ctx.request_headers();
        let incoming = extract(|name| headers.get(name));
        let sampling = tracing.sampling;
        let roll = self.rng.f64() * 100.0;
        let span = Span::next(incoming, &mut self.rng, || roll < sampling);
        let sampled = if span.sampled { "1" } else { "0" };
        if tracing.w3c {
            headers.set("traceparent", &span.traceparent());
        }
        if tracing.b3_multi {
            headers.set("x-b3-traceid", &span.b3_trace_id());
            headers.set("x-b3-spanid", &span.span_id_hex());
            match span.parent_span_id {
                Some(parent) => headers.set("x-b3-parentspanid", &format!("{parent:016x}")),
                None => headers.remove("x-b3-parentspanid"),
            }
            headers.set("x-b3-sampled", sampled);
        }
        if tracing.b3_single {
            headers.set("b3", &span.b3_single());
        }
        let publish = |name: &str, value: &str| {
            if let Err(e) = ctx.set_property([name], value.as_bytes()) {
                wasp_filter_sdk::warn!("setting property {name}: {e}");
            }
        };
        publish(properties::TRACE_ID, &span.trace_id_hex());
        publish(properties::SPAN_ID, &span.span_id_hex());
        if let Some(parent) = span.parent_span_id {
            publish(properties::PARENT_SPAN_ID, &format!("{parent:016x}"));
        }
        publish(properties::SAMPLED, sampled);
    }
}

/// Reads and removes the peer's exchange headers.
fn take_peer(headers: &wasp_filter_sdk::Headers) -> Option<Workload> {
    let peer = headers
        .get(METADATA_HEADER)
        .and_then(|v| Workload::decode(&v));
    headers.remove(METADATA_HEADER);
    headers.remove(METADATA_ID_HEADER);
    peer
}

impl HttpFilter for Telemetry {
    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
        let headers = ctx.request_headers();
        self.authority = headers.get(":authority").or_else(|| headers.get("host"));
        self.grpc = headers
            .get("content-type")
            .is_some_and(|t| t.starts_with("application/grpc"));
        if self.shared.config.metadata_exchange.0 {
            match self.shared.config.reporter {
                Reporter::Destination => self.peer = take_peer(&headers),
                Reporter::Source => {
                    headers.set(METADATA_HEADER, &self.shared.exchange);
                    headers.set(METADATA_ID_HEADER, &self.shared.node_id);
                }
            }
        }
        if self.shared.config.tracing.enabled {
            self.propagate(ctx);
        }
        Action::Continue
    }

    fn on_response_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
        if self.shared.config.metadata_exchange.0 {
            let headers = ctx.response_headers();
            match self.shared.config.reporter {
                Reporter::Destination => {
                    headers.set(METADATA_HEADER, &self.shared.exchange);
                    headers.set(METADATA_ID_HEADER, &self.shared.node_id);
                }
                Reporter::Source => self.peer = take_peer(&headers),
            }
        }
        Action::Continue
    }

    fn on_log(&mut self, ctx: &mut HttpCtx<Self>) {
        let shared = &self.shared;
        let local = shared.local.clone();
        let peer = self.peer.take().unwrap_or_default();
        let reporter = shared.config.reporter;
        let mtls = ctx
            .property(["connection", "mtls"])
            .is_some_and(|v| v == [1]);
        let known = |value: Option<String>| {
            value
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| UNKNOWN.into())
        };
        let (source, destination, source_principal, destination_principal, security_policy) =
            match reporter {
                Reporter::Destination => (
                    peer,
                    local,
                    known(ctx.source_principal()),
                    known(ctx.property_string(["connection", "uri_san_local_certificate"])),
                    if mtls { "mutual_tls" } else { "none" },
                ),
                Reporter::Source => (local, peer, UNKNOWN.into(), UNKNOWN.into(), "unknown"),
            };
        let service = service(self.authority.as_deref(), &destination.namespace);
        let response_code = ctx.property_u64(["response", "code"]).unwrap_or(0);
        let grpc_status = if self.grpc {
            ctx.property_u64(["response", "grpc_status"])
                .map_or_else(String::new, |s| s.to_string())
        } else {
            String::new()
        };
        let facts = RequestFacts {
            reporter,
            source,
            destination,
            source_principal,
            destination_principal,
            service,
            protocol: if self.grpc { "grpc" } else { "http" },
            response_code,
            grpc_status,
            response_flags: response_flags(ctx.property_u64(["response", "flags"]).unwrap_or(0)),
            security_policy,
        };
        let duration_ms = ctx.property_u64(["request", "duration"]).unwrap_or(0) / 1_000_000;
        facts.record(
            duration_ms,
            ctx.property_u64(["request", "total_size"]).unwrap_or(0),
            ctx.property_u64(["response", "total_size"]).unwrap_or(0),
        );
    }
}
