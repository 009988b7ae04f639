//! A stream's header maps as filters see them: as the proxy handed them over
//! (a [`HeaderSource`], read in place) plus the edits filters made to them
//! ([`HeaderEdits`]: names removed, pairs added), or as an owned
//! [`HeaderList`] once a filter replaced every pair.
//!
//! Looking one name up (`proxy_get_header_map_value`, a property) or
//! reading every pair never copies the proxy's headers; a filter that adds,
//! replaces or removes a header records just that, and the proxy applies
//! those edits to its own head. When a phase ends, what changed is shared
//! with the proxy ([`HeadChange`]), not copied.

use std::sync::Arc;

use crate::stream::{HeaderList, header_get, header_remove};

/// Headers the proxy hands to a chain in its own representation. They are
/// read in place; filters' writes are kept beside them as [`HeaderEdits`].
///
/// Every method must answer exactly as the pairs [`HeaderSource::for_each`]
/// visits would: pairs in order, names lower-case, pseudo headers
/// (`:method`, `:path`, `:authority`, `:scheme`, or `:status`) included.
pub trait HeaderSource: Send + 'static {
    /// How many pairs the list has.
    fn count(&self) -> usize;
    /// The first value of `name` (compared without regard to case), or
    /// `None` when the list has no such pair.
    fn get(&self, name: &str) -> Option<&[u8]>;
    /// Bytes of every name and value (Envoy's `HeaderMap::byteSize`).
    fn byte_size(&self) -> usize;
    /// Calls `pair` with every pair, in order, borrowed.
    fn for_each<'a>(&'a self, pair: &mut dyn FnMut(&'a str, &'a [u8]));
    /// Bytes (names plus values) and entries of the pairs named `name`
    /// (compared without regard to case).
    fn size_of(&self, name: &str) -> (usize, usize) {
        let mut size = (0, 0);
        self.for_each(&mut |k, v| {
            if k.eq_ignore_ascii_case(name) {
                size = (size.0 + k.len() + v.len(), size.1 + 1);
            }
        });
        size
    }
    /// The pairs in order, owned.
    fn to_list(&self) -> HeaderList {
        let mut list = Vec::with_capacity(self.count());
        self.for_each(&mut |name, value| list.push((name.to_owned(), value.to_vec())));
        list
    }
}

/// What filters changed in headers the proxy handed over as a source: the
/// names they removed from it (lower-case; every pair of such a name in
/// the source is gone) and the pairs they added, in order. The list the
/// filters see is the source's pairs without the removed names, then the
/// added pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    removed: Vec<String>,
    added: HeaderList,
}

impl HeaderEdits {
    /// Edits that remove the pairs of `removed` and then add `added`
    /// (names lower-cased): what a chain hands the proxy, made by hand.
    pub fn new(removed: Vec<String>, added: HeaderList) -> Self {
        let lower = |mut name: String| {
            name.make_ascii_lowercase();
            name
        };
        Self {
            removed: removed.into_iter().map(lower).collect(),
            added: added.into_iter().map(|(k, v)| (lower(k), v)).collect(),
        }
    }

    /// Names (lower-case) whose pairs in the proxy's headers are gone.
    pub fn removed(&self) -> &[String] {
        &self.removed
    }

    /// Pairs added after the proxy's headers, in order (names lower-case).
    pub fn added(&self) -> &HeaderList {
        &self.added
    }

    fn is_removed(&self, name: &str) -> bool {
        self.removed.iter().any(|r| r.eq_ignore_ascii_case(name))
    }

    fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }
}

/// Bytes (names plus values) and entries of the pairs of one name in a
/// map ([`Headers::named_size`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NamedSize {
    /// Of the pairs the proxy's headers still have.
    pub kept: (usize, usize),
    /// Of the pairs filters added (of a list: every pair).
    pub added: (usize, usize),
}

impl NamedSize {
    /// Bytes and entries of every pair of the name.
    pub fn total(self) -> (usize, usize) {
        (self.kept.0 + self.added.0, self.kept.1 + self.added.1)
    }
}

/// How a headers phase changed the headers the proxy handed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadChange {
    /// Edits to the proxy's own head.
    Edited(Arc<HeaderEdits>),
    /// A whole list (a filter set every pair, or the headers were handed
    /// over as a list).
    Replaced(Arc<HeaderList>),
}

/// One header map of a stream.
pub(crate) enum Headers {
    /// Owned pairs (built, written, or handed over as a list), shared
    /// with the proxy once a phase changed them (see [`Headers::share`]).
    List(Arc<HeaderList>),
    /// The proxy's headers, the filters' edits of them if any, and (once
    /// there are edits) the bytes and entries of the map they make, kept
    /// as the edits are made so that a filter's write costs no walk over
    /// every pair.
    Source(
        Box<dyn HeaderSource>,
        Option<Arc<HeaderEdits>>,
        (usize, usize),
    ),
}

/// No headers: the map a stream starts with (a zero-sized source, so a
/// stream's four maps cost no allocation until headers arrive).
struct NoHeaders;

impl HeaderSource for NoHeaders {
    fn count(&self) -> usize {
        0
    }
    fn get(&self, _: &str) -> Option<&[u8]> {
        None
    }
    fn byte_size(&self) -> usize {
        0
    }
    fn for_each<'a>(&'a self, _: &mut dyn FnMut(&'a str, &'a [u8])) {}
}

impl Default for Headers {
    fn default() -> Self {
        Self::source(Box::new(NoHeaders))
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::List(list) => f.debug_tuple("List").field(list).finish(),
            Self::Source(source, edits, _) => f
                .debug_tuple("Source")
                .field(&source.count())
                .field(edits)
                .finish(),
        }
    }
}

impl From<HeaderList> for Headers {
    fn from(list: HeaderList) -> Self {
        Self::List(Arc::new(list))
    }
}

/// Bytes (names plus values) and entries of the pairs of `list` named
/// `name`.
fn list_size(list: &HeaderList, name: &str) -> (usize, usize) {
    list.iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .fold((0, 0), |(bytes, n), (k, v)| {
            (bytes + k.len() + v.len(), n + 1)
        })
}

impl Headers {
    /// The proxy's headers, unchanged.
    pub fn source(source: Box<dyn HeaderSource>) -> Self {
        Self::Source(source, None, (0, 0))
    }

    /// Calls `pair` with every pair filters see, in order, borrowed.
    fn for_each<'a>(&'a self, pair: &mut dyn FnMut(&'a str, &'a [u8])) {
        match self {
            Self::List(list) => list.iter().for_each(|(k, v)| pair(k, v)),
            Self::Source(source, None, _) => source.for_each(pair),
            Self::Source(source, Some(edits), _) => {
                if edits.removed.is_empty() {
                    source.for_each(pair);
                } else {
                    source.for_each(&mut |k, v| {
                        if !edits.is_removed(k) {
                            pair(k, v);
                        }
                    });
                }
                edits.added.iter().for_each(|(k, v)| pair(k, v));
            }
        }
    }

    /// How many pairs the map has.
    pub fn len(&self) -> usize {
        match self {
            Self::List(list) => list.len(),
            Self::Source(source, None, _) => source.count(),
            Self::Source(_, Some(_), (_, count)) => *count,
        }
    }

    /// The first value of `name`, case-insensitively.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        match self {
            Self::List(list) => header_get(list, name),
            Self::Source(source, None, _) => source.get(name),
            Self::Source(source, Some(edits), _) => {
                let kept = if edits.is_removed(name) {
                    None
                } else {
                    source.get(name)
                };
                kept.or_else(|| header_get(&edits.added, name))
            }
        }
    }

    /// Bytes of every name and value.
    pub fn byte_size(&self) -> usize {
        self.size().0
    }

    /// Bytes (names plus values) and entries of the map, for its limits.
    pub fn size(&self) -> (usize, usize) {
        match self {
            Self::List(list) => crate::limits::map_size(list),
            Self::Source(source, None, _) => (source.byte_size(), source.count()),
            Self::Source(_, Some(_), size) => *size,
        }
    }

    /// Bytes and entries of the pairs named `name` that a source map still
    /// has from the proxy (none once filters removed the name).
    fn kept_size_of(&self, name: &str) -> (usize, usize) {
        match self {
            Self::Source(_, Some(edits), _) if edits.is_removed(name) => (0, 0),
            Self::Source(source, ..) => source.size_of(name),
            Self::List(_) => (0, 0),
        }
    }

    /// The map in the ABI's serialized form (`proxy_get_header_map_pairs`).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::List(list) => wasp_abi::encode_map(list),
            Self::Source(..) => {
                let (bytes, count) = self.size();
                let mut out = wasp_abi::MapEncoder::new(count, bytes);
                self.for_each(&mut |k, v| out.push(k.as_bytes(), v));
                out.finish()
            }
        }
    }

    /// The pairs as an owned list, kept from now on: every later write
    /// changes the list (copied only while the proxy still holds it).
    pub fn list_mut(&mut self) -> &mut HeaderList {
        if let Self::Source(..) = self {
            *self = Self::from(self.to_list());
        }
        match self {
            Self::List(list) => Arc::make_mut(list),
            Self::Source(..) => unreachable!("built above"),
        }
    }

    /// A copy of the pairs.
    pub fn to_list(&self) -> HeaderList {
        match self {
            Self::List(list) => (**list).clone(),
            Self::Source(source, None, _) => source.to_list(),
            Self::Source(..) => {
                let mut list = Vec::with_capacity(self.len());
                self.for_each(&mut |k, v| list.push((k.to_owned(), v.to_vec())));
                list
            }
        }
    }

    /// The edits of a source map, made on first use, and the size of the
    /// map they make.
    fn edits(&mut self) -> Option<(&mut HeaderEdits, &mut (usize, usize))> {
        match self {
            Self::Source(source, edits, size) => {
                let edits = edits.get_or_insert_with(|| {
                    *size = (source.byte_size(), source.count());
                    Arc::default()
                });
                Some((Arc::make_mut(edits), size))
            }
            _ => None,
        }
    }

    /// Adds a pair after the others.
    pub fn add(&mut self, mut name: String, value: Vec<u8>) {
        name.make_ascii_lowercase();
        match self.edits() {
            Some((edits, size)) => {
                *size = (size.0 + name.len() + value.len(), size.1 + 1);
                edits.added.push((name, value));
            }
            None => self.list_mut().push((name, value)),
        }
    }

    /// Bytes and entries of the pairs named `name`, split as a removal
    /// needs them: those the proxy's headers still have, and those filters
    /// added (or, of a list, every one).
    pub fn named_size(&self, name: &str) -> NamedSize {
        match self {
            Self::List(list) => NamedSize {
                kept: (0, 0),
                added: list_size(list, name),
            },
            Self::Source(_, None, _) => NamedSize {
                kept: self.kept_size_of(name),
                added: (0, 0),
            },
            Self::Source(_, Some(edits), _) => NamedSize {
                kept: self.kept_size_of(name),
                added: list_size(&edits.added, name),
            },
        }
    }

    /// Removes every pair of `name`.
    pub fn remove(&mut self, name: &str) {
        let named = self.named_size(name);
        self.remove_named(name, named);
    }

    /// Removes every pair of `name`, whose sizes are `named` (as
    /// [`Headers::named_size`] gave them, the map unchanged since).
    fn remove_named(&mut self, name: &str, named: NamedSize) {
        let NamedSize { kept, added } = named;
        match self.edits() {
            Some((edits, size)) => {
                *size = (size.0 - kept.0 - added.0, size.1 - kept.1 - added.1);
                if kept.1 > 0 {
                    edits.removed.push(name.to_ascii_lowercase());
                }
                if added.1 > 0 {
                    header_remove(&mut edits.added, name);
                }
            }
            None => {
                if added.1 > 0 {
                    header_remove(self.list_mut(), name);
                }
            }
        }
    }

    /// Replaces every pair of `name` with one pair, after the others;
    /// `named` is [`Headers::named_size`] of `name` in the map as it is (a
    /// hostcall sizes the pairs once, for its limit check and the edit).
    pub fn replace_named(&mut self, name: String, value: Vec<u8>, named: NamedSize) {
        self.remove_named(&name, named);
        self.add(name, value);
    }

    /// What changed, shared: the map keeps it for later reads and the
    /// caller gets it without a copy. `None`: nothing changed.
    pub fn share(&mut self) -> Option<HeadChange> {
        match self {
            Self::Source(_, None, _) => None,
            Self::Source(_, Some(edits), _) if edits.is_empty() => None,
            Self::Source(_, Some(edits), _) => Some(HeadChange::Edited(Arc::clone(edits))),
            Self::List(list) => Some(HeadChange::Replaced(Arc::clone(list))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A source over a fixed list, counting how often it was copied.
    struct Fixed(HeaderList, Arc<AtomicUsize>);

    impl HeaderSource for Fixed {
        fn count(&self) -> usize {
            self.0.len()
        }
        fn get(&self, name: &str) -> Option<&[u8]> {
            header_get(&self.0, name)
        }
        fn byte_size(&self) -> usize {
            self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
        }
        fn for_each<'a>(&'a self, pair: &mut dyn FnMut(&'a str, &'a [u8])) {
            self.0.iter().for_each(|(k, v)| pair(k, v));
        }
        fn to_list(&self) -> HeaderList {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.clone()
        }
    }

    fn list(pairs: &[(&str, &str)]) -> HeaderList {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn source(pairs: &[(&str, &str)]) -> (Headers, Arc<AtomicUsize>) {
        let copies = Arc::default();
        let headers = Headers::source(Box::new(Fixed(list(pairs), Arc::clone(&copies))));
        (headers, copies)
    }

    /// Every answer of `headers` is the answer of the list `expected`.
    fn answers_as(headers: &Headers, expected: &HeaderList) {
        assert_eq!(&headers.to_list(), expected);
        assert_eq!(headers.len(), expected.len());
        assert_eq!(headers.size(), limits_size(expected));
        assert_eq!(headers.byte_size(), limits_size(expected).0);
        assert_eq!(headers.encode(), wasp_abi::encode_map(expected));
        for name in ["a", "A", "b", "c", ":status", "missing"] {
            assert_eq!(headers.get(name), header_get(expected, name), "{name}");
            let named = expected
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name));
            assert_eq!(
                headers.named_size(name).total(),
                named.fold((0, 0), |(b, n), (k, v)| (b + k.len() + v.len(), n + 1)),
                "{name}"
            );
        }
    }

    fn limits_size(list: &HeaderList) -> (usize, usize) {
        crate::limits::map_size(list)
    }

    #[test]
    fn lookups_and_reads_of_every_pair_never_copy_the_source() {
        let (headers, copies) = source(&[(":status", "200"), ("a", "1")]);
        answers_as(&headers, &list(&[(":status", "200"), ("a", "1")]));
        assert_eq!(
            copies.load(Ordering::Relaxed),
            1,
            "only to_list of the check copied"
        );
    }

    #[test]
    fn edits_of_a_source_answer_as_the_same_edits_of_its_list() {
        let start = [(":status", "200"), ("a", "1"), ("b", "2"), ("a", "3")];
        let (mut headers, copies) = source(&start);
        let mut expected = list(&start);

        headers.add("C".into(), b"4".to_vec());
        expected.push(("c".into(), b"4".to_vec()));
        answers_as(&headers, &expected);

        let named = headers.named_size("A");
        headers.replace_named("A".into(), b"5".to_vec(), named);
        crate::stream::header_replace(&mut expected, "A".into(), b"5".to_vec());
        answers_as(&headers, &expected);

        headers.remove("c");
        header_remove(&mut expected, "c");
        headers.remove("missing");
        answers_as(&headers, &expected);

        headers.add("b".into(), b"6".to_vec());
        expected.push(("b".into(), b"6".to_vec()));
        headers.remove("B");
        header_remove(&mut expected, "B");
        answers_as(&headers, &expected);

        let Some(HeadChange::Edited(edits)) = headers.share() else {
            panic!("edits of a source are shared as edits");
        };
        assert_eq!(edits.removed(), ["a".to_owned(), "b".to_owned()]);
        assert_eq!(edits.added(), &list(&[("a", "5")]));
        assert_eq!(
            copies.load(Ordering::Relaxed),
            0,
            "the source was never copied"
        );

        // A later write does not change what the proxy holds.
        headers.add("d".into(), b"7".to_vec());
        assert_eq!(edits.added().len(), 1);
    }

    #[test]
    fn a_new_map_is_empty_and_takes_writes_like_a_list() {
        let mut headers = Headers::default();
        answers_as(&headers, &HeaderList::new());
        assert_eq!(headers.share(), None);
        headers.add("A".into(), b"1".to_vec());
        headers.remove("missing");
        answers_as(&headers, &list(&[("a", "1")]));
        let Some(HeadChange::Edited(edits)) = headers.share() else {
            panic!("writes to a new map are shared");
        };
        assert_eq!(edits.added(), &list(&[("a", "1")]));
    }

    #[test]
    fn an_unchanged_source_and_edits_that_cancel_out_share_nothing() {
        let (mut headers, _) = source(&[("a", "1")]);
        assert_eq!(headers.share(), None);
        headers.remove("missing");
        headers.add("x".into(), b"1".to_vec());
        headers.remove("x");
        assert_eq!(headers.share(), None);
    }

    #[test]
    fn a_shared_list_is_read_in_place_and_copied_only_by_a_write_while_shared() {
        let mut headers = Headers::from(vec![("a".into(), b"1".to_vec())]);
        let Some(HeadChange::Replaced(shared)) = headers.share() else {
            panic!("a list is shared whole");
        };
        assert_eq!(shared.as_slice(), &[("a".to_owned(), b"1".to_vec())]);
        assert_eq!(
            headers.share(),
            Some(HeadChange::Replaced(Arc::clone(&shared))),
            "shared again"
        );
        assert_eq!(headers.get("A"), Some(&b"1"[..]));
        assert_eq!((headers.len(), headers.byte_size()), (1, 2));

        // A write while the proxy holds the list leaves the proxy's copy alone.
        headers.add("b".into(), b"2".to_vec());
        assert_eq!(shared.len(), 1);
        assert_eq!(headers.len(), 2);

        // Once the proxy let go, a write takes the list back without a copy.
        let Some(HeadChange::Replaced(shared)) = headers.share() else {
            panic!("a list is shared whole");
        };
        let address = shared.as_ptr();
        drop(shared);
        assert_eq!(headers.list_mut().as_ptr(), address);
    }
}
