//! The proxy-wasm ABI v0.2.1 as plain data: the integer codes that cross the
//! host/guest boundary and the wire format of header maps.
//!
//! Shared by the wasp host (`wasp-filter-host`) and the filter SDK
//! (`wasp-filter-sdk`) so both sides agree on every number. No dependencies;
//! nothing here touches guest memory.
#![forbid(unsafe_code)]

mod map;

pub use map::{
    MapDecodeError, MapEncoder, MapPairs, decode_map, decode_map_ranges, encode_map,
    encoded_map_len,
};

/// Declares a `#[repr(u32)]` enum with a fallible conversion from the raw
/// integer a guest or host passed.
macro_rules! abi_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value),+
        }

        impl TryFrom<u32> for $name {
            type Error = u32;
            fn try_from(raw: u32) -> Result<Self, u32> {
                match raw {
                    $($value => Ok(Self::$variant),)+
                    other => Err(other),
                }
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> u32 {
                value as u32
            }
        }
    };
}

abi_enum! {
    /// Result status of a host call (`proxy_result_t` / `WasmResult`).
    Status {
        /// The call succeeded.
        Ok = 0,
        /// The requested value (header, property, shared data, queue) does not exist.
        NotFound = 1,
        /// An argument was invalid (unknown enum value, bad size, wrong phase).
        BadArgument = 2,
        /// A value could not be serialized.
        SerializationFailure = 3,
        /// A value could not be parsed.
        ParseFailure = 4,
        /// An expression could not be evaluated.
        BadExpression = 5,
        /// A pointer or length pointed outside the guest's memory.
        InvalidMemoryAccess = 6,
        /// The queue or buffer was empty.
        Empty = 7,
        /// A compare-and-swap saw a different version (shared data).
        CasMismatch = 8,
        /// The result did not match expectations.
        ResultMismatch = 9,
        /// The host failed internally.
        InternalFailure = 10,
        /// The connection or stream was closed.
        BrokenConnection = 11,
        /// The host does not implement the call.
        Unimplemented = 12,
    }
}

abi_enum! {
    /// Log levels of `proxy_log` and `proxy_get_log_level`.
    LogLevel {
        /// Trace.
        Trace = 0,
        /// Debug.
        Debug = 1,
        /// Info.
        Info = 2,
        /// Warn.
        Warn = 3,
        /// Error.
        Error = 4,
        /// Critical.
        Critical = 5,
    }
}

abi_enum! {
    /// What a filter callback tells the host to do with the stream.
    Action {
        /// Go on to the next filter.
        Continue = 0,
        /// Stop iterating until the filter resumes the stream (`proxy_continue_stream`).
        Pause = 1,
    }
}

abi_enum! {
    /// Buffers a guest can read or write with `proxy_get_buffer_bytes` / `proxy_set_buffer_bytes`.
    BufferType {
        /// The HTTP request body.
        HttpRequestBody = 0,
        /// The HTTP response body.
        HttpResponseBody = 1,
        /// Downstream data of a TCP stream.
        DownstreamData = 2,
        /// Upstream data of a TCP stream.
        UpstreamData = 3,
        /// The body of an HTTP callout's response.
        HttpCallResponseBody = 4,
        /// A gRPC message received on a callout.
        GrpcReceiveBuffer = 5,
        /// The VM configuration (`proxy_on_vm_start`).
        VmConfiguration = 6,
        /// The plugin configuration (`proxy_on_configure`).
        PluginConfiguration = 7,
        /// Call data (foreign functions).
        CallData = 8,
    }
}

abi_enum! {
    /// Header maps a guest can read or write.
    MapType {
        /// HTTP request headers.
        HttpRequestHeaders = 0,
        /// HTTP request trailers.
        HttpRequestTrailers = 1,
        /// HTTP response headers.
        HttpResponseHeaders = 2,
        /// HTTP response trailers.
        HttpResponseTrailers = 3,
        /// Initial metadata of a gRPC callout.
        GrpcReceiveInitialMetadata = 4,
        /// Trailing metadata of a gRPC callout.
        GrpcReceiveTrailingMetadata = 5,
        /// Headers of an HTTP callout's response.
        HttpCallResponseHeaders = 6,
        /// Trailers of an HTTP callout's response.
        HttpCallResponseTrailers = 7,
    }
}

abi_enum! {
    /// Which side closed a TCP stream (`proxy_on_downstream_connection_close`).
    PeerType {
        /// Unknown.
        Unknown = 0,
        /// The proxy closed it.
        Local = 1,
        /// The peer closed it.
        Remote = 2,
    }
}

abi_enum! {
    /// Metric kinds of `proxy_define_metric`.
    MetricType {
        /// Monotonic counter.
        Counter = 0,
        /// Gauge.
        Gauge = 1,
        /// Histogram.
        Histogram = 2,
    }
}

abi_enum! {
    /// Streams `proxy_continue_stream` / `proxy_close_stream` act on.
    StreamType {
        /// The HTTP request.
        HttpRequest = 0,
        /// The HTTP response.
        HttpResponse = 1,
        /// Downstream TCP data.
        Downstream = 2,
        /// Upstream TCP data.
        Upstream = 3,
    }
}

/// gRPC status code `OK`, as carried in `proxy_on_grpc_close`.
pub const GRPC_STATUS_OK: u32 = 0;
/// gRPC status code `UNAVAILABLE`.
pub const GRPC_STATUS_UNAVAILABLE: u32 = 14;
/// gRPC status code `DEADLINE_EXCEEDED`.
pub const GRPC_STATUS_DEADLINE_EXCEEDED: u32 = 4;
/// gRPC status code `RESOURCE_EXHAUSTED`.
pub const GRPC_STATUS_RESOURCE_EXHAUSTED: u32 = 8;
/// gRPC status code `CANCELLED`.
pub const GRPC_STATUS_CANCELLED: u32 = 1;

/// The ABI version marker a module exports (`proxy_abi_version_0_2_1`).
pub const ABI_VERSION_EXPORT: &str = "proxy_abi_version_0_2_1";
/// Older ABI version marker still exported by some SDKs (`proxy_abi_version_0_2_0`).
pub const ABI_VERSION_EXPORT_0_2_0: &str = "proxy_abi_version_0_2_0";

/// A wasp extension: a module may export this function (`() -> u32`) to
/// declare which optional stream callbacks it needs, as a set of
/// `HTTP_CALLBACK_*` bits. The host then never calls the others, and a chain
/// whose filters need no body callbacks streams bodies past them untouched.
/// A module without it gets every callback it exports (other hosts ignore
/// the export).
///
/// The first three bits say what a module *needs*; the later ones, added
/// since, say what it does *not* need (`HTTP_CALLBACK_NO_*`), so a module
/// built before them, whose value lacks them, keeps those callbacks.
pub const HTTP_CALLBACKS_EXPORT: &str = "wasp_http_callbacks";
/// `proxy_on_request_body` and `proxy_on_request_trailers`.
pub const HTTP_CALLBACK_REQUEST_BODY: u32 = 1;
/// `proxy_on_response_body` and `proxy_on_response_trailers`.
pub const HTTP_CALLBACK_RESPONSE_BODY: u32 = 2;
/// `proxy_on_log`.
pub const HTTP_CALLBACK_LOG: u32 = 4;
/// Opt-out: the module does not need `proxy_on_request_headers`.
pub const HTTP_CALLBACK_NO_REQUEST_HEADERS: u32 = 8;
/// Opt-out: the module does not need `proxy_on_response_headers`.
pub const HTTP_CALLBACK_NO_RESPONSE_HEADERS: u32 = 16;
/// Opt-out: the module does not need `proxy_on_done` (its answer would
/// always be true: the context is done when the stream ends).
pub const HTTP_CALLBACK_NO_DONE: u32 = 32;
/// Every optional stream callback: the value that changes nothing.
pub const HTTP_CALLBACK_ALL: u32 =
    HTTP_CALLBACK_REQUEST_BODY | HTTP_CALLBACK_RESPONSE_BODY | HTTP_CALLBACK_LOG;

/// Property paths are sent as their segments separated by NUL bytes, with
/// no NUL after the last one (as the proxy-wasm Rust SDK sends them). Envoy
/// keeps a property a filter sets under its path as given, so a trailing
/// NUL would make `set_property(["a.b"], …)` unreadable as `a.b` by later
/// filters.
pub fn encode_property_path<S: AsRef<str>>(segments: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(segment.as_ref().as_bytes());
    }
    out
}

/// Splits a NUL-separated property path into its segments (a trailing NUL is optional).
pub fn decode_property_path(bytes: &[u8]) -> Vec<&[u8]> {
    let trimmed = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split(|b| *b == 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_their_codes() {
        for raw in 0..=12 {
            assert_eq!(u32::from(Status::try_from(raw).unwrap()), raw);
        }
        assert_eq!(Status::try_from(13), Err(13));
        assert_eq!(
            BufferType::try_from(4),
            Ok(BufferType::HttpCallResponseBody)
        );
        assert_eq!(MapType::try_from(8), Err(8));
        assert_eq!(Action::try_from(1), Ok(Action::Pause));
    }

    #[test]
    fn property_paths_split_on_nul() {
        let encoded = encode_property_path(&["request", "path"]);
        assert_eq!(encoded, b"request\0path");
        assert_eq!(
            encode_property_path(&["request.auth.principal"]),
            b"request.auth.principal"
        );
        assert_eq!(
            decode_property_path(&encoded),
            vec![&b"request"[..], &b"path"[..]]
        );
        assert_eq!(
            decode_property_path(b"plugin_name"),
            vec![&b"plugin_name"[..]]
        );
        assert_eq!(
            decode_property_path(b"request\0path\0"),
            vec![&b"request"[..], &b"path"[..]]
        );
        assert!(decode_property_path(b"").is_empty());
    }
}
