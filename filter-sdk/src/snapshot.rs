//! [`HeaderSnapshot`]: a header map read in one host call
//! (`proxy_get_header_map_pairs`) and looked up locally. A filter that reads
//! several headers of one map in a callback pays one host call instead of
//! one per name, and absent names cost nothing. The snapshot is a copy:
//! changes made afterwards (by this filter or the host) are not in it.
//! The host's buffer becomes the snapshot's text in place when every name
//! and value is UTF-8 (as they nearly always are); only a map with invalid
//! bytes is copied, with the bytes replaced.

use crate::filter::HeaderList;

/// A copy of one header map: every name and value in one string, indexed.
#[derive(Debug, Clone, Default)]
pub struct HeaderSnapshot {
    /// Names and values (invalid UTF-8 replaced), back to back or as they
    /// lie in the host's serialized map.
    text: String,
    /// Per entry: the name's and the value's byte ranges in `text`.
    entries: Vec<[u32; 4]>,
    /// One bit per [`name_bit`] of the names present: a lookup of a name
    /// whose bit is clear (most names filters look for, such as trace
    /// headers a request does not carry) answers without a scan.
    names: u64,
}

/// A name's bit in [`HeaderSnapshot::names`]: from its length and its last
/// byte (ignoring ASCII case, as lookups do).
fn name_bit(name: &[u8]) -> u64 {
    let last = name.last().map_or(0, u8::to_ascii_lowercase);
    1 << ((name.len() * 7 + usize::from(last)) % 64)
}

/// The bits of the names of `entries` in `text`.
fn names_of(text: &[u8], entries: &[[u32; 4]]) -> u64 {
    entries.iter().fold(0, |bits, [ns, ne, _, _]| {
        bits | name_bit(&text[*ns as usize..*ne as usize])
    })
}

/// Snapshots are equal when their pairs are, in order.
impl PartialEq for HeaderSnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for HeaderSnapshot {}

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
        let names = names_of(text.as_bytes(), &entries);
        HeaderSnapshot {
            text,
            entries,
            names,
        }
    }

    /// A snapshot of a serialized map (`bytes`, the host's buffer), reusing
    /// the buffer as the text: the lengths at its start are zeroed, which
    /// leaves it UTF-8 exactly when every name and value is.
    pub(crate) fn from_encoded(
        mut bytes: Vec<u8>,
    ) -> Result<HeaderSnapshot, wasp_abi::MapDecodeError> {
        // The count the map announces (each pair takes at least 10 bytes,
        // so a count the buffer cannot hold reserves no more than it can).
        let announced = bytes
            .get(..4)
            .map_or(0, |n| u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize);
        let mut entries: Vec<[u32; 4]> = Vec::with_capacity(announced.min(bytes.len() / 10));
        let header_end = wasp_abi::decode_map_ranges(&bytes, |name, value| {
            let at = |n: usize| n as u32;
            entries.push([at(name.start), at(name.end), at(value.start), at(value.end)]);
        })?;
        if bytes.len() >= header_end {
            bytes[..header_end].fill(0);
        }
        match String::from_utf8(bytes) {
            Ok(text) => {
                let names = names_of(text.as_bytes(), &entries);
                Ok(HeaderSnapshot {
                    text,
                    entries,
                    names,
                })
            }
            Err(e) => {
                let bytes = e.into_bytes();
                let part = |start: u32, end: u32| &bytes[start as usize..end as usize];
                let pairs: Vec<(&[u8], &[u8])> = entries
                    .iter()
                    .map(|&[ns, ne, vs, ve]| (part(ns, ne), part(vs, ve)))
                    .collect();
                Ok(HeaderSnapshot::from_pairs(&pairs))
            }
        }
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
        let present = self.names & name_bit(name.as_bytes()) != 0;
        let entries = if present { &self.entries[..] } else { &[] };
        entries.iter().filter(move |[ns, ne, _, _]| {
            (ne - ns) as usize == name.len()
                && text[*ns as usize..*ne as usize].eq_ignore_ascii_case(name.as_bytes())
        })
    }

    /// The first value of `name` (compared ignoring ASCII case), or `None`.
    /// A plain loop: filters look several names up per request, and the
    /// size-optimised modules do not inline the iterator chain of `named`.
    pub fn get(&self, name: &str) -> Option<&str> {
        if self.names & name_bit(name.as_bytes()) == 0 {
            return None;
        }
        let text = self.text.as_bytes();
        for &[ns, ne, vs, ve] in &self.entries {
            if (ne - ns) as usize == name.len()
                && text[ns as usize..ne as usize].eq_ignore_ascii_case(name.as_bytes())
            {
                return Some(self.span(vs, ve));
            }
        }
        None
    }

    /// Every value of `name` (compared ignoring ASCII case), in order.
    pub fn get_all<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s str> + use<'s, 'n> {
        self.named(name).map(|&[_, _, vs, ve]| self.span(vs, ve))
    }

    /// True when `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
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
    fn every_present_name_is_found_in_any_case_and_absent_ones_are_not() {
        let names: Vec<String> = (0..300)
            .map(|i| format!("x-{}{i}", "abcdefghij".repeat(i % 7)))
            .collect();
        let values: Vec<String> = (0..names.len()).map(|i| i.to_string()).collect();
        let present: Vec<(&[u8], &[u8])> = names
            .iter()
            .zip(&values)
            .step_by(2)
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        for snapshot in [
            HeaderSnapshot::from_pairs(&present),
            HeaderSnapshot::from_encoded(wasp_abi::encode_map(&present)).unwrap(),
        ] {
            for (i, name) in names.iter().enumerate() {
                let expected = (i % 2 == 0).then(|| values[i].as_str());
                assert_eq!(snapshot.get(name), expected, "{name}");
                assert_eq!(snapshot.get(&name.to_ascii_uppercase()), expected, "{name}");
                assert_eq!(snapshot.get_all(name).next(), expected, "{name}");
            }
        }
    }

    #[test]
    fn a_serialized_map_reads_as_its_pairs_in_place_or_repaired() {
        let pairs: [(&[u8], &[u8]); 3] = [(b":path", b"/a"), (b"x-empty", b""), (b"X-B", b"v")];
        let snapshot = HeaderSnapshot::from_encoded(wasp_abi::encode_map(&pairs)).unwrap();
        assert_eq!(snapshot, HeaderSnapshot::from_pairs(&pairs));
        assert_eq!(
            snapshot.to_list(),
            HeaderSnapshot::from_pairs(&pairs).to_list()
        );
        assert_eq!(snapshot.get("x-b"), Some("v"));
        assert_eq!(snapshot.get("x-empty"), Some(""));
        assert_eq!(snapshot.len(), 3);

        let bad: [(&[u8], &[u8]); 2] = [(b"x-bad", b"a\xffb"), (b"x-ok", b"fine")];
        let snapshot = HeaderSnapshot::from_encoded(wasp_abi::encode_map(&bad)).unwrap();
        assert_eq!(snapshot, HeaderSnapshot::from_pairs(&bad));
        assert_eq!(snapshot.get("x-bad"), Some("a\u{fffd}b"));
        assert_eq!(snapshot.get("x-ok"), Some("fine"));

        assert!(HeaderSnapshot::from_encoded(Vec::new()).unwrap().is_empty());
        assert!(HeaderSnapshot::from_encoded(vec![9, 0, 0, 0]).is_err());
    }
}
