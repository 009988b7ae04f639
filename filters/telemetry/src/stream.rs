//! The per-request filter: metadata exchange on the way in and out, trace
//! propagation on the request, and the metrics once the request is done
//! (`on_log`, when duration, sizes, status and flags are known).

use std::rc::Rc;

use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::{HeaderSnapshot, Headers, PropertyPath};

use crate::Shared;
use crate::config::{B3Single, Reporter};
use crate::labels::{RequestFacts, response_flags, service};
use crate::peer::{METADATA_HEADER, METADATA_ID_HEADER, UNKNOWN, Workload};
use crate::series::SeriesKey;
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

/// The paths this filter reads and writes on every request, encoded once.
mod paths {
    use wasp_filter_sdk::PropertyPath;

    pub(super) const TRACE_ID: PropertyPath = PropertyPath::from_encoded(b"telemetry.trace_id");
    pub(super) const SPAN_ID: PropertyPath = PropertyPath::from_encoded(b"telemetry.span_id");
    pub(super) const PARENT_SPAN_ID: PropertyPath =
        PropertyPath::from_encoded(b"telemetry.parent_span_id");
    pub(super) const SAMPLED: PropertyPath = PropertyPath::from_encoded(b"telemetry.sampled");
    pub(super) const MTLS: PropertyPath = PropertyPath::from_encoded(b"connection\0mtls");
    pub(super) const SOURCE_PRINCIPAL: PropertyPath =
        PropertyPath::from_encoded(b"source\0principal");
    pub(super) const LOCAL_URI_SAN: PropertyPath =
        PropertyPath::from_encoded(b"connection\0uri_san_local_certificate");
    pub(super) const RESPONSE_CODE: PropertyPath = PropertyPath::from_encoded(b"response\0code");
    pub(super) const GRPC_STATUS: PropertyPath =
        PropertyPath::from_encoded(b"response\0grpc_status");
    pub(super) const RESPONSE_FLAGS: PropertyPath = PropertyPath::from_encoded(b"response\0flags");
    pub(super) const DURATION: PropertyPath = PropertyPath::from_encoded(b"request\0duration");
    pub(super) const REQUEST_SIZE: PropertyPath =
        PropertyPath::from_encoded(b"request\0total_size");
    pub(super) const RESPONSE_SIZE: PropertyPath =
        PropertyPath::from_encoded(b"response\0total_size");
}

/// A one-segment path's name, for messages.
fn path_name(path: &PropertyPath) -> String {
    String::from_utf8_lossy(path.encoded()).replace('\0', ".")
}

/// One request's telemetry.
pub struct Telemetry {
    shared: Rc<Shared>,
    rng: fastrand::Rng,
    peer: Option<Rc<Workload>>,
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

    /// Continues or starts the trace; `present` is the request headers as
    /// read at the start of the callback.
    fn propagate(&mut self, ctx: &mut HttpCtx<Self>, present: &HeaderSnapshot) {
        let tracing = &self.shared.config.tracing;
        let headers = ctx.request_headers();
        let incoming = extract(|name| present.get(name));
        let sampling = tracing.sampling;
        let roll = self.rng.f64() * 100.0;
        let span = Span::next(incoming, &mut self.rng, || roll < sampling);
        let sampled = if span.sampled { "1" } else { "0" };
        let texts = span.texts();
        let (span_id, parent) = (texts.span_id, texts.parent_span_id);
        // A header the request did not have is added: the host then has
        // no pairs of the name to find and remove first.
        let put = |name: &str, value: &str| {
            if present.contains(name) {
                headers.set(name, value);
            } else {
                headers.add(name, value);
            }
        };
        if tracing.w3c {
            put("traceparent", &texts.traceparent());
        }
        if tracing.b3_multi {
            put("x-b3-traceid", &texts.b3_trace_id());
            put("x-b3-spanid", &span_id);
            match &parent {
                Some(parent) => put("x-b3-parentspanid", parent),
                None if present.contains("x-b3-parentspanid") => {
                    headers.remove("x-b3-parentspanid")
                }
                None => {}
            }
            put("x-b3-sampled", sampled);
        }
        let b3_single = match tracing.b3_single {
            B3Single::Always => true,
            B3Single::Never => false,
            B3Single::WhenReceived => present.contains("b3"),
        };
        if b3_single {
            put("b3", &texts.b3_single());
        }
        let publish = |path: &PropertyPath, value: &[u8]| {
            if let Err(e) = ctx.set_property_at(path, value) {
                wasp_filter_sdk::warn!("setting property {}: {e}", path_name(path));
            }
        };
        publish(&paths::TRACE_ID, texts.trace_id.as_bytes());
        publish(&paths::SPAN_ID, span_id.as_bytes());
        if let Some(parent) = &parent {
            publish(&paths::PARENT_SPAN_ID, parent.as_bytes());
        }
        publish(&paths::SAMPLED, sampled.as_bytes());
    }

    /// Reads the peer's exchange headers from `present` (a snapshot of
    /// `headers`) and removes them from `headers`.
    fn take_peer(&self, headers: &Headers, present: &HeaderSnapshot) -> Option<Rc<Workload>> {
        let value = present.get(METADATA_HEADER);
        let peer = value.and_then(|v| self.shared.peers.borrow_mut().decode(v));
        if value.is_some() {
            headers.remove(METADATA_HEADER);
        }
        if present.contains(METADATA_ID_HEADER) {
            headers.remove(METADATA_ID_HEADER);
        }
        peer
    }
}

/// The labels of a request with the facts `key`.
fn facts(shared: &Shared, key: &SeriesKey) -> RequestFacts {
    let local = shared.local.clone();
    let peer = key.peer.as_deref().cloned().unwrap_or_default();
    let reporter = shared.config.reporter;
    let known = |value: &Option<String>| {
        value
            .clone()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| UNKNOWN.into())
    };
    let (source, destination, source_principal, destination_principal, security_policy) =
        match reporter {
            Reporter::Destination => (
                peer,
                local,
                known(&key.source_principal),
                known(&key.destination_principal),
                if key.mtls { "mutual_tls" } else { "none" },
            ),
            Reporter::Source => (local, peer, UNKNOWN.into(), UNKNOWN.into(), "unknown"),
        };
    let service = service(key.authority.as_deref(), &destination.namespace);
    RequestFacts {
        reporter,
        source,
        destination,
        source_principal,
        destination_principal,
        service,
        protocol: if key.grpc { "grpc" } else { "http" },
        response_code: key.response_code,
        grpc_status: key.grpc_status.map_or_else(String::new, |s| s.to_string()),
        response_flags: response_flags(key.flags),
        security_policy,
    }
}

impl HttpFilter for Telemetry {
    /// The headers both ways and the log callback; bodies pass untouched.
    const CALLBACKS: Callbacks = Callbacks {
        log: true,
        ..Callbacks::HEADERS
    };

    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _: bool) -> Action {
        let headers = ctx.request_headers();
        let present = headers.snapshot();
        self.authority = present
            .get(":authority")
            .or_else(|| present.get("host"))
            .map(str::to_owned);
        self.grpc = present
            .get("content-type")
            .is_some_and(|t| t.starts_with("application/grpc"));
        if self.shared.config.metadata_exchange.0 {
            match self.shared.config.reporter {
                Reporter::Destination => self.peer = self.take_peer(&headers, &present),
                Reporter::Source => {
                    headers.set(METADATA_HEADER, &self.shared.exchange);
                    headers.set(METADATA_ID_HEADER, &self.shared.node_id);
                }
            }
        }
        if self.shared.config.tracing.enabled {
            self.propagate(ctx, &present);
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
                Reporter::Source => {
                    let present = headers.snapshot();
                    self.peer = self.take_peer(&headers, &present);
                }
            }
        }
        Action::Continue
    }

    fn on_log(&mut self, ctx: &mut HttpCtx<Self>) {
        let (source_principal, destination_principal, mtls) = match self.shared.config.reporter {
            Reporter::Destination => {
                // A peer principal comes from the peer's certificate: without
                // one (`connection.mtls` false) there is none to read.
                let mtls = ctx.property_at(&paths::MTLS).is_some_and(|v| v == [1]);
                (
                    if mtls {
                        ctx.property_string_at(&paths::SOURCE_PRINCIPAL)
                    } else {
                        None
                    },
                    ctx.property_string_at(&paths::LOCAL_URI_SAN),
                    mtls,
                )
            }
            // The source reporter labels neither principal nor mTLS.
            Reporter::Source => (None, None, false),
        };
        let key = SeriesKey {
            peer: self.peer.take(),
            source_principal,
            destination_principal,
            mtls,
            authority: self.authority.take(),
            grpc: self.grpc,
            response_code: ctx.property_u64_at(&paths::RESPONSE_CODE).unwrap_or(0),
            grpc_status: if self.grpc {
                ctx.property_u64_at(&paths::GRPC_STATUS)
            } else {
                None
            },
            flags: ctx.property_u64_at(&paths::RESPONSE_FLAGS).unwrap_or(0),
        };
        let duration_ms = ctx.property_u64_at(&paths::DURATION).unwrap_or(0) / 1_000_000;
        let request_bytes = ctx.property_u64_at(&paths::REQUEST_SIZE).unwrap_or(0);
        let response_bytes = ctx.property_u64_at(&paths::RESPONSE_SIZE).unwrap_or(0);
        let shared = &self.shared;
        shared.series.borrow_mut().record(
            key,
            |key| facts(shared, key),
            duration_ms,
            request_bytes,
            response_bytes,
        );
    }
}
