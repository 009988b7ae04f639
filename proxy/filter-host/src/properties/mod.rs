//! Properties (`proxy_get_property` / `proxy_set_property`): Envoy's
//! attributes — request, response, source, destination, connection (with TLS
//! peer identity), upstream, xds, plugin and node facts — and filter state
//! set by filters of the same stream.
//!
//! Names, presence and encodings follow Envoy's Wasm host: strings as bytes,
//! integers, durations (nanoseconds) and timestamps (nanoseconds since the
//! epoch) as 8-byte little-endian, booleans as one byte, messages as
//! serialized protobuf. What Envoy answers with an empty value, wasp does
//! too (`request.query` without a query string); what Envoy does not know
//! yet in a phase is missing (`upstream.*` before the request is forwarded).
//! Stream attributes live in `stream.rs` of this folder.

mod attrs;
mod stream;

pub(crate) use attrs::Attr;

#[cfg(test)]
mod tests;

use crate::limits::Limit;

use crate::state::{StateKey, StateMap, StateValue, VmState};

/// `xds.listener_direction`: Envoy's `UNSPECIFIED` (wasp's listeners have
/// no direction yet).
const LISTENER_DIRECTION: i64 = 0;

/// A property's value: bytes, a short value of filter state, or a number
/// kept inline in Envoy's encoding (8 bytes, little-endian), so that
/// reading a number or most filter state allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// A string, message or flag.
    Bytes(Vec<u8>),
    /// A value of filter state (inline when short).
    State(StateValue),
    /// A number.
    Int([u8; 8]),
}

impl std::ops::Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Bytes(bytes) => bytes,
            Self::State(value) => value,
            Self::Int(number) => number,
        }
    }
}

fn int(value: i64) -> Value {
    Value::Int(value.to_le_bytes())
}

/// Calls `f` with `path`'s segments joined with `.`, the key of filter
/// state (the form filters publish under); joined on the stack unless the
/// key is long.
fn with_joined<R>(path: &[&str], f: impl FnOnce(&str) -> R) -> R {
    if let [one] = path {
        return f(one);
    }
    let len = path.iter().map(|s| s.len()).sum::<usize>() + path.len().saturating_sub(1);
    let mut buf = [0u8; 256];
    if len > buf.len() {
        return f(&path.join("."));
    }
    let mut at = 0;
    for (i, segment) in path.iter().enumerate() {
        if i > 0 {
            buf[at] = b'.';
            at += 1;
        }
        buf[at..at + segment.len()].copy_from_slice(segment.as_bytes());
        at += segment.len();
    }
    f(std::str::from_utf8(&buf[..len]).expect("segments and dots are UTF-8"))
}

/// The value filter state holds under `path`.
fn state_value(map: &StateMap, path: &[&str]) -> Option<Value> {
    if map.is_empty() {
        return None;
    }
    with_joined(path, |key| {
        map.get(key.as_bytes()).cloned().map(Value::State)
    })
}

/// Looks a property up for the effective context of `state`.
pub(crate) fn get(state: &VmState, segs: &[&str]) -> Option<Value> {
    let spec = &state.core.spec;
    let node = &state.node;
    match segs {
        ["plugin_name"] => return Some(Value::Bytes(spec.name.as_bytes().to_vec())),
        ["plugin_root_id"] => return Some(Value::Bytes(spec.root_id.as_bytes().to_vec())),
        ["plugin_vm_id"] => return Some(Value::Bytes(spec.vm_id.as_bytes().to_vec())),
        ["node", "id"] => return Some(Value::Bytes(node.id.as_bytes().to_vec())),
        ["node", "cluster"] => return Some(Value::Bytes(node.cluster.as_bytes().to_vec())),
        ["node", "metadata", key] => {
            return node.metadata_value(key).map(|v| Value::Bytes(v.into()));
        }
        ["node", "metadata", "LABELS", key] => {
            return node.label_value(key).map(|v| Value::Bytes(v.into()));
        }
        ["xds", "node"] => return Some(Value::Bytes(node.to_protobuf())),
        ["xds", "node", "id"] => return Some(Value::Bytes(node.id.as_bytes().to_vec())),
        ["xds", "node", "cluster"] => return Some(Value::Bytes(node.cluster.as_bytes().to_vec())),
        ["xds", "node", "metadata", key] => {
            return node.metadata_value(key).map(|v| Value::Bytes(v.into()));
        }
        ["xds", "node", "metadata", "LABELS", key] => {
            return node.label_value(key).map(|v| Value::Bytes(v.into()));
        }
        ["xds", "listener_direction"] => return Some(int(LISTENER_DIRECTION)),
        _ => {}
    }
    let Some(binding) = state.stream() else {
        return if stream::owned(segs) {
            None
        } else {
            state_value(&state.root_state, segs)
        };
    };
    let data = binding.lock();
    match stream::property(&data, segs) {
        Some(value) => Some(value),
        None if stream::owned(segs) => None,
        None => state_value(&data.filter_state, segs),
    }
}

/// A fixed stream attribute for the effective context of `state` (none
/// outside a stream: the proxy's attributes never come from filter state).
pub(crate) fn get_attr(state: &VmState, attr: Attr) -> Option<Value> {
    let binding = state.stream()?;
    stream::attribute(&binding.lock(), attr)
}

/// Whether a filter may set the property at `path` (its segments; the
/// key is the segments joined with `.`): not when it names one of the
/// proxy's own attributes, in either the segmented or the dotted form.
#[allow(
    clippy::manual_pattern_char_comparison,
    reason = "a predicate splits short paths in fewer instructions than a `char` pattern's searcher"
)]
pub(crate) fn settable(path: &[&str]) -> bool {
    let mut segs = [""; 8];
    let mut n = 0;
    // The dotted form's segments: each segment split at its dots. A
    // predicate, not a `char` pattern: paths are short, and a plain loop
    // over them is cheaper than the pattern's searcher.
    for segment in path.iter().flat_map(|s| s.split(|c: char| c == '.')) {
        if n == segs.len() {
            break;
        }
        segs[n] = segment;
        n += 1;
    }
    !stream::owned(&segs[..n])
}

/// The filter state key of `path`: its segments joined with `.`.
pub(crate) fn state_key(path: &[&str]) -> StateKey {
    with_joined(path, |key| StateKey::from_slice(key.as_bytes()))
}

/// Stores a property set by the filter: in the stream's filter state (seen by
/// later filters of the same stream) or, outside a stream, in the VM.
pub(crate) fn set(state: &mut VmState, path: StateKey, value: StateValue) -> Result<(), Limit> {
    let max = state.core.spec.limits.max_property_bytes;
    let store = |map: &mut StateMap| map.set(path, value, max);
    match state.stream() {
        Some(binding) => {
            let mut data = binding.lock();
            store(&mut data.filter_state)
        }
        None => store(&mut state.root_state),
    }
}
