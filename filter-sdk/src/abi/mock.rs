//! The mock host's side of the ABI (native targets): the `proxy_*` host
//! functions with the exact signatures of the wasm imports, served from this
//! thread's [`MockState`](crate::testing::state::MockState) (see
//! [`crate::testing`]). Data flows back the way a real host returns it: into
//! buffers obtained from the SDK's own allocator. Buffer writes follow
//! Envoy's rules (replace from 0, prepend, append only).
#![allow(clippy::missing_safety_doc, clippy::too_many_arguments)]

use super::memory::allocate;
use crate::testing::state::{
    GrpcCallRecord, HttpCallRecord, LocalReply, MetricRecord, Queue, with,
};
use std::time::Duration;
use wasp_abi::{LogLevel, MetricType, Status, StreamType};

const OK: u32 = Status::Ok as u32;
const NOT_FOUND: u32 = Status::NotFound as u32;
const BAD_ARGUMENT: u32 = Status::BadArgument as u32;
const EMPTY: u32 = Status::Empty as u32;
const CAS_MISMATCH: u32 = Status::CasMismatch as u32;

unsafe fn slice<'a>(data: *const u8, size: usize) -> &'a [u8] {
    if data.is_null() || size == 0 {
        return &[];
    }
    // SAFETY: the SDK passes pointers to live slices of `size` bytes.
    unsafe { std::slice::from_raw_parts(data, size) }
}

unsafe fn text(data: *const u8, size: usize) -> String {
    String::from_utf8_lossy(unsafe { slice(data, size) }).into_owned()
}

unsafe fn give(bytes: &[u8], out_data: *mut *mut u8, out_size: *mut usize) {
    let buffer = allocate(bytes.len());
    // SAFETY: `buffer` has `bytes.len()` bytes; the out-pointers are valid.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer, bytes.len());
        *out_data = buffer;
        *out_size = bytes.len();
    }
}

unsafe fn decode(data: *const u8, size: usize) -> Option<Vec<(String, String)>> {
    let pairs = wasp_abi::decode_map(unsafe { slice(data, size) }).ok()?;
    Some(
        pairs
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect(),
    )
}

pub unsafe fn proxy_log(level: u32, data: *const u8, size: usize) -> u32 {
    let Ok(level) = LogLevel::try_from(level) else {
        return BAD_ARGUMENT;
    };
    let message = unsafe { text(data, size) };
    with(|m| m.logs.push((level, message)));
    OK
}

pub unsafe fn proxy_get_log_level(out: *mut u32) -> u32 {
    let level = with(|m| m.log_level.unwrap_or(LogLevel::Trace));
    unsafe { *out = level as u32 };
    OK
}

pub unsafe fn proxy_get_current_time_nanoseconds(out: *mut u64) -> u32 {
    unsafe { *out = with(|m| m.now_ns) };
    OK
}

pub unsafe fn proxy_set_tick_period_milliseconds(period: u32) -> u32 {
    with(|m| {
        let root = m.root_of(m.effective);
        m.tick_ms.insert(root, period);
        let next = m.now_ns + u64::from(period) * 1_000_000;
        m.next_tick_ns.insert(root, next);
    });
    OK
}

pub unsafe fn proxy_set_effective_context(id: u32) -> u32 {
    with(|m| m.effective = id);
    OK
}

pub unsafe fn proxy_get_buffer_bytes(
    buffer: u32,
    start: usize,
    max: usize,
    out_data: *mut *mut u8,
    out_size: *mut usize,
) -> u32 {
    let bytes = with(|m| {
        let key = m.buffer_key(buffer);
        m.buffers.get(&key).map(|b| {
            let from = start.min(b.len());
            let to = from.saturating_add(max).min(b.len());
            b[from..to].to_vec()
        })
    });
    match bytes {
        Some(bytes) => {
            unsafe { give(&bytes, out_data, out_size) };
            OK
        }
        None => NOT_FOUND,
    }
}

pub unsafe fn proxy_set_buffer_bytes(
    buffer: u32,
    start: usize,
    size: usize,
    data: *const u8,
    data_size: usize,
) -> u32 {
    let bytes = unsafe { slice(data, data_size) }.to_vec();
    with(|m| {
        let key = m.buffer_key(buffer);
        let current = m.buffers.entry(key).or_default();
        let len = current.len();
        if start == 0 && size == 0 {
            current.splice(0..0, bytes);
        } else if start == 0 && size >= len {
            *current = bytes;
        } else if start >= len {
            current.extend_from_slice(&bytes);
        } else {
            return BAD_ARGUMENT;
        }
        OK
    })
}

pub unsafe fn proxy_get_header_map_pairs(
    map: u32,
    out_data: *mut *mut u8,
    out_size: *mut usize,
) -> u32 {
    let pairs = with(|m| m.maps.get(&m.map_key(map)).cloned().unwrap_or_default());
    unsafe { give(&wasp_abi::encode_map(&pairs), out_data, out_size) };
    OK
}

pub unsafe fn proxy_set_header_map_pairs(map: u32, data: *const u8, size: usize) -> u32 {
    let Some(pairs) = (unsafe { decode(data, size) }) else {
        return BAD_ARGUMENT;
    };
    with(|m| {
        let key = m.map_key(map);
        m.maps.insert(key, pairs)
    });
    OK
}

pub unsafe fn proxy_get_header_map_value(
    map: u32,
    key: *const u8,
    key_size: usize,
    out_data: *mut *mut u8,
    out_size: *mut usize,
) -> u32 {
    let name = unsafe { text(key, key_size) };
    let value = with(|m| {
        m.maps.get(&m.map_key(map)).and_then(|pairs| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v.clone())
        })
    });
    match value {
        Some(value) => {
            unsafe { give(value.as_bytes(), out_data, out_size) };
            OK
        }
        None => NOT_FOUND,
    }
}

fn edit_map(map: u32, edit: impl FnOnce(&mut Vec<(String, String)>)) -> u32 {
    with(|m| {
        let key = m.map_key(map);
        edit(m.maps.entry(key).or_default());
    });
    OK
}

pub unsafe fn proxy_add_header_map_value(
    map: u32,
    key: *const u8,
    key_size: usize,
    value: *const u8,
    value_size: usize,
) -> u32 {
    let (name, value) = unsafe { (text(key, key_size), text(value, value_size)) };
    edit_map(map, |pairs| pairs.push((name, value)))
}

pub unsafe fn proxy_replace_header_map_value(
    map: u32,
    key: *const u8,
    key_size: usize,
    value: *const u8,
    value_size: usize,
) -> u32 {
    let (name, value) = unsafe { (text(key, key_size), text(value, value_size)) };
    edit_map(map, |pairs| {
        match pairs
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(&name))
        {
            Some(at) => {
                pairs[at].1 = value;
                let mut index = 0;
                pairs.retain(|(k, _)| {
                    index += 1;
                    index - 1 == at || !k.eq_ignore_ascii_case(&name)
                });
            }
            None => pairs.push((name, value)),
        }
    })
}

pub unsafe fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32 {
    let name = unsafe { text(key, key_size) };
    edit_map(map, |pairs| {
        pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(&name))
    })
}

fn property_key(path: &[u8]) -> Vec<String> {
    wasp_abi::decode_property_path(path)
        .into_iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

pub unsafe fn proxy_get_property(
    path: *const u8,
    path_size: usize,
    out_data: *mut *mut u8,
    out_size: *mut usize,
) -> u32 {
    let key = property_key(unsafe { slice(path, path_size) });
    match with(|m| m.properties.get(&key).cloned()) {
        Some(value) => {
            unsafe { give(&value, out_data, out_size) };
            OK
        }
        None => NOT_FOUND,
    }
}

pub unsafe fn proxy_set_property(
    path: *const u8,
    path_size: usize,
    value: *const u8,
    value_size: usize,
) -> u32 {
    let key = property_key(unsafe { slice(path, path_size) });
    let value = unsafe { slice(value, value_size) }.to_vec();
    with(|m| m.properties.insert(key, value));
    OK
}

pub unsafe fn proxy_continue_stream(stream: u32) -> u32 {
    let Ok(stream) = StreamType::try_from(stream) else {
        return BAD_ARGUMENT;
    };
    with(|m| m.continued.push((m.effective, stream)));
    OK
}

pub unsafe fn proxy_close_stream(stream: u32) -> u32 {
    let Ok(stream) = StreamType::try_from(stream) else {
        return BAD_ARGUMENT;
    };
    with(|m| m.closed.push((m.effective, stream)));
    OK
}

pub unsafe fn proxy_send_local_response(
    status: u32,
    details: *const u8,
    details_size: usize,
    body: *const u8,
    body_size: usize,
    headers: *const u8,
    headers_size: usize,
    grpc_status: i32,
) -> u32 {
    let Some(headers) = (unsafe { decode(headers, headers_size) }) else {
        return BAD_ARGUMENT;
    };
    let reply = LocalReply {
        status,
        details: unsafe { text(details, details_size) },
        headers,
        body: unsafe { slice(body, body_size) }.to_vec(),
        grpc_status: (grpc_status >= 0).then_some(grpc_status),
    };
    with(|m| m.local_replies.insert(m.effective, reply));
    OK
}

fn next_token() -> u32 {
    with(|m| {
        m.next_token += 1;
        m.next_token
    })
}

pub unsafe fn proxy_http_call(
    upstream: *const u8,
    upstream_size: usize,
    headers: *const u8,
    headers_size: usize,
    body: *const u8,
    body_size: usize,
    trailers: *const u8,
    trailers_size: usize,
    timeout_ms: u32,
    out_token: *mut u32,
) -> u32 {
    let (Some(headers), Some(trailers)) = (unsafe { decode(headers, headers_size) }, unsafe {
        decode(trailers, trailers_size)
    }) else {
        return BAD_ARGUMENT;
    };
    let cluster = unsafe { text(upstream, upstream_size) };
    if cluster.is_empty() {
        return BAD_ARGUMENT;
    }
    let token = next_token();
    let record = HttpCallRecord {
        token,
        context_id: with(|m| m.effective),
        cluster,
        headers,
        body: unsafe { slice(body, body_size) }.to_vec(),
        trailers,
        timeout: Duration::from_millis(u64::from(timeout_ms)),
    };
    with(|m| m.http_calls.push(record));
    unsafe { *out_token = token };
    OK
}

pub unsafe fn proxy_grpc_call(
    upstream: *const u8,
    upstream_size: usize,
    service: *const u8,
    service_size: usize,
    method: *const u8,
    method_size: usize,
    metadata: *const u8,
    metadata_size: usize,
    message: *const u8,
    message_size: usize,
    timeout_ms: u32,
    out_token: *mut u32,
) -> u32 {
    let Some(metadata) = (unsafe { decode(metadata, metadata_size) }) else {
        return BAD_ARGUMENT;
    };
    let token = next_token();
    let record = GrpcCallRecord {
        token,
        context_id: with(|m| m.effective),
        cluster: unsafe { text(upstream, upstream_size) },
        service: unsafe { text(service, service_size) },
        method: unsafe { text(method, method_size) },
        metadata,
        message: unsafe { slice(message, message_size) }.to_vec(),
        timeout: Duration::from_millis(u64::from(timeout_ms)),
    };
    with(|m| m.grpc_calls.push(record));
    unsafe { *out_token = token };
    OK
}

pub unsafe fn proxy_grpc_cancel(token: u32) -> u32 {
    with(|m| m.cancelled_grpc.push(token));
    OK
}

pub unsafe fn proxy_get_status(
    out_code: *mut u32,
    out_data: *mut *mut u8,
    out_size: *mut usize,
) -> u32 {
    let (code, message) = with(|m| m.grpc_status.clone());
    unsafe {
        *out_code = code;
        give(message.as_bytes(), out_data, out_size);
    }
    OK
}

pub unsafe fn proxy_get_shared_data(
    key: *const u8,
    key_size: usize,
    out_data: *mut *mut u8,
    out_size: *mut usize,
    out_cas: *mut u32,
) -> u32 {
    let key = unsafe { text(key, key_size) };
    match with(|m| m.shared.get(&key).cloned()) {
        Some((value, cas)) => {
            unsafe {
                give(&value, out_data, out_size);
                *out_cas = cas;
            }
            OK
        }
        None => NOT_FOUND,
    }
}

pub unsafe fn proxy_set_shared_data(
    key: *const u8,
    key_size: usize,
    value: *const u8,
    value_size: usize,
    cas: u32,
) -> u32 {
    let key = unsafe { text(key, key_size) };
    let value = unsafe { slice(value, value_size) }.to_vec();
    with(|m| {
        let version = m.shared.get(&key).map(|(_, v)| *v).unwrap_or(0);
        if cas != 0 && cas != version {
            return CAS_MISMATCH;
        }
        m.shared.insert(key, (value, version + 1));
        OK
    })
}

pub unsafe fn proxy_register_shared_queue(
    name: *const u8,
    name_size: usize,
    out_id: *mut u32,
) -> u32 {
    let name = unsafe { text(name, name_size) };
    let id = with(|m| {
        if let Some(at) = m.queues.iter().position(|q| q.name == name) {
            return at as u32 + 1;
        }
        let owner_root = m.root_of(m.effective);
        m.queues.push(Queue {
            name,
            owner_root,
            messages: Default::default(),
        });
        m.queues.len() as u32
    });
    unsafe { *out_id = id };
    OK
}

pub unsafe fn proxy_resolve_shared_queue(
    _vm_id: *const u8,
    _vm_id_size: usize,
    name: *const u8,
    name_size: usize,
    out_id: *mut u32,
) -> u32 {
    let name = unsafe { text(name, name_size) };
    match with(|m| m.queues.iter().position(|q| q.name == name)) {
        Some(at) => {
            unsafe { *out_id = at as u32 + 1 };
            OK
        }
        None => NOT_FOUND,
    }
}

pub unsafe fn proxy_enqueue_shared_queue(id: u32, value: *const u8, value_size: usize) -> u32 {
    let value = unsafe { slice(value, value_size) }.to_vec();
    with(|m| {
        let Some(queue) = m.queues.get_mut((id as usize).wrapping_sub(1)) else {
            return NOT_FOUND;
        };
        queue.messages.push_back(value);
        let owner = queue.owner_root;
        m.queue_ready.push_back((owner, id));
        OK
    })
}

pub unsafe fn proxy_dequeue_shared_queue(
    id: u32,
    out_data: *mut *mut u8,
    out_size: *mut usize,
) -> u32 {
    let message = with(|m| {
        m.queues
            .get_mut((id as usize).wrapping_sub(1))
            .map(|q| q.messages.pop_front())
    });
    match message {
        None => NOT_FOUND,
        Some(None) => EMPTY,
        Some(Some(bytes)) => {
            unsafe { give(&bytes, out_data, out_size) };
            OK
        }
    }
}

pub unsafe fn proxy_define_metric(
    kind: u32,
    name: *const u8,
    name_size: usize,
    out_id: *mut u32,
) -> u32 {
    let Ok(kind) = MetricType::try_from(kind) else {
        return BAD_ARGUMENT;
    };
    let name = unsafe { text(name, name_size) };
    let id = with(|m| {
        if let Some(at) = m
            .metrics
            .iter()
            .position(|r| r.name == name && r.kind == kind)
        {
            return at as u32 + 1;
        }
        m.metrics.push(MetricRecord {
            kind,
            name,
            value: 0,
            samples: Vec::new(),
        });
        m.metrics.len() as u32
    });
    unsafe { *out_id = id };
    OK
}

fn edit_metric(id: u32, edit: impl FnOnce(&mut MetricRecord) -> u32) -> u32 {
    with(|m| match m.metrics.get_mut((id as usize).wrapping_sub(1)) {
        Some(metric) => edit(metric),
        None => NOT_FOUND,
    })
}

pub unsafe fn proxy_increment_metric(id: u32, offset: i64) -> u32 {
    edit_metric(id, |metric| match metric.kind {
        MetricType::Counter if offset < 0 => BAD_ARGUMENT,
        MetricType::Histogram => BAD_ARGUMENT,
        _ => {
            metric.value += offset;
            OK
        }
    })
}

pub unsafe fn proxy_record_metric(id: u32, value: u64) -> u32 {
    // As Envoy and wasp: a counter adds the value, a gauge is set to it.
    edit_metric(id, |metric| {
        let value_i64 = i64::try_from(value).unwrap_or(i64::MAX);
        match metric.kind {
            MetricType::Counter => metric.value = metric.value.saturating_add(value_i64),
            MetricType::Gauge => metric.value = value_i64,
            MetricType::Histogram => {
                metric.value = value_i64;
                metric.samples.push(value);
            }
        }
        OK
    })
}

pub unsafe fn proxy_get_metric(id: u32, out: *mut u64) -> u32 {
    let value = with(|m| {
        m.metrics
            .get((id as usize).wrapping_sub(1))
            .map(|metric| metric.value.max(0) as u64)
    });
    match value {
        Some(value) => {
            unsafe { *out = value };
            OK
        }
        None => NOT_FOUND,
    }
}
