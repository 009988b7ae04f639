//! Properties (`proxy_get_property` / `proxy_set_property`): request,
//! connection, peer-identity and plugin attributes addressed by path, with
//! typed helpers for the common ones. Available on every context through the
//! [`Properties`] trait. A path read or written on every request can be
//! encoded once as a [`PropertyPath`] (a constant) and passed to the `*_at`
//! methods, which send it as it is.

use crate::abi::hostcalls;
use crate::abi::text::lossy;
use std::borrow::Cow;
use std::time::{Duration, SystemTime};

/// Reads and writes properties. Implemented by [`crate::HttpCtx`] and
/// [`crate::RootCtx`]; bring it into scope with `use wasp_filter_sdk::prelude::*`.
pub trait Properties {
    /// A property's raw value, e.g. `ctx.property(["request", "path"])`;
    /// `None` when the host does not know it (failures are logged).
    fn property<I, S>(&self, path: I) -> Option<Vec<u8>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        get_property(path)
    }

    /// A property as text.
    fn property_string<I, S>(&self, path: I) -> Option<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.property(path).map(lossy)
    }

    /// An integer property (8 bytes little-endian, as hosts encode them).
    fn property_u64<I, S>(&self, path: I) -> Option<u64>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let bytes: [u8; 8] = self.property(path)?.try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    }

    /// Sets a property (for example filter state other filters read).
    fn set_property<I, S>(&self, path: I, value: &[u8]) -> crate::Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        hostcalls::set_property(&encode(path), value)
    }

    /// A property's raw value at a path encoded once (see [`PropertyPath`]).
    fn property_at(&self, path: &PropertyPath<'_>) -> Option<Vec<u8>> {
        get_property_encoded(path.encoded())
    }

    /// An integer property (8 bytes little-endian) at a path encoded once.
    fn property_u64_at(&self, path: &PropertyPath<'_>) -> Option<u64> {
        let bytes: [u8; 8] = self.property_at(path)?.try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    }

    /// A property as text at a path encoded once.
    fn property_string_at(&self, path: &PropertyPath<'_>) -> Option<String> {
        self.property_at(path).map(lossy)
    }

    /// Sets a property at a path encoded once.
    fn set_property_at(&self, path: &PropertyPath<'_>, value: &[u8]) -> crate::Result<()> {
        hostcalls::set_property(path.encoded(), value)
    }

    /// The request path (`request.path`).
    fn request_path(&self) -> Option<String> {
        self.property_string(["request", "path"])
    }

    /// The request method (`request.method`).
    fn request_method(&self) -> Option<String> {
        self.property_string(["request", "method"])
    }

    /// The downstream peer's address (`source.address`).
    fn source_address(&self) -> Option<String> {
        self.property_string(["source", "address"])
    }

    /// The downstream peer's identity, e.g. a SPIFFE ID (`source.principal`).
    fn source_principal(&self) -> Option<String> {
        self.property_string(["source", "principal"])
    }

    /// The local address the request arrived on (`destination.address`).
    fn destination_address(&self) -> Option<String> {
        self.property_string(["destination", "address"])
    }

    /// The name of this plugin (`plugin_name`).
    fn plugin_name(&self) -> Option<String> {
        self.property_string(["plugin_name"])
    }

    /// The host's wall clock (`proxy_get_current_time_nanoseconds`).
    fn now(&self) -> SystemTime {
        now()
    }
}

/// A property path in the ABI's form (segments joined by NUL bytes), made
/// once: `PropertyPath::new(&["response", "code"])` at configuration time,
/// `PropertyPath::from_encoded(b"response\0code")` as a constant, or
/// `PropertyPath::segment(name)` for a one-segment (dotted filter-state)
/// name borrowed as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PropertyPath<'a>(Cow<'a, [u8]>);

impl<'a> PropertyPath<'a> {
    /// A path already in the ABI's form: its segments joined by NUL bytes.
    pub const fn from_encoded(encoded: &'a [u8]) -> PropertyPath<'a> {
        PropertyPath(Cow::Borrowed(encoded))
    }

    /// The path of one segment (such as a dotted filter-state name,
    /// `request.auth.principal`), borrowed: its encoding is its bytes.
    pub fn segment(name: &'a str) -> PropertyPath<'a> {
        PropertyPath(Cow::Borrowed(name.as_bytes()))
    }

    /// The bytes sent to the host.
    pub fn encoded(&self) -> &[u8] {
        &self.0
    }
}

impl PropertyPath<'static> {
    /// The path of `segments`.
    pub fn new<S: AsRef<str>>(segments: &[S]) -> PropertyPath<'static> {
        PropertyPath(Cow::Owned(wasp_abi::encode_property_path(segments)))
    }
}

/// Reads a property without a context.
pub fn get_property<I, S>(path: I) -> Option<Vec<u8>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    get_property_encoded(&encode(path))
}

fn get_property_encoded(path: &[u8]) -> Option<Vec<u8>> {
    hostcalls::get_property(path).unwrap_or_else(|e| {
        crate::log::report(&e);
        None
    })
}

/// The host's wall clock; the Unix epoch if the host cannot tell.
pub fn now() -> SystemTime {
    let nanos = hostcalls::current_time_nanos().unwrap_or_else(|e| {
        crate::log::report(&e);
        0
    });
    SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// The ABI form of `path`, built in one buffer (as
/// [`wasp_abi::encode_property_path`] builds it).
fn encode<I, S>(path: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = Vec::with_capacity(64);
    for (i, segment) in path.into_iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(segment.as_ref().as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_as_the_abi_does() {
        let segments = ["connection", "uri_san_local_certificate"];
        let expected = wasp_abi::encode_property_path(&segments);
        assert_eq!(encode(segments), expected);
        assert_eq!(PropertyPath::new(&segments).encoded(), expected);
        assert_eq!(
            PropertyPath::from_encoded(b"connection\0uri_san_local_certificate").encoded(),
            expected
        );
        assert_eq!(encode(["plugin_name"]), b"plugin_name");
        assert_eq!(
            PropertyPath::segment("request.auth.principal").encoded(),
            PropertyPath::new(&["request.auth.principal"]).encoded()
        );
        assert!(encode(Vec::<&str>::new()).is_empty());
    }
}
