//! The wire format of header maps (`proxy_get_header_map_pairs`,
//! `proxy_set_header_map_pairs`, `proxy_send_local_response`, `proxy_http_call`).
//!
//! Layout: a little-endian `u32` pair count, then for each pair its key length
//! and value length (`u32` each), then every key and value in order, each
//! followed by a NUL byte that the lengths do not count.

use std::fmt;

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
    let mut out = Vec::with_capacity(encoded_map_len(pairs));
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// Borrowed key/value pairs decoded from a serialized map.
pub type MapPairs<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Parses the ABI's map format into borrowed key/value pairs. An empty buffer
/// is an empty map.
pub fn decode_map(bytes: &[u8]) -> Result<MapPairs<'_>, MapDecodeError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
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
    let mut pairs = Vec::with_capacity(count);
    let mut data = header_end;
    for i in 0..count {
        let key_len = read_u32(4 + i * 8)?;
        let value_len = read_u32(8 + i * 8)?;
        let key = take(bytes, &mut data, key_len)?;
        let value = take(bytes, &mut data, value_len)?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, len: usize) -> Result<&'a [u8], MapDecodeError> {
    let end = at.checked_add(len).ok_or(MapDecodeError::Truncated)?;
    let slice = bytes.get(*at..end).ok_or(MapDecodeError::Truncated)?;
    match bytes.get(end) {
        Some(0) => {}
        Some(_) => return Err(MapDecodeError::MissingNul),
        None => return Err(MapDecodeError::Truncated),
    }
    *at = end + 1;
    Ok(slice)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
