//! Typed access to the stream's header maps (headers and trailers) and body
//! buffers. Names are lower-cased before they reach the host, so lookups are
//! case-insensitive on every host. Host failures are logged at warn level and
//! read as absent.

use crate::abi::hostcalls;
use crate::filter::HeaderList;
use crate::snapshot::HeaderSnapshot;
use std::borrow::Cow;
use wasp_abi::{BufferType, MapType};

/// `name` in lower case, borrowed when it already is (header names in code
/// usually are, so most calls allocate nothing).
fn lower(name: &str) -> Cow<'_, str> {
    if crate::abi::text::has_ascii_uppercase(name.as_bytes()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// One header map of the current stream (request/response headers or trailers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers {
    map: MapType,
}

impl Headers {
    pub(crate) fn new(map: MapType) -> Headers {
        Headers { map }
    }

    /// The first value of `name`, or `None`.
    pub fn get(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(self.map, &lower(name)).unwrap_or_else(|e| {
            crate::log::report(&e);
            None
        })
    }

    /// True when `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every `(name, value)` pair, in order.
    pub fn all(&self) -> HeaderList {
        hostcalls::get_map(self.map).unwrap_or_else(|e| {
            crate::log::report(&e);
            Vec::new()
        })
    }

    /// Every pair, read in one host call and looked up locally: the way to
    /// read several headers of one map (see [`HeaderSnapshot`]). Later
    /// changes to the map are not in the snapshot.
    pub fn snapshot(&self) -> HeaderSnapshot {
        hostcalls::get_map_snapshot(self.map).unwrap_or_else(|e| {
            crate::log::report(&e);
            HeaderSnapshot::default()
        })
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    /// Sets `name` to `value`, replacing every existing value.
    pub fn set(&self, name: &str, value: &str) {
        if let Err(e) = hostcalls::replace_map_value(self.map, &lower(name), value) {
            crate::log::report(&e);
        }
    }

    /// Adds a value to `name`, keeping existing values.
    pub fn add(&self, name: &str, value: &str) {
        if let Err(e) = hostcalls::add_map_value(self.map, &lower(name), value) {
            crate::log::report(&e);
        }
    }

    /// Removes every value of `name`.
    pub fn remove(&self, name: &str) {
        if let Err(e) = hostcalls::remove_map_value(self.map, &lower(name)) {
            crate::log::report(&e);
        }
    }

    /// Replaces the whole map.
    pub fn set_all(&self, pairs: &[(String, String)]) {
        if let Err(e) = hostcalls::set_map(self.map, pairs) {
            crate::log::report(&e);
        }
    }
}

/// The request or response body buffered so far. Borrowed from the stream
/// context, which keeps track of the size across callbacks.
#[derive(Debug)]
pub struct Body<'a> {
    buffer: BufferType,
    size: &'a mut usize,
}

impl<'a> Body<'a> {
    pub(crate) fn new(buffer: BufferType, size: &'a mut usize) -> Body<'a> {
        Body { buffer, size }
    }

    /// The body's size as of the last body callback.
    pub fn len(&self) -> usize {
        *self.size
    }

    /// True when no body has been buffered.
    pub fn is_empty(&self) -> bool {
        *self.size == 0
    }

    /// The buffered bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.range(0, *self.size)
    }

    /// Up to `max` bytes from `start`.
    pub fn range(&self, start: usize, max: usize) -> Vec<u8> {
        match hostcalls::get_buffer(self.buffer, start, max) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(e) => {
                crate::log::report(&e);
                Vec::new()
            }
        }
    }

    /// The buffered bytes as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Replaces the whole buffered body with `bytes`.
    pub fn replace(&mut self, bytes: &[u8]) {
        self.write(0, *self.size, bytes, bytes.len());
    }

    /// Appends `bytes` after the buffered body.
    pub fn append(&mut self, bytes: &[u8]) {
        let size = *self.size;
        self.write(size, 0, bytes, size + bytes.len());
    }

    /// Inserts `bytes` before the buffered body.
    pub fn prepend(&mut self, bytes: &[u8]) {
        let size = *self.size;
        self.write(0, 0, bytes, size + bytes.len());
    }

    fn write(&mut self, start: usize, size: usize, bytes: &[u8], new_size: usize) {
        match hostcalls::set_buffer(self.buffer, start, size, bytes) {
            Ok(()) => *self.size = new_size,
            Err(e) => crate::log::report(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_and_borrowed_when_they_already_are() {
        assert_eq!(lower("X-B3-TraceId"), "x-b3-traceid");
        assert!(matches!(lower("x-b3-traceid"), Cow::Borrowed(_)));
    }
}
