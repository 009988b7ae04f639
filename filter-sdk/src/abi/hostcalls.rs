//! Safe wrappers over the raw host functions: they pass Rust slices in, take
//! host-allocated buffers back, and turn status codes into [`Error`]s.
//! `NotFound` and `Empty` become `None` where absence is an ordinary answer.

use super::memory::take;
use super::raw;
use crate::error::{Error, Result, check};
use crate::snapshot::HeaderSnapshot;
use wasp_abi::{BufferType, LogLevel, MapType, MetricType, Status, StreamType};

/// A header map as the SDK hands it out: names and values as strings.
pub type Pairs = Vec<(String, String)>;

fn not_found_is_none<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if matches!(e.status(), Some(Status::NotFound | Status::Empty)) => Ok(None),
        Err(e) => Err(e),
    }
}

use super::text::lossy;

/// Writes a message to the host log.
pub fn log(level: LogLevel, message: &str) -> Result<()> {
    // SAFETY: the pointer/length pair describes a live slice for the call's duration.
    check("proxy_log", unsafe {
        raw::proxy_log(level as u32, message.as_ptr(), message.len())
    })
}

/// The host's current log level.
pub fn log_level() -> Result<LogLevel> {
    let mut level = 0u32;
    // SAFETY: `level` is a valid out-pointer.
    check("proxy_get_log_level", unsafe {
        raw::proxy_get_log_level(&mut level)
    })?;
    Ok(LogLevel::try_from(level).unwrap_or(LogLevel::Trace))
}

/// The host's wall clock in nanoseconds since the Unix epoch.
pub fn current_time_nanos() -> Result<u64> {
    let mut now = 0u64;
    // SAFETY: `now` is a valid out-pointer.
    check("proxy_get_current_time_nanoseconds", unsafe {
        raw::proxy_get_current_time_nanoseconds(&mut now)
    })?;
    Ok(now)
}

/// Sets the calling root context's tick period (0 stops ticks).
pub fn set_tick_period_ms(period: u32) -> Result<()> {
    // SAFETY: no pointers.
    check("proxy_set_tick_period_milliseconds", unsafe {
        raw::proxy_set_tick_period_milliseconds(period)
    })
}

/// Makes `context_id` the context later host calls act on.
pub fn set_effective_context(context_id: u32) -> Result<()> {
    // SAFETY: no pointers.
    check("proxy_set_effective_context", unsafe {
        raw::proxy_set_effective_context(context_id)
    })
}

/// Reads up to `max` bytes of a buffer from `start`; `None` when the buffer does not exist.
pub fn get_buffer(buffer: BufferType, start: usize, max: usize) -> Result<Option<Vec<u8>>> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: out-pointers are valid; the returned buffer is taken once.
    let code =
        unsafe { raw::proxy_get_buffer_bytes(buffer as u32, start, max, &mut data, &mut size) };
    not_found_is_none(check("proxy_get_buffer_bytes", code).map(|()| unsafe { take(data, size) }))
}

/// Replaces `size` bytes of a buffer from `start` with `bytes`.
pub fn set_buffer(buffer: BufferType, start: usize, size: usize, bytes: &[u8]) -> Result<()> {
    // SAFETY: the slice is live for the call.
    check("proxy_set_buffer_bytes", unsafe {
        raw::proxy_set_buffer_bytes(buffer as u32, start, size, bytes.as_ptr(), bytes.len())
    })
}

/// The serialized pairs of a header map (`None`: the map does not exist).
fn get_map_bytes(map: MapType) -> Result<Option<Vec<u8>>> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: out-pointers are valid; the returned buffer is taken once.
    let code = unsafe { raw::proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    not_found_is_none(
        check("proxy_get_header_map_pairs", code).map(|()| unsafe { take(data, size) }),
    )
}

fn decode_map(bytes: &[u8]) -> Result<wasp_abi::MapPairs<'_>> {
    wasp_abi::decode_map(bytes).map_err(|source| Error::BadMap {
        call: "proxy_get_header_map_pairs",
        source,
    })
}

/// All pairs of a header map.
pub fn get_map(map: MapType) -> Result<Pairs> {
    let Some(bytes) = get_map_bytes(map)? else {
        return Ok(Vec::new());
    };
    Ok(decode_map(&bytes)?
        .into_iter()
        .map(|(k, v)| (lossy(k.to_vec()), lossy(v.to_vec())))
        .collect())
}

/// All pairs of a header map, as one indexed copy.
pub fn get_map_snapshot(map: MapType) -> Result<HeaderSnapshot> {
    let Some(bytes) = get_map_bytes(map)? else {
        return Ok(HeaderSnapshot::default());
    };
    HeaderSnapshot::from_encoded(bytes).map_err(|source| Error::BadMap {
        call: "proxy_get_header_map_pairs",
        source,
    })
}

/// Replaces a whole header map.
pub fn set_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(map: MapType, pairs: &[(K, V)]) -> Result<()> {
    let bytes = wasp_abi::encode_map(pairs);
    // SAFETY: the slice is live for the call.
    check("proxy_set_header_map_pairs", unsafe {
        raw::proxy_set_header_map_pairs(map as u32, bytes.as_ptr(), bytes.len())
    })
}

/// One header's value; `None` when absent.
pub fn get_map_value(map: MapType, key: &str) -> Result<Option<String>> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: the key slice is live, out-pointers valid, the buffer taken once.
    let code = unsafe {
        raw::proxy_get_header_map_value(map as u32, key.as_ptr(), key.len(), &mut data, &mut size)
    };
    not_found_is_none(
        check("proxy_get_header_map_value", code).map(|()| lossy(unsafe { take(data, size) })),
    )
}

/// Adds a value to a header (keeping existing values).
pub fn add_map_value(map: MapType, key: &str, value: &str) -> Result<()> {
    // SAFETY: both slices are live for the call.
    check("proxy_add_header_map_value", unsafe {
        raw::proxy_add_header_map_value(
            map as u32,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Sets a header to one value (replacing existing values).
pub fn replace_map_value(map: MapType, key: &str, value: &str) -> Result<()> {
    // SAFETY: both slices are live for the call.
    check("proxy_replace_header_map_value", unsafe {
        raw::proxy_replace_header_map_value(
            map as u32,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Removes every value of a header.
pub fn remove_map_value(map: MapType, key: &str) -> Result<()> {
    // SAFETY: the slice is live for the call.
    check("proxy_remove_header_map_value", unsafe {
        raw::proxy_remove_header_map_value(map as u32, key.as_ptr(), key.len())
    })
}

/// A property's raw value; `None` when the host does not know it.
pub fn get_property(path: &[u8]) -> Result<Option<Vec<u8>>> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: the path slice is live, out-pointers valid, the buffer taken once.
    let code = unsafe { raw::proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    not_found_is_none(check("proxy_get_property", code).map(|()| unsafe { take(data, size) }))
}

/// Sets a property.
pub fn set_property(path: &[u8], value: &[u8]) -> Result<()> {
    // SAFETY: both slices are live for the call.
    check("proxy_set_property", unsafe {
        raw::proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len())
    })
}

/// Resumes a paused stream.
pub fn continue_stream(stream: StreamType) -> Result<()> {
    // SAFETY: no pointers.
    check("proxy_continue_stream", unsafe {
        raw::proxy_continue_stream(stream as u32)
    })
}

/// Closes a stream.
pub fn close_stream(stream: StreamType) -> Result<()> {
    // SAFETY: no pointers.
    check("proxy_close_stream", unsafe {
        raw::proxy_close_stream(stream as u32)
    })
}

/// Sends a local reply instead of the upstream's response.
pub fn send_local_response(
    status: u32,
    details: &str,
    body: &[u8],
    headers: &[(String, String)],
    grpc_status: Option<i32>,
) -> Result<()> {
    let headers = wasp_abi::encode_map(headers);
    // SAFETY: every slice is live for the call.
    check("proxy_send_local_response", unsafe {
        raw::proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            grpc_status.unwrap_or(-1),
        )
    })
}

/// Dispatches an HTTP callout; returns its token.
pub fn http_call(
    upstream: &str,
    headers: &[(String, String)],
    body: &[u8],
    trailers: &[(String, String)],
    timeout_ms: u32,
) -> Result<u32> {
    let headers = wasp_abi::encode_map(headers);
    let trailers = wasp_abi::encode_map(trailers);
    let mut token = 0u32;
    // SAFETY: every slice is live for the call; `token` is a valid out-pointer.
    check("proxy_http_call", unsafe {
        raw::proxy_http_call(
            upstream.as_ptr(),
            upstream.len(),
            headers.as_ptr(),
            headers.len(),
            body.as_ptr(),
            body.len(),
            trailers.as_ptr(),
            trailers.len(),
            timeout_ms,
            &mut token,
        )
    })?;
    Ok(token)
}

/// Dispatches a unary gRPC callout; returns its token.
pub fn grpc_call(
    upstream: &str,
    service: &str,
    method: &str,
    metadata: &[(String, String)],
    message: &[u8],
    timeout_ms: u32,
) -> Result<u32> {
    let metadata = wasp_abi::encode_map(metadata);
    let mut token = 0u32;
    // SAFETY: every slice is live for the call; `token` is a valid out-pointer.
    check("proxy_grpc_call", unsafe {
        raw::proxy_grpc_call(
            upstream.as_ptr(),
            upstream.len(),
            service.as_ptr(),
            service.len(),
            method.as_ptr(),
            method.len(),
            metadata.as_ptr(),
            metadata.len(),
            message.as_ptr(),
            message.len(),
            timeout_ms,
            &mut token,
        )
    })?;
    Ok(token)
}

/// Cancels a gRPC callout.
pub fn grpc_cancel(token: u32) -> Result<()> {
    // SAFETY: no pointers.
    check("proxy_grpc_cancel", unsafe {
        raw::proxy_grpc_cancel(token)
    })
}

/// The status code and message of the last gRPC close (`proxy_get_status`).
pub fn get_status() -> Result<(u32, String)> {
    let (mut code, mut data, mut size) = (0u32, std::ptr::null_mut(), 0usize);
    // SAFETY: out-pointers are valid; the buffer is taken once.
    check("proxy_get_status", unsafe {
        raw::proxy_get_status(&mut code, &mut data, &mut size)
    })?;
    Ok((code, lossy(unsafe { take(data, size) })))
}

/// A shared-data value and its CAS version; `None` when the key is unset.
pub fn get_shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>> {
    let (mut data, mut size, mut cas) = (std::ptr::null_mut(), 0usize, 0u32);
    // SAFETY: the key is live, out-pointers valid, the buffer taken once.
    let code = unsafe {
        raw::proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas)
    };
    not_found_is_none(
        check("proxy_get_shared_data", code).map(|()| (unsafe { take(data, size) }, cas)),
    )
}

/// Writes shared data; `cas` 0 writes unconditionally.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<()> {
    // SAFETY: both slices are live for the call.
    check("proxy_set_shared_data", unsafe {
        raw::proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

/// Registers (or finds) a shared queue owned by this VM; returns its id.
pub fn register_shared_queue(name: &str) -> Result<u32> {
    let mut id = 0u32;
    // SAFETY: the name is live; `id` is a valid out-pointer.
    check("proxy_register_shared_queue", unsafe {
        raw::proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id)
    })?;
    Ok(id)
}

/// Finds a queue registered by the VM `vm_id`; `None` when there is none.
pub fn resolve_shared_queue(vm_id: &str, name: &str) -> Result<Option<u32>> {
    let mut id = 0u32;
    // SAFETY: both slices are live; `id` is a valid out-pointer.
    let code = unsafe {
        raw::proxy_resolve_shared_queue(
            vm_id.as_ptr(),
            vm_id.len(),
            name.as_ptr(),
            name.len(),
            &mut id,
        )
    };
    not_found_is_none(check("proxy_resolve_shared_queue", code).map(|()| id))
}

/// Appends a message to a shared queue.
pub fn enqueue_shared_queue(queue_id: u32, value: &[u8]) -> Result<()> {
    // SAFETY: the slice is live for the call.
    check("proxy_enqueue_shared_queue", unsafe {
        raw::proxy_enqueue_shared_queue(queue_id, value.as_ptr(), value.len())
    })
}

/// Takes the oldest message of a shared queue; `None` when it is empty.
pub fn dequeue_shared_queue(queue_id: u32) -> Result<Option<Vec<u8>>> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: out-pointers are valid; the buffer is taken once.
    let code = unsafe { raw::proxy_dequeue_shared_queue(queue_id, &mut data, &mut size) };
    not_found_is_none(
        check("proxy_dequeue_shared_queue", code).map(|()| unsafe { take(data, size) }),
    )
}

/// Defines a metric; returns its id.
pub fn define_metric(kind: MetricType, name: &str) -> Result<u32> {
    let mut id = 0u32;
    // SAFETY: the name is live; `id` is a valid out-pointer.
    check("proxy_define_metric", unsafe {
        raw::proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id)
    })?;
    Ok(id)
}

/// Adds `offset` to a counter or gauge.
pub fn increment_metric(id: u32, offset: i64) -> Result<()> {
    // SAFETY: no pointers.
    check("proxy_increment_metric", unsafe {
        raw::proxy_increment_metric(id, offset)
    })
}

/// Sets a gauge or records a histogram sample.
pub fn record_metric(id: u32, value: u64) -> Result<()> {
    // SAFETY: no pointers.
    check("proxy_record_metric", unsafe {
        raw::proxy_record_metric(id, value)
    })
}

/// A metric's current value.
pub fn get_metric(id: u32) -> Result<u64> {
    let mut value = 0u64;
    // SAFETY: `value` is a valid out-pointer.
    check("proxy_get_metric", unsafe {
        raw::proxy_get_metric(id, &mut value)
    })?;
    Ok(value)
}
