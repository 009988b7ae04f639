//! The wire format of header maps (`proxy_get_header_map_pairs`,
//! `proxy_set_header_map_pairs`, `proxy_send_local_response`, `proxy_http_call`).
//!
//! Layout: a little-endian `u32` pair count, then for each pair its key length
//! and value length (`u32` each), then every key and value in order, each
//! followed by a NUL byte that the lengths do not count.

use std::fmt;
use std::ops::Range;

/// Why a serialized map could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapDecodeError {
    /// The buffer ended before the lengths it announced.
    Truncated,
    /// A key or value was not followed by its NUL terminator.
    MissingNul,
}

impl fmt::Display for MapDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("serialized map is truncated"),
            Self::MissingNul => f.write_str("serialized map entry lacks its NUL terminator"),
        }
    }
}

impl std::error::Error for MapDecodeError {}

/// The number of bytes `encode_map` produces for these pairs.
pub fn encoded_map_len<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> usize {
    4 + pairs
        .iter()
        .map(|(k, v)| 8 + k.as_ref().len() + v.as_ref().len() + 2)
        .sum::<usize>()
}

/// Serializes key/value pairs in the ABI's map format.
pub fn encode_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let bytes = pairs
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
        .sum();
    let mut out = MapEncoder::new(pairs.len(), bytes);
    for (k, v) in pairs {
        out.push(k.as_ref(), v.as_ref());
    }
    out.finish()
}

/// Serializes a map whose pair count and bytes (keys plus values) are
/// known beforehand, pair by pair, into one buffer of the exact size:
/// for pairs that are visited rather than held in a slice.
#[derive(Debug)]
pub struct MapEncoder {
    out: Vec<u8>,
    /// Index of the next pair.
    next: usize,
    /// The pairs announced to [`MapEncoder::new`].
    count: usize,
    /// The size announced to [`MapEncoder::new`].
    size: usize,
}

impl MapEncoder {
    /// An encoder for `count` pairs of `bytes` key and value bytes in all.
    /// The buffer is allocated once, at its final size; only the count and
    /// the length table are zeroed first, the names and values are appended.
    pub fn new(count: usize, bytes: usize) -> Self {
        let table = 4 + 8 * count;
        let size = table + bytes + 2 * count;
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&(count as u32).to_le_bytes());
        out.resize(table, 0);
        Self {
            out,
            next: 0,
            count,
            size,
        }
    }

    /// Adds the next pair.
    ///
    /// # Panics
    /// When the pairs outnumber what [`MapEncoder::new`] was told.
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        assert!(
            self.next < self.count,
            "map encoder: more pairs than announced"
        );
        let lengths = 4 + 8 * self.next;
        self.out[lengths..lengths + 4].copy_from_slice(&(key.len() as u32).to_le_bytes());
        self.out[lengths + 4..lengths + 8].copy_from_slice(&(value.len() as u32).to_le_bytes());
        self.out.extend_from_slice(key);
        self.out.push(0);
        self.out.extend_from_slice(value);
        self.out.push(0);
        self.next += 1;
    }

    /// The serialized map.
    ///
    /// # Panics
    /// When the pairs pushed differ in number or size from what
    /// [`MapEncoder::new`] was told.
    pub fn finish(self) -> Vec<u8> {
        assert_eq!(
            self.out.len(),
            self.size,
            "map encoder: pairs differ from the announced size"
        );
        self.out
    }
}

/// Borrowed key/value pairs decoded from a serialized map.
pub type MapPairs<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Parses the ABI's map format into borrowed key/value pairs. An empty buffer
/// is an empty map.
pub fn decode_map(bytes: &[u8]) -> Result<MapPairs<'_>, MapDecodeError> {
    let mut pairs = Vec::new();
    decode_map_ranges(bytes, |key, value| {
        pairs.push((&bytes[key], &bytes[value]));
    })?;
    Ok(pairs)
}

/// Parses the ABI's map format without copying or collecting: `pair` gets
/// the byte ranges of each key and value in `bytes`, in order. Returns where
/// the keys and values start (after the count and lengths; 0 for an empty
/// buffer, which is an empty map).
pub fn decode_map_ranges(
    bytes: &[u8],
    mut pair: impl FnMut(Range<usize>, Range<usize>),
) -> Result<usize, MapDecodeError> {
    if bytes.is_empty() {
        return Ok(0);
    }
    let read_u32 = |at: usize| -> Result<usize, MapDecodeError> {
        let raw = bytes.get(at..at + 4).ok_or(MapDecodeError::Truncated)?;
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
    };
    let count = read_u32(0)?;
    let header_end = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(4))
        .ok_or(MapDecodeError::Truncated)?;
    if header_end > bytes.len() {
        return Err(MapDecodeError::Truncated);
    }
    let mut data = header_end;
    for i in 0..count {
        let key_len = read_u32(4 + i * 8)?;
        let value_len = read_u32(8 + i * 8)?;
        let key = take(bytes, &mut data, key_len)?;
        let value = take(bytes, &mut data, value_len)?;
        pair(key, value);
    }
    Ok(header_end)
}

/// The range of the `len` bytes at `at` (which must be followed by a NUL),
/// moving `at` past the NUL.
fn take(bytes: &[u8], at: &mut usize, len: usize) -> Result<Range<usize>, MapDecodeError> {
    let start = *at;
    let end = start.checked_add(len).ok_or(MapDecodeError::Truncated)?;
    match bytes.get(end) {
        Some(0) => {}
        Some(_) => return Err(MapDecodeError::MissingNul),
        None => return Err(MapDecodeError::Truncated),
    }
    *at = end + 1;
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_fills_exactly_the_announced_size() {
        let pairs = [("a", "1"), ("bc", "")];
        let mut encoder = MapEncoder::new(2, 4);
        for (k, v) in pairs {
            encoder.push(k.as_bytes(), v.as_bytes());
        }
        let bytes = encoder.finish();
        assert_eq!(bytes.len(), encoded_map_len(&pairs));
        assert_eq!(decode_map(&bytes).unwrap().len(), 2);
    }

    #[test]
    #[should_panic(expected = "differ from the announced size")]
    fn an_encoder_given_fewer_pairs_than_announced_panics() {
        let mut encoder = MapEncoder::new(2, 2);
        encoder.push(b"a", b"1");
        encoder.finish();
    }

    #[test]
    #[should_panic(expected = "more pairs than announced")]
    fn an_encoder_given_more_pairs_than_announced_panics() {
        let mut encoder = MapEncoder::new(1, 2);
        encoder.push(b"a", b"1");
        encoder.push(b"b", b"2");
    }

    #[test]
    fn map_round_trips() {
        let pairs = [(":path", "/a"), ("x-key", ""), ("", "v")];
        let encoded = encode_map(&pairs);
        assert_eq!(encoded.len(), encoded_map_len(&pairs));
        let decoded = decode_map(&encoded).unwrap();
        assert_eq!(
            decoded,
            vec![
                (&b":path"[..], &b"/a"[..]),
                (&b"x-key"[..], &b""[..]),
                (&b""[..], &b"v"[..])
            ]
        );
    }

    #[test]
    fn truncated_and_unterminated_maps_are_rejected() {
        let encoded = encode_map(&[("key", "value")]);
        assert_eq!(
            decode_map(&encoded[..encoded.len() - 1]),
            Err(MapDecodeError::Truncated)
        );
        let mut bad = encoded.clone();
        let nul_after_key = 4 + 8 + 3;
        bad[nul_after_key] = b'x';
        assert_eq!(decode_map(&bad), Err(MapDecodeError::MissingNul));
        assert_eq!(decode_map(&[5, 0, 0, 0]), Err(MapDecodeError::Truncated));
        assert!(decode_map(&[]).unwrap().is_empty());
    }

    #[test]
    fn ranges_point_into_the_buffer() {
        let encoded = encode_map(&[("k", "value"), ("", "")]);
        let mut ranges = Vec::new();
        let data = decode_map_ranges(&encoded, |k, v| ranges.push((k, v))).unwrap();
        assert_eq!(data, 4 + 2 * 8);
        assert_eq!(ranges, [(20..21, 22..27), (28..28, 29..29)]);
        assert_eq!(&encoded[ranges[0].1.clone()], b"value");
        assert_eq!(decode_map_ranges(&[], |_, _| {}), Ok(0));
        assert_eq!(
            decode_map_ranges(&encoded[..encoded.len() - 1], |_, _| {}),
            Err(MapDecodeError::Truncated)
        );
    }
}
