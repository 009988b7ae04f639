//! A stream's header maps as filters see them: as the proxy handed them over
//! (a [`HeaderSource`], read in place) until a filter writes to them or asks
//! for every pair, and from then on as an owned [`HeaderList`].
//!
//! Looking one name up (`proxy_get_header_map_value`, a property) never
//! builds the list; a request whose filters only read a header or two, or
//! none, costs no list at all. When a phase ends with the list changed, the
//! list is shared with the proxy instead of copied (a later write copies
//! it then).

use std::sync::Arc;

use crate::stream::{HeaderList, header_get};

/// Headers the proxy hands to a chain in its own representation. They are
/// read in place; the host builds the list from [`HeaderSource::to_list`]
/// only when a filter writes to the map or asks for all of it.
///
/// Every method must answer exactly as the list from `to_list` would: pairs
/// in order, names lower-case, pseudo headers (`:method`, `:path`,
/// `:authority`, `:scheme`, or `:status`) included.
pub trait HeaderSource: Send + 'static {
    /// How many pairs the list has.
    fn count(&self) -> usize;
    /// The first value of `name` (compared without regard to case), or
    /// `None` when the list has no such pair.
    fn get(&self, name: &str) -> Option<&[u8]>;
    /// Bytes of every name and value (Envoy's `HeaderMap::byteSize`).
    fn byte_size(&self) -> usize;
    /// The pairs in order.
    fn to_list(&self) -> HeaderList;
}

/// One header map of a stream.
pub(crate) enum Headers {
    /// Owned pairs (built, written, or handed over as a list).
    List(HeaderList),
    /// The proxy's headers, not yet built into a list.
    Source(Box<dyn HeaderSource>),
    /// Owned pairs shared with the proxy (see [`Headers::share`]).
    Shared(Arc<HeaderList>),
}

impl Default for Headers {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::List(list) => f.debug_tuple("List").field(list).finish(),
            Self::Source(source) => f.debug_tuple("Source").field(&source.count()).finish(),
            Self::Shared(list) => f.debug_tuple("Shared").field(list).finish(),
        }
    }
}

impl From<HeaderList> for Headers {
    fn from(list: HeaderList) -> Self {
        Self::List(list)
    }
}

impl Headers {
    /// How many pairs the map has.
    pub fn len(&self) -> usize {
        match self {
            Self::List(list) => list.len(),
            Self::Source(source) => source.count(),
            Self::Shared(list) => list.len(),
        }
    }

    /// The first value of `name`, case-insensitively.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        match self {
            Self::List(list) => header_get(list, name),
            Self::Source(source) => source.get(name),
            Self::Shared(list) => header_get(list, name),
        }
    }

    /// Bytes of every name and value.
    pub fn byte_size(&self) -> usize {
        match self {
            Self::List(list) => list.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Self::Shared(list) => list.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Self::Source(source) => source.byte_size(),
        }
    }

    /// The pairs, built from the source once and kept (taken back from
    /// the proxy, or copied when it still holds them).
    pub fn list_mut(&mut self) -> &mut HeaderList {
        match self {
            Self::List(_) => {}
            Self::Source(source) => *self = Self::List(source.to_list()),
            Self::Shared(list) => {
                let list = std::mem::take(list);
                *self =
                    Self::List(Arc::try_unwrap(list).unwrap_or_else(|shared| (*shared).clone()));
            }
        }
        match self {
            Self::List(list) => list,
            Self::Source(_) | Self::Shared(_) => unreachable!("built above"),
        }
    }

    /// A copy of the pairs.
    pub fn to_list(&self) -> HeaderList {
        match self {
            Self::List(list) => list.clone(),
            Self::Source(source) => source.to_list(),
            Self::Shared(list) => (**list).clone(),
        }
    }

    /// The pairs, shared: the map keeps them for later reads and the
    /// caller gets them without a copy.
    pub fn share(&mut self) -> Arc<HeaderList> {
        if let Self::Shared(list) = self {
            return Arc::clone(list);
        }
        let list = Arc::new(std::mem::take(self.list_mut()));
        *self = Self::Shared(Arc::clone(&list));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source over a fixed list, counting how often it was built.
    struct Fixed(HeaderList, std::sync::Arc<std::sync::atomic::AtomicUsize>);

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
        fn to_list(&self) -> HeaderList {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.clone()
        }
    }

    #[test]
    fn lookups_read_the_source_and_a_write_builds_the_list_once() {
        let built = std::sync::Arc::default();
        let list: HeaderList = vec![
            (":status".into(), b"200".to_vec()),
            ("a".into(), b"1".to_vec()),
        ];
        let mut headers =
            Headers::Source(Box::new(Fixed(list.clone(), std::sync::Arc::clone(&built))));
        assert_eq!(headers.get("A"), Some(&b"1"[..]));
        assert_eq!(headers.len(), 2);
        assert_eq!(headers.byte_size(), 7 + 3 + 1 + 1);
        assert_eq!(built.load(std::sync::atomic::Ordering::Relaxed), 0);
        headers.list_mut().push(("b".into(), b"2".to_vec()));
        headers.list_mut().push(("c".into(), b"3".to_vec()));
        assert_eq!(built.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(headers.len(), 4);
        assert_eq!(headers.get("c"), Some(&b"3"[..]));
    }

    #[test]
    fn a_shared_list_is_read_in_place_and_copied_only_by_a_write_while_shared() {
        let mut headers = Headers::List(vec![("a".into(), b"1".to_vec())]);
        let shared = headers.share();
        assert_eq!(shared.as_slice(), &[("a".to_owned(), b"1".to_vec())]);
        assert!(
            Arc::ptr_eq(&shared, &headers.share()),
            "shared again, not copied"
        );
        assert_eq!(headers.get("A"), Some(&b"1"[..]));
        assert_eq!((headers.len(), headers.byte_size()), (1, 2));

        // A write while the proxy holds the list leaves the proxy's copy alone.
        headers.list_mut().push(("b".into(), b"2".to_vec()));
        assert_eq!(shared.len(), 1);
        assert_eq!(headers.len(), 2);

        // Once the proxy let go, a write takes the list back without a copy.
        let shared = headers.share();
        let address = shared.as_ptr();
        drop(shared);
        assert_eq!(headers.list_mut().as_ptr(), address);
    }
}
