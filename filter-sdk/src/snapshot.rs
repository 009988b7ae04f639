//! [`HeaderSnapshot`]: a header map read in one host call
//! (`proxy_get_header_map_pairs`) and looked up locally. A filter that reads
//! several headers of one map in a callback pays one host call instead of
//! one per name, and absent names cost nothing. The snapshot is a copy:
//! changes made afterwards (by this filter or the host) are not in it.

use crate::filter::HeaderList;
use wasp_abi::{MapDecodeError, decode_map_ranges};

/// A copy of one header map: every name and value in one string, indexed.
/// Two snapshots are equal when they hold the same pairs in the same order.
#[derive(Debug, Clone, Default)]
pub struct HeaderSnapshot {
    /// Names and values (invalid UTF-8 replaced), maybe with bytes between them.
    text: String,
    /// Per entry: the name's and the value's byte ranges in `text`.
    entries: Vec<[u32; 4]>,
}

impl HeaderSnapshot {
    /// A snapshot of `pairs` (the host's serialized map, decoded).
    pub(crate) fn from_pairs(pairs: &[(&[u8], &[u8])]) -> HeaderSnapshot {
        let size = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
        let mut text = String::with_capacity(size);
        let mut entries = Vec::with_capacity(pairs.len());
        let push = |text: &mut String, bytes: &[u8]| {
            let start = text.len() as u32;
            text.push_str(&String::from_utf8_lossy(bytes));
            [start, text.len() as u32]
        };
        for (name, value) in pairs {
            let [ns, ne] = push(&mut text, name);
            let [vs, ve] = push(&mut text, value);
            entries.push([ns, ne, vs, ve]);
        }
        HeaderSnapshot { text, entries }
    }

    /// A snapshot of a map in the ABI's serialized form, as the host sent
    /// it: the buffer becomes the snapshot's text in place when every name
    /// and value is UTF-8 (no copy), else they are copied with invalid
    /// UTF-8 replaced.
    pub(crate) fn from_encoded(mut bytes: Vec<u8>) -> Result<HeaderSnapshot, MapDecodeError> {
        // The count comes first; each entry takes at least 10 bytes.
        let count = bytes
            .get(..4)
            .map_or(0, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize);
        let mut ranges: Vec<[u32; 4]> = Vec::with_capacity(count.min(bytes.len() / 10));
        let data = decode_map_ranges(&bytes, |k, v| {
            ranges.push([k.start as u32, k.end as u32, v.start as u32, v.end as u32]);
        })?;
        // Names and values are NUL-separated, so the data is UTF-8 as a
        // whole exactly when each of them is.
        bytes.drain(..data);
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let bytes = e.into_bytes();
                let at = |start: u32, end: u32| &bytes[start as usize - data..end as usize - data];
                let pairs: Vec<(&[u8], &[u8])> = ranges
                    .iter()
                    .map(|&[ns, ne, vs, ve]| (at(ns, ne), at(vs, ve)))
                    .collect();
                return Ok(HeaderSnapshot::from_pairs(&pairs));
            }
        };
        let data = data as u32;
        for range in &mut ranges {
            for at in range.iter_mut() {
                *at -= data;
            }
        }
        Ok(HeaderSnapshot {
            text,
            entries: ranges,
        })
    }

    fn span(&self, start: u32, end: u32) -> &str {
        &self.text[start as usize..end as usize]
    }

    /// Every `(name, value)` pair, in the map's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries
            .iter()
            .map(|&[ns, ne, vs, ve]| (self.span(ns, ne), self.span(vs, ve)))
    }

    /// The entries named `name` (compared ignoring ASCII case): names of
    /// another length are passed over without looking at their bytes.
    fn named<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s [u32; 4]> + use<'s, 'n> {
        let text = self.text.as_bytes();
        self.entries.iter().filter(move |[ns, ne, _, _]| {
            (ne - ns) as usize == name.len()
                && text[*ns as usize..*ne as usize].eq_ignore_ascii_case(name.as_bytes())
        })
    }

    /// The first value of `name` (compared ignoring ASCII case), or `None`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.named(name)
            .next()
            .map(|&[_, _, vs, ve]| self.span(vs, ve))
    }

    /// Every value of `name` (compared ignoring ASCII case), in order.
    pub fn get_all<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s str> + use<'s, 'n> {
        self.named(name).map(|&[_, _, vs, ve]| self.span(vs, ve))
    }

    /// True when `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.named(name).next().is_some()
    }

    /// The number of entries (a name given twice counts twice).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the map had no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pairs as owned strings.
    pub fn to_list(&self) -> HeaderList {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

impl PartialEq for HeaderSnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for HeaderSnapshot {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case_keep_order_and_repair_bad_utf8() {
        let pairs: [(&[u8], &[u8]); 4] = [
            (b":path", b"/a"),
            (b"x-multi", b"one"),
            (b"X-Multi", b"two"),
            (b"x-bad", b"a\xffb"),
        ];
        let snapshot = HeaderSnapshot::from_pairs(&pairs);
        assert_eq!(snapshot.len(), 4);
        assert_eq!(snapshot.get(":PATH"), Some("/a"));
        assert_eq!(
            snapshot.get_all("x-multi").collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(snapshot.get("x-bad"), Some("a\u{fffd}b"));
        assert!(!snapshot.contains("absent"));
        assert_eq!(snapshot.to_list()[1], ("x-multi".into(), "one".into()));
        assert!(HeaderSnapshot::from_pairs(&[]).is_empty());
    }

    #[test]
    fn a_serialized_map_reads_the_same_as_its_pairs() {
        let utf8: [(&[u8], &[u8]); 3] = [
            (b":path", b"/a"),
            (b"x-\xc3\xa9", b"caf\xc3\xa9"),
            (b"e", b""),
        ];
        let bad: [(&[u8], &[u8]); 2] = [(b"x-bad", b"a\xffb"), (b"x-ok", b"ok")];
        for pairs in [&utf8[..], &bad[..], &[][..]] {
            let snapshot = HeaderSnapshot::from_encoded(wasp_abi::encode_map(pairs)).unwrap();
            assert_eq!(snapshot, HeaderSnapshot::from_pairs(pairs));
        }
        let from_bad = HeaderSnapshot::from_encoded(wasp_abi::encode_map(&bad)).unwrap();
        assert_eq!(from_bad.get("x-bad"), Some("a\u{fffd}b"));
        assert_eq!(from_bad.get("x-ok"), Some("ok"));
        assert!(HeaderSnapshot::from_encoded(Vec::new()).unwrap().is_empty());
        let mut truncated = wasp_abi::encode_map(&utf8);
        truncated.pop();
        assert_eq!(
            HeaderSnapshot::from_encoded(truncated),
            Err(MapDecodeError::Truncated)
        );
    }
}
