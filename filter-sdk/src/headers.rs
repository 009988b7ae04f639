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
    if has_upper(name.as_bytes()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// Whether `bytes` has an ASCII upper-case letter, looked for eight bytes
/// at a time (every edit's name is checked; a byte at a time cost more than
/// the hostcall).
fn has_upper(bytes: &[u8]) -> bool {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte, with its top bit cleared (so no sum carries into the next
    // byte): + 0x3f sets the top bit from `A` (0x41) on, + 0x25 from
    // past `Z` (0x5b) on; a byte whose own top bit was set is no letter.
    let upper = |x: u64| {
        let low = x & LOW7;
        let from_a = low + 0x3f3f_3f3f_3f3f_3f3f;
        let past_z = low + 0x2525_2525_2525_2525;
        from_a & !past_z & !x & HIGH != 0
    };
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        if upper(word) {
            return true;
        }
    }
    words.remainder().iter().any(u8::is_ascii_uppercase)
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
    fn upper_case_letters_are_found_at_every_position_and_nothing_else_is() {
        for byte in 0..=255u8 {
            for len in 1..=19 {
                for at in 0..len {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = byte;
                    assert_eq!(
                        has_upper(&bytes),
                        byte.is_ascii_uppercase(),
                        "byte {byte:#x} at {at} of {len}"
                    );
                }
            }
        }
        assert!(!has_upper(b""));
        assert_eq!(lower("X-B3-TraceId"), "x-b3-traceid");
        assert!(matches!(lower("x-b3-traceid"), Cow::Borrowed(_)));
    }
}
