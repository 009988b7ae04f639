//! Properties (`proxy_get_property` / `proxy_set_property`): request,
//! connection, peer-identity and plugin attributes addressed by path, with
//! typed helpers for the common ones. Available on every context through the
//! [`Properties`] trait.

use crate::abi::hostcalls;
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
        self.property(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
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

    /// A property's raw value by a [`PropertyPath`] encoded beforehand:
    /// what [`property`](Self::property) does without encoding the path on
    /// every call.
    fn property_at(&self, path: &PropertyPath<'_>) -> Option<Vec<u8>> {
        get_encoded(path.as_bytes())
    }

    /// Sets a property by a [`PropertyPath`] encoded beforehand.
    fn set_property_at(&self, path: &PropertyPath<'_>, value: &[u8]) -> crate::Result<()> {
        hostcalls::set_property(path.as_bytes(), value)
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

/// Reads a property without a context.
pub fn get_property<I, S>(path: I) -> Option<Vec<u8>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    get_encoded(&encode(path))
}

/// A property path in the ABI's form (segments separated by NUL bytes),
/// encoded once for filters that read or write the same property on every
/// request ([`Properties::property_at`], [`Properties::set_property_at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyPath<'a>(Cow<'a, [u8]>);

impl PropertyPath<'static> {
    /// The path of `segments`, e.g. `["request", "path"]`.
    pub fn new<I, S>(segments: I) -> PropertyPath<'static>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        PropertyPath(Cow::Owned(encode(segments)))
    }
}

impl<'a> PropertyPath<'a> {
    /// The path of one segment (such as a dotted filter-state name,
    /// `request.auth.principal`), borrowed: its encoding is its bytes.
    pub fn segment(name: &'a str) -> PropertyPath<'a> {
        PropertyPath(Cow::Borrowed(name.as_bytes()))
    }

    /// The encoded path.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn get_encoded(path: &[u8]) -> Option<Vec<u8>> {
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

fn encode<I, S>(path: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let segments: Vec<S> = path.into_iter().collect();
    wasp_abi::encode_property_path(&segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_as_the_abi_sends_them() {
        let path = PropertyPath::new(["request", "path"]);
        assert_eq!(path.as_bytes(), b"request\0path");
        assert_eq!(
            PropertyPath::segment("request.auth.principal").as_bytes(),
            PropertyPath::new(["request.auth.principal"]).as_bytes()
        );
    }
}
