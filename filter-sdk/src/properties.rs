//! Properties (`proxy_get_property` / `proxy_set_property`): request,
//! connection, peer-identity and plugin attributes addressed by path, with
//! typed helpers for the common ones. Available on every context through the
//! [`Properties`] trait.

use crate::abi::hostcalls;
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
    hostcalls::get_property(&encode(path)).unwrap_or_else(|e| {
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
