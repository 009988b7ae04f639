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
    /// Per entry: the name's and the value's byte ranges in `text`, and
    /// the name's [`name_hash`].
    entries: Vec<[u32; 5]>,
    /// The [`hash_bits`] of every name present: a lookup of a name whose
    /// bits are not all set (most names filters look for, such as trace
    /// headers a request does not carry) answers without a scan.
    names: u64,
}

/// A name's hash, the same in any ASCII case: from its length and its
/// first and last four bytes, so that it costs the same for any name. A
/// scan compares the bytes of a name only when its hash matches (names of
/// one length often share their last byte: `x-b3-traceid` and
/// `x-request-id`).
fn name_hash(name: &[u8]) -> u32 {
    // Setting bit 5 maps each ASCII upper-case letter to its lower case
    // (and some other bytes onto each other, which only costs a compare).
    const FOLD: u32 = 0x2020_2020;
    let word = |four: &[u8]| u32::from_le_bytes([four[0], four[1], four[2], four[3]]) | FOLD;
    let (head, tail) = match name.len() {
        0..4 => {
            let short = name
                .iter()
                .fold(0u32, |word, &b| (word << 8) | u32::from(b | 0x20));
            (short, 0)
        }
        n => (word(&name[..4]), word(&name[n - 4..])),
    };
    let mixed =
        (head.wrapping_mul(0x9E37_79B1) ^ tail ^ name.len() as u32).wrapping_mul(0x85EB_CA77);
    mixed ^ (mixed >> 15)
}

/// The two bits of a name's hash in [`HeaderSnapshot::names`].
fn hash_bits(hash: u32) -> u64 {
    (1 << (hash >> 26)) | (1 << ((hash >> 20) & 63))
}

/// An entry: the name's and the value's ranges, and the name's hash.
fn entry(text: &[u8], name: [u32; 2], value: [u32; 2]) -> [u32; 5] {
    let hash = name_hash(&text[name[0] as usize..name[1] as usize]);
    [name[0], name[1], value[0], value[1], hash]
}

/// The bits of the names of `entries`.
fn names_of(entries: &[[u32; 5]]) -> u64 {
    entries.iter().fold(0, |bits, e| bits | hash_bits(e[4]))
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
            let name = push(&mut text, name);
            let value = push(&mut text, value);
            entries.push(entry(text.as_bytes(), name, value));
        }
        let names = names_of(&entries);
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
        let mut entries: Vec<[u32; 5]> = Vec::with_capacity(announced.min(bytes.len() / 10));
        let header_end = wasp_abi::decode_map_ranges(&bytes, |name, value| {
            let at = |n: usize| n as u32;
            let (name, value) = (
                [at(name.start), at(name.end)],
                [at(value.start), at(value.end)],
            );
            entries.push(entry(&bytes, name, value));
        })?;
        if bytes.len() >= header_end {
            bytes[..header_end].fill(0);
        }
        match crate::abi::text::utf8(bytes) {
            Ok(text) => {
                let names = names_of(&entries);
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
                    .map(|&[ns, ne, vs, ve, _]| (part(ns, ne), part(vs, ve)))
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
            .map(|&[ns, ne, vs, ve, _]| (self.span(ns, ne), self.span(vs, ve)))
    }

    /// The entries named `name` (compared ignoring ASCII case): names of
    /// another hash are passed over without looking at their bytes.
    fn named<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s [u32; 5]> + use<'s, 'n> {
        let text = self.text.as_bytes();
        let hash = name_hash(name.as_bytes());
        let bits = hash_bits(hash);
        let entries = if self.names & bits == bits {
            &self.entries[..]
        } else {
            &[]
        };
        entries.iter().filter(move |&&[ns, ne, _, _, h]| {
            h == hash && text[ns as usize..ne as usize].eq_ignore_ascii_case(name.as_bytes())
        })
    }

    /// The first value of `name` (compared ignoring ASCII case), or `None`.
    /// A plain loop: filters look several names up per request, and the
    /// size-optimised modules do not inline the iterator chain of `named`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let hash = name_hash(name.as_bytes());
        let bits = hash_bits(hash);
        if self.names & bits != bits {
            return None;
        }
        let text = self.text.as_bytes();
        for &[ns, ne, vs, ve, h] in &self.entries {
            if h == hash && text[ns as usize..ne as usize].eq_ignore_ascii_case(name.as_bytes()) {
                return Some(self.span(vs, ve));
            }
        }
        None
    }

    /// Every value of `name` (compared ignoring ASCII case), in order.
    pub fn get_all<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s str> + use<'s, 'n> {
        self.named(name).map(|&[_, _, vs, ve, _]| self.span(vs, ve))
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
    fn names_of_every_length_and_case_hash_alike_and_same_length_names_apart() {
        for name in [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "abcde",
            ":authority",
            "x-request-id",
        ] {
            let upper = name.to_ascii_uppercase();
            assert_eq!(
                name_hash(name.as_bytes()),
                name_hash(upper.as_bytes()),
                "{name}"
            );
        }
        // One length, one last byte: told apart by the hash, not a compare.
        assert_ne!(name_hash(b"x-b3-traceid"), name_hash(b"x-request-id"));
        assert_ne!(name_hash(b"x-b3-sampled"), name_hash(b"x-request-id"));
        let pairs: [(&[u8], &[u8]); 2] = [(b"X-Request-Id", b"1"), (b"x-b3-traceid", b"2")];
        let snapshot = HeaderSnapshot::from_pairs(&pairs);
        assert_eq!(snapshot.get("x-request-id"), Some("1"));
        assert_eq!(snapshot.get("X-B3-TRACEID"), Some("2"));
        assert_eq!(snapshot.get("x-b3-sampled"), None);
        assert_eq!(snapshot.get("ab"), None);
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
