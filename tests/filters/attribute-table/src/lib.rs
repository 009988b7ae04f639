//! A test filter that reads every attribute of [`ATTRIBUTES`] in three
//! phases and reports what it read, so the same module can be compared in
//! wasp and in Envoy:
//!
//! - request headers and response headers: each attribute becomes a
//!   response header `x-req-<name>` / `x-resp-<name>` (`.` in the name
//!   written `-`);
//! - log: one line `<name>=<value>` per attribute, after a first line
//!   `seq=<x-seq request header>`, stored in shared data [`LOG_KEY`]. A
//!   later request with header `x-attributes: dump` is answered 200 with
//!   that text as its body.
//!
//! Values are the property's raw bytes in lower-case hex, `-` when the
//! property is missing (`proxy_get_property` answered `NotFound`).
//!
//! Build: `scripts/build-filters.sh` (writes `target/filters/attribute_table.wasm`).

use wasp_filter_sdk::prelude::*;
use wasp_filter_sdk::shared;

/// Shared-data key of the last request's log-phase table.
pub const LOG_KEY: &str = "attribute-table.log";

/// The attributes read, as dotted paths.
pub const ATTRIBUTES: &[&str] = &[
    "request.path",
    "request.url_path",
    "request.host",
    "request.scheme",
    "request.method",
    "request.id",
    "request.protocol",
    "request.query",
    "request.referer",
    "request.useragent",
    "request.time",
    "request.duration",
    "request.size",
    "request.total_size",
    "response.code",
    "response.code_details",
    "response.flags",
    "response.grpc_status",
    "response.size",
    "response.total_size",
    "source.address",
    "source.port",
    "destination.address",
    "destination.port",
    "connection.id",
    "connection.mtls",
    "connection.requested_server_name",
    "upstream.address",
    "upstream.port",
    "upstream.tls_version",
    "upstream.subject_peer_certificate",
    "upstream.local_address",
    "upstream.transport_failure_reason",
    "xds.cluster_name",
    "xds.route_name",
    "xds.node",
    "xds.listener_direction",
    "xds.upstream_host_metadata",
    "xds.node.id",
    "xds.node.cluster",
    "xds.node.metadata.ns",
    "node.id",
    "node.cluster",
    "node.metadata.ns",
    "plugin_name",
];

/// A property value as the report writes it: lower-case hex, `-` if missing.
pub fn render(value: Option<&[u8]>) -> String {
    match value {
        None => "-".to_owned(),
        Some(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// The header name an attribute is reported under, after `prefix`.
pub fn header_name(prefix: &str, attribute: &str) -> String {
    format!("{prefix}{}", attribute.replace('.', "-"))
}

/// Reads every attribute now: `(attribute, rendered value)`.
fn read_all(ctx: &HttpCtx<Table>) -> Vec<(&'static str, String)> {
    ATTRIBUTES
        .iter()
        .map(|attribute| {
            let value = ctx.property(attribute.split('.'));
            (*attribute, render(value.as_deref()))
        })
        .collect()
}

/// The root: no configuration.
#[derive(Default)]
pub struct TableRoot;

impl RootFilter for TableRoot {
    type Config = ();
    type Http = Table;

    fn create_http_filter(&mut self, _: &mut RootCtx<Self>) -> Option<Table> {
        Some(Table::default())
    }
}

/// Per request: what the request-headers phase read.
#[derive(Default)]
pub struct Table {
    request_phase: Vec<(&'static str, String)>,
    dump: bool,
}

impl HttpFilter for Table {
    fn on_request_headers(&mut self, ctx: &mut HttpCtx<Self>, _end_of_stream: bool) -> Action {
        if ctx.request_headers().get("x-attributes").as_deref() == Some("dump") {
            self.dump = true;
            let log = shared::get(LOG_KEY).ok().flatten().map(|v| v.value);
            return Action::respond(200, log.unwrap_or_default());
        }
        self.request_phase = read_all(ctx);
        Action::Continue
    }

    fn on_response_headers(&mut self, ctx: &mut HttpCtx<Self>, _end_of_stream: bool) -> Action {
        if self.dump {
            return Action::Continue;
        }
        let response_phase = read_all(ctx);
        let headers = ctx.response_headers();
        for (attribute, value) in &self.request_phase {
            headers.set(&header_name("x-req-", attribute), value);
        }
        for (attribute, value) in &response_phase {
            headers.set(&header_name("x-resp-", attribute), value);
        }
        Action::Continue
    }

    fn on_log(&mut self, ctx: &mut HttpCtx<Self>) {
        if self.dump {
            return;
        }
        let seq = ctx.request_headers().get("x-seq").unwrap_or_default();
        let mut text = format!("seq={seq}\n");
        for (attribute, value) in read_all(ctx) {
            text.push_str(&format!("{attribute}={value}\n"));
        }
        let _ = shared::set(LOG_KEY, text.as_bytes(), None);
    }
}

wasp_filter_sdk::export!(TableRoot);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_hex_or_a_dash() {
        assert_eq!(render(None), "-");
        assert_eq!(render(Some(b"")), "");
        assert_eq!(render(Some(&[0x00, 0xab, 0x7f])), "00ab7f");
    }

    #[test]
    fn header_names_replace_dots() {
        assert_eq!(
            header_name("x-req-", "xds.cluster_name"),
            "x-req-xds-cluster_name"
        );
    }

    #[test]
    fn every_attribute_is_listed_once() {
        let mut sorted = ATTRIBUTES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ATTRIBUTES.len());
    }
}
