//! [`PropertyBatch`]: several properties read in one host call. wasp
//! answers the path `wasp.properties.<path>.<path>…` (each further segment
//! one dotted property path) in the ABI's map encoding, one pair per path
//! in order (named by the path with its value when wasp knows it, empty
//! when not); other hosts answer `NotFound`, and the batch then
//! reads its properties one call each (and remembers not to ask again).
//! A filter that reads several properties per request (telemetry reads
//! seven when a request ends) saves a host call, a guest allocation and a
//! copy per property.

use std::cell::Cell;

use crate::abi::hostcalls;
use crate::properties::PropertyPath;

thread_local! {
    /// Whether the host answers batches: unknown until the first read.
    static HOST_BATCHES: Cell<Option<bool>> = const { Cell::new(None) };
}

/// A fixed list of properties read together; make it once (at
/// configuration or as a `static`) and [`read`](PropertyBatch::read) it per
/// request.
#[derive(Debug, Clone)]
pub struct PropertyBatch {
    /// `wasp\0properties\0<dotted path>\0…`.
    encoded: Vec<u8>,
    /// Each path encoded on its own, for hosts without batches.
    single: Vec<PropertyPath<'static>>,
}

/// The values a [`PropertyBatch`] read, by the index of their path.
#[derive(Debug, Clone, Default)]
pub struct PropertyValues {
    /// The host's answer (batch) or the values back to back (one by one).
    bytes: Vec<u8>,
    /// Per path: its value's range in `bytes`, or `None` when missing.
    ranges: Vec<Option<(u32, u32)>>,
}

impl PropertyBatch {
    /// A batch of `paths`, each given by its segments, e.g.
    /// `&[&["response", "code"], &["request", "duration"]]`.
    ///
    /// # Panics
    /// When a segment is empty or has a `.` or a NUL in it: the host splits
    /// each path at its dots (such paths are read with `property` one by
    /// one instead).
    pub fn new(paths: &[&[&str]]) -> PropertyBatch {
        let mut encoded = b"wasp\0properties".to_vec();
        let mut single = Vec::with_capacity(paths.len());
        for path in paths {
            for segment in *path {
                assert!(
                    !segment.is_empty() && !segment.contains(['.', '\0']),
                    "property batch: segment {segment:?} of {path:?} is empty or has a dot or a NUL"
                );
            }
            let joined = path.join(".");
            encoded.push(0);
            encoded.extend_from_slice(joined.as_bytes());
            single.push(PropertyPath::new(path));
        }
        PropertyBatch { encoded, single }
    }

    /// Reads every property of the batch (failures are logged and read as
    /// missing).
    pub fn read(&self) -> PropertyValues {
        if HOST_BATCHES.get() != Some(false) {
            match hostcalls::get_property(&self.encoded) {
                Ok(Some(answer)) => {
                    HOST_BATCHES.set(Some(true));
                    if let Some(values) = self.matched(answer) {
                        return values;
                    }
                    crate::log::log(
                        wasp_abi::LogLevel::Warn,
                        format_args!("property batch: the host's answer is not a map"),
                    );
                }
                // `NotFound`, or any other refusal: one call each from now on.
                Ok(None) => HOST_BATCHES.set(Some(false)),
                Err(e) => {
                    crate::log::report(&e);
                    HOST_BATCHES.set(Some(false));
                }
            }
        }
        self.one_by_one()
    }

    /// The host's answer matched to the paths: one pair per path, in the
    /// batch's order, named by the path when the host knows it and empty
    /// when not (so no name is compared here).
    fn matched(&self, answer: Vec<u8>) -> Option<PropertyValues> {
        let mut ranges = Vec::with_capacity(self.single.len());
        wasp_abi::decode_map_ranges(&answer, |name, value| {
            ranges.push((!name.is_empty()).then_some((value.start as u32, value.end as u32)));
        })
        .ok()?;
        (ranges.len() == self.single.len()).then_some(PropertyValues {
            bytes: answer,
            ranges,
        })
    }

    /// Every property read with a call of its own.
    fn one_by_one(&self) -> PropertyValues {
        let mut values = PropertyValues::default();
        for path in &self.single {
            let value = hostcalls::get_property(path.encoded()).unwrap_or_else(|e| {
                crate::log::report(&e);
                None
            });
            values.ranges.push(value.map(|value| {
                let start = values.bytes.len() as u32;
                values.bytes.extend_from_slice(&value);
                (start, values.bytes.len() as u32)
            }));
        }
        values
    }
}

impl PropertyValues {
    /// The raw value of the batch's `index`-th path, or `None` when the
    /// host does not know it.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let (start, end) = (*self.ranges.get(index)?)?;
        self.bytes.get(start as usize..end as usize)
    }

    /// The `index`-th value as an integer (8 bytes little-endian).
    pub fn u64(&self, index: usize) -> Option<u64> {
        let bytes: [u8; 8] = self.get(index)?.try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    }

    /// The `index`-th value as text (invalid UTF-8 replaced).
    pub fn string(&self, index: usize) -> Option<String> {
        self.get(index)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// Makes the mock host report `value` at `path`.
    fn host_has(path: &[&str], value: &[u8]) {
        let key = path.iter().map(|s| s.to_string()).collect();
        crate::testing::state::with(|m| m.properties.insert(key, value.to_vec()));
    }

    fn batch() -> PropertyBatch {
        PropertyBatch::new(&[
            &["response", "code"],
            &["connection", "mtls"],
            &["telemetry_id"],
            &["request", "duration"],
        ])
    }

    #[test]
    fn a_host_without_batches_is_read_one_property_at_a_time() {
        HOST_BATCHES.set(None);
        host_has(&["response", "code"], &200u64.to_le_bytes());
        host_has(&["request", "duration"], &7u64.to_le_bytes());
        host_has(&["telemetry_id"], b"");
        let values = batch().read();
        assert_eq!(values.u64(0), Some(200));
        assert_eq!(values.get(1), None, "missing");
        assert_eq!(values.get(2), Some(&b""[..]), "empty is not missing");
        assert_eq!(values.u64(3), Some(7));
        assert_eq!(values.get(4), None, "past the batch");
        assert_eq!(
            HOST_BATCHES.get(),
            Some(false),
            "the host's answer is remembered"
        );
    }

    #[test]
    fn a_batching_hosts_answer_is_matched_to_the_paths_in_order() {
        HOST_BATCHES.set(None);
        // What wasp answers: a pair per path, in order, empty when unknown.
        let answer = wasp_abi::encode_map(&[
            (&b"response.code"[..], &200u64.to_le_bytes()[..]),
            (b"", b""),
            (b"telemetry_id", b"abc"),
            (b"request.duration", &9u64.to_le_bytes()),
        ]);
        host_has(
            &[
                "wasp",
                "properties",
                "response.code",
                "connection.mtls",
                "telemetry_id",
                "request.duration",
            ],
            &answer,
        );
        // Single reads would give other values: the batch did not use them.
        host_has(&["response", "code"], &500u64.to_le_bytes());
        let values = batch().read();
        assert_eq!(values.u64(0), Some(200));
        assert_eq!(values.get(1), None);
        assert_eq!(values.string(2).as_deref(), Some("abc"));
        assert_eq!(values.u64(3), Some(9));
        assert_eq!(HOST_BATCHES.get(), Some(true));
    }

    #[test]
    fn an_answer_without_a_pair_per_path_is_not_trusted() {
        HOST_BATCHES.set(None);
        let paths = [
            "wasp",
            "properties",
            "response.code",
            "connection.mtls",
            "telemetry_id",
            "request.duration",
        ];
        host_has(
            &paths,
            &wasp_abi::encode_map(&[(&b"response.code"[..], &[1u8; 8][..])]),
        );
        host_has(&["response", "code"], &404u64.to_le_bytes());
        let values = batch().read();
        assert_eq!(values.u64(0), Some(404), "read on its own instead");
        assert_eq!(values.get(3), None);
    }

    #[test]
    #[should_panic(expected = "has a dot")]
    fn a_dotted_segment_is_refused() {
        let _ = PropertyBatch::new(&[&["request", "headers", "x.y"]]);
    }
}
