//! Hostcalls of the HTTP stream: header maps, body buffers, local replies and
//! stream control (continue, close, effective context).

use std::sync::Arc;

use wasmtime::Caller;
use wasp_abi::{BufferType, MapType, Status, StreamType, decode_map};

use super::{ENV, HostImports};
use crate::headers::Headers;
use crate::limits::{self, Limit};
use crate::memory::{CallResult, answer, copy_out, misuse, read, read_str, write_u32};
use crate::state::VmState;
use crate::stream::{HeaderList, LocalReply};

type C<'a> = Caller<'a, VmState>;

/// Whether a map operation may change the map.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Runs `f` on the header map `map_type` of the effective context. A write
/// to the stream's request or response headers is noted, so that the proxy
/// takes the headers back only when a filter changed them.
fn map_op<R>(
    caller: &mut C<'_>,
    call: &str,
    map_type: u32,
    access: Access,
    f: impl FnOnce(&mut Headers) -> R,
) -> Result<R, Status> {
    let Ok(kind) = MapType::try_from(map_type) else {
        return Err(misuse(caller, call, "map_type", Status::BadArgument));
    };
    match kind {
        MapType::HttpRequestHeaders
        | MapType::HttpRequestTrailers
        | MapType::HttpResponseHeaders
        | MapType::HttpResponseTrailers => {
            let Some(binding) = caller.data().stream() else {
                return Err(Status::NotFound);
            };
            let mut data = binding.lock();
            if access == Access::Write {
                let changed = match kind {
                    MapType::HttpRequestHeaders => Some(0),
                    MapType::HttpResponseHeaders => Some(1),
                    _ => None,
                };
                if let Some(dir) = changed {
                    data.headers_changed[dir] = true;
                    binding.stream.note_header_write();
                }
            }
            let headers = match kind {
                MapType::HttpRequestHeaders => &mut data.request_headers,
                MapType::HttpRequestTrailers => &mut data.request_trailers,
                MapType::HttpResponseHeaders => &mut data.response_headers,
                _ => &mut data.response_trailers,
            };
            Ok(f(headers))
        }
        MapType::HttpCallResponseHeaders | MapType::GrpcReceiveInitialMetadata => {
            match caller.data_mut().callout.as_mut() {
                Some(view) => Ok(on_list(&mut view.headers, f)),
                None => Err(Status::NotFound),
            }
        }
        MapType::HttpCallResponseTrailers | MapType::GrpcReceiveTrailingMetadata => {
            match caller.data_mut().callout.as_mut() {
                Some(view) => Ok(on_list(&mut view.trailers, f)),
                None => Err(Status::NotFound),
            }
        }
    }
}

/// Runs `f` on a plain list as on a stream's header map.
fn on_list<R>(list: &mut HeaderList, f: impl FnOnce(&mut Headers) -> R) -> R {
    let mut headers = Headers::from(std::mem::take(list));
    let result = f(&mut headers);
    *list = std::mem::take(headers.list_mut());
    result
}

/// Runs `f` on the buffer `buffer_type` of the effective context. Read-only
/// buffers are passed as a copy whose changes are dropped.
fn buffer_op<R>(
    caller: &mut C<'_>,
    call: &str,
    buffer_type: u32,
    writable: bool,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> Result<R, Status> {
    let Ok(kind) = BufferType::try_from(buffer_type) else {
        return Err(misuse(caller, call, "buffer_type", Status::BadArgument));
    };
    match kind {
        BufferType::HttpRequestBody | BufferType::HttpResponseBody => {
            let Some(binding) = caller.data().stream() else {
                return Err(Status::NotFound);
            };
            let mut data = binding.lock();
            Ok(match kind {
                BufferType::HttpRequestBody => f(&mut data.request_body),
                _ => f(&mut data.response_body),
            })
        }
        BufferType::HttpCallResponseBody | BufferType::GrpcReceiveBuffer => {
            match caller.data_mut().callout.as_mut() {
                Some(view) => Ok(f(&mut view.body)),
                None => Err(Status::NotFound),
            }
        }
        BufferType::VmConfiguration | BufferType::PluginConfiguration => {
            if writable {
                return Err(misuse(caller, call, "buffer_type", Status::BadArgument));
            }
            let core = &caller.data().core;
            let mut copy = if kind == BufferType::VmConfiguration {
                core.spec.vm_configuration.to_vec()
            } else {
                core.spec.configuration.to_vec()
            };
            Ok(f(&mut copy))
        }
        BufferType::DownstreamData | BufferType::UpstreamData | BufferType::CallData => {
            Err(Status::NotFound)
        }
    }
}

/// Decodes a serialized map argument into owned pairs with lower-case names.
pub(crate) fn read_map(
    caller: &C<'_>,
    call: &str,
    argument: &str,
    ptr: u32,
    len: u32,
) -> Result<HeaderList, Status> {
    let bytes = read(caller, call, argument, ptr, len)?;
    let pairs =
        decode_map(&bytes).map_err(|_| misuse(caller, call, argument, Status::BadArgument))?;
    let mut out = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        let Ok(name) = std::str::from_utf8(k) else {
            return Err(misuse(caller, call, argument, Status::BadArgument));
        };
        out.push((name.to_ascii_lowercase(), v.to_vec()));
    }
    Ok(out)
}

fn get_map_pairs(mut caller: C<'_>, map_type: u32, ptr_ptr: u32, size_ptr: u32) -> CallResult {
    const CALL: &str = "proxy_get_header_map_pairs";
    answer(|| {
        let encoded = map_op(&mut caller, CALL, map_type, Access::Read, |headers| {
            headers.encode()
        })?;
        copy_out(&mut caller, CALL, &encoded, ptr_ptr, size_ptr)
    })
}

fn set_map_pairs(mut caller: C<'_>, map_type: u32, ptr: u32, len: u32) -> CallResult {
    const CALL: &str = "proxy_set_header_map_pairs";
    answer(|| {
        let pairs = read_map(&caller, CALL, "map_data", ptr, len)?;
        let core = Arc::clone(&caller.data().core);
        map_op(&mut caller, CALL, map_type, Access::Write, |headers| {
            limits::check_headers(&core, headers.size(), &pairs)?;
            *headers = Headers::from(pairs);
            Ok(())
        })?
        .map_err(|limit| limits::exceeded(&core, CALL, limit))?;
        Ok(())
    })
}

fn get_map_value(
    mut caller: C<'_>,
    map_type: u32,
    key_ptr: u32,
    key_len: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> CallResult {
    const CALL: &str = "proxy_get_header_map_value";
    answer(|| {
        let key = read_str(&caller, CALL, "key", key_ptr, key_len)?;
        // A missing header is `NotFound` (what current SDKs expect); an empty
        // one is `Ok` with no data.
        let value = map_op(&mut caller, CALL, map_type, Access::Read, |headers| {
            headers.get(&key).map(<[u8]>::to_vec)
        })?
        .ok_or(Status::NotFound)?;
        copy_out(&mut caller, CALL, &value, ptr_ptr, size_ptr)
    })
}

/// How `proxy_add/replace/remove_header_map_value` change a map.
#[derive(Clone, Copy)]
enum Edit {
    Add,
    Replace,
}

fn edit_map_value(
    mut caller: C<'_>,
    call: &str,
    edit: Edit,
    args: (u32, u32, u32, u32, u32),
) -> CallResult {
    let (map_type, key_ptr, key_len, value_ptr, value_len) = args;
    answer(|| {
        let key = read_str(&caller, call, "key", key_ptr, key_len)?;
        let value = read(&caller, call, "value", value_ptr, value_len)?;
        let core = Arc::clone(&caller.data().core);
        map_op(&mut caller, call, map_type, Access::Write, |headers| {
            let (bytes, count) = headers.size();
            let added = key.len() + value.len();
            match edit {
                Edit::Add => {
                    limits::check_size(&core, (bytes, count), (bytes + added, count + 1))?;
                    headers.add(key, value);
                }
                Edit::Replace => {
                    // Sized once, for the check and for the edit.
                    let named = headers.named_size(&key);
                    let (gone_bytes, gone) = named.total();
                    let after = (bytes - gone_bytes + added, count - gone + 1);
                    limits::check_size(&core, (bytes, count), after)?;
                    headers.replace_named(key, value, named);
                }
            }
            Ok(())
        })?
        .map_err(|limit| limits::exceeded(&core, call, limit))?;
        Ok(())
    })
}

fn remove_map_value(mut caller: C<'_>, map_type: u32, key_ptr: u32, key_len: u32) -> CallResult {
    const CALL: &str = "proxy_remove_header_map_value";
    answer(|| {
        let key = read_str(&caller, CALL, "key", key_ptr, key_len)?;
        Ok(map_op(
            &mut caller,
            CALL,
            map_type,
            Access::Write,
            |headers| headers.remove(&key),
        )?)
    })
}

fn get_map_size(mut caller: C<'_>, map_type: u32, size_ptr: u32) -> CallResult {
    const CALL: &str = "proxy_get_header_map_size";
    answer(|| {
        // The ABI's encoding: a count, two lengths per pair, every name and
        // value with a NUL after it.
        let size = map_op(&mut caller, CALL, map_type, Access::Read, |headers| {
            4 + 10 * headers.len() + headers.byte_size()
        })?;
        Ok(write_u32(
            &mut caller,
            CALL,
            "return_size",
            size_ptr,
            size as u32,
        )?)
    })
}

fn get_buffer_bytes(
    mut caller: C<'_>,
    buffer_type: u32,
    start: u32,
    max_size: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> CallResult {
    const CALL: &str = "proxy_get_buffer_bytes";
    answer(|| {
        // Sizes are clamped to the buffer: SDKs ask for `usize::MAX` bytes.
        let bytes = buffer_op(&mut caller, CALL, buffer_type, false, |buf| {
            let start = (start as usize).min(buf.len());
            let end = start.saturating_add(max_size as usize).min(buf.len());
            buf[start..end].to_vec()
        })?;
        copy_out(&mut caller, CALL, &bytes, ptr_ptr, size_ptr)
    })
}

fn get_buffer_status(
    mut caller: C<'_>,
    buffer_type: u32,
    size_ptr: u32,
    flags_ptr: u32,
) -> CallResult {
    const CALL: &str = "proxy_get_buffer_status";
    answer(|| {
        let len = buffer_op(&mut caller, CALL, buffer_type, false, |buf| buf.len())?;
        write_u32(
            &mut caller,
            CALL,
            "return_buffer_size",
            size_ptr,
            len as u32,
        )?;
        Ok(write_u32(&mut caller, CALL, "return_flags", flags_ptr, 0)?)
    })
}

fn set_buffer_bytes(
    mut caller: C<'_>,
    buffer_type: u32,
    start: u32,
    size: u32,
    data_ptr: u32,
    data_len: u32,
) -> CallResult {
    const CALL: &str = "proxy_set_buffer_bytes";
    answer(|| {
        let data = read(&caller, CALL, "buffer_data", data_ptr, data_len)?;
        // Replaces bytes [start, start + size) (clamped): (0, len) replaces
        // all, (0, 0) prepends, (len, 0) appends.
        let core = Arc::clone(&caller.data().core);
        let max = core.spec.limits.max_buffered_body_bytes;
        buffer_op(&mut caller, CALL, buffer_type, true, |buf| {
            let start = (start as usize).min(buf.len());
            let end = start.saturating_add(size as usize).min(buf.len());
            let after = buf.len() - (end - start) + data.len();
            if limits::grows_past(buf.len() as u64, after as u64, max) {
                return Err(Limit::BufferedBodyBytes);
            }
            buf.splice(start..end, data);
            Ok(())
        })?
        .map_err(|limit| limits::exceeded(&core, CALL, limit))?;
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
fn send_local_response(
    caller: C<'_>,
    status_code: u32,
    details_ptr: u32,
    details_len: u32,
    body_ptr: u32,
    body_len: u32,
    headers_ptr: u32,
    headers_len: u32,
    grpc_status: i32,
) -> CallResult {
    const CALL: &str = "proxy_send_local_response";
    answer(|| {
        if !(200..=599).contains(&status_code) {
            return Err(misuse(&caller, CALL, "status_code", Status::BadArgument).into());
        }
        let details = read(
            &caller,
            CALL,
            "status_code_details",
            details_ptr,
            details_len,
        )?;
        let reply = LocalReply {
            status: status_code as u16,
            details: String::from_utf8_lossy(&details).into_owned(),
            body: read(&caller, CALL, "body", body_ptr, body_len)?.into(),
            headers: read_map(&caller, CALL, "headers", headers_ptr, headers_len)?,
            grpc_status: u32::try_from(grpc_status).ok(),
        };
        let Some(binding) = caller.data().stream() else {
            let argument = "context (not an HTTP stream)";
            return Err(misuse(&caller, CALL, argument, Status::BadArgument).into());
        };
        binding.stream.set_reply(reply);
        binding.signal().notify.notify_one();
        Ok(())
    })
}

/// What `proxy_continue_stream` / `proxy_close_stream` do.
#[derive(Clone, Copy)]
enum Control {
    Continue,
    Close,
}

fn stream_control(caller: &C<'_>, call: &str, stream_type: u32, control: Control) -> u32 {
    let Ok(kind) = StreamType::try_from(stream_type) else {
        return misuse(caller, call, "stream_type", Status::BadArgument) as u32;
    };
    let Some(binding) = caller.data().stream() else {
        return misuse(
            caller,
            call,
            "context (not an HTTP stream)",
            Status::NotFound,
        ) as u32;
    };
    let signal = binding.signal();
    match (control, kind) {
        (Control::Continue, StreamType::HttpRequest) => signal.set(&signal.request),
        (Control::Continue, StreamType::HttpResponse) => signal.set(&signal.response),
        (Control::Close, StreamType::HttpRequest | StreamType::HttpResponse) => {
            signal.set(&signal.closed)
        }
        _ => {
            return misuse(
                caller,
                call,
                "stream_type (TCP streams are not served)",
                Status::BadArgument,
            ) as u32;
        }
    }
    Status::Ok as u32
}

fn set_effective_context(mut caller: C<'_>, context: u32) -> CallResult {
    let state = caller.data_mut();
    if context == state.root_context || state.streams.contains_key(&context) {
        state.effective_context = context;
        return Ok(Status::Ok as u32);
    }
    Ok(misuse(
        &caller,
        "proxy_set_effective_context",
        "context_id",
        Status::BadArgument,
    ) as u32)
}

pub(super) fn register(imports: &mut HostImports) -> wasmtime::Result<()> {
    imports.func(ENV, "proxy_get_header_map_pairs", get_map_pairs)?;
    imports.func(ENV, "proxy_set_header_map_pairs", set_map_pairs)?;
    imports.func(ENV, "proxy_get_header_map_value", get_map_value)?;
    imports.func(
        ENV,
        "proxy_add_header_map_value",
        |c: C<'_>, t: u32, kp: u32, kl: u32, vp: u32, vl: u32| {
            edit_map_value(
                c,
                "proxy_add_header_map_value",
                Edit::Add,
                (t, kp, kl, vp, vl),
            )
        },
    )?;
    imports.func(
        ENV,
        "proxy_replace_header_map_value",
        |c: C<'_>, t: u32, kp: u32, kl: u32, vp: u32, vl: u32| {
            edit_map_value(
                c,
                "proxy_replace_header_map_value",
                Edit::Replace,
                (t, kp, kl, vp, vl),
            )
        },
    )?;
    imports.func(ENV, "proxy_remove_header_map_value", remove_map_value)?;
    imports.func(ENV, "proxy_get_header_map_size", get_map_size)?;
    imports.func(ENV, "proxy_get_buffer_bytes", get_buffer_bytes)?;
    imports.func(ENV, "proxy_get_buffer_status", get_buffer_status)?;
    imports.func(ENV, "proxy_set_buffer_bytes", set_buffer_bytes)?;
    imports.func(ENV, "proxy_send_local_response", send_local_response)?;
    imports.func(
        ENV,
        "proxy_continue_stream",
        |c: C<'_>, t: u32| -> CallResult {
            Ok(stream_control(
                &c,
                "proxy_continue_stream",
                t,
                Control::Continue,
            ))
        },
    )?;
    imports.func(
        ENV,
        "proxy_close_stream",
        |c: C<'_>, t: u32| -> CallResult {
            Ok(stream_control(&c, "proxy_close_stream", t, Control::Close))
        },
    )?;
    // ABI 0.1.0 names still imported by SDKs.
    imports.func(ENV, "proxy_continue_request", |c: C<'_>| -> CallResult {
        Ok(stream_control(
            &c,
            "proxy_continue_request",
            StreamType::HttpRequest as u32,
            Control::Continue,
        ))
    })?;
    imports.func(ENV, "proxy_continue_response", |c: C<'_>| -> CallResult {
        Ok(stream_control(
            &c,
            "proxy_continue_response",
            StreamType::HttpResponse as u32,
            Control::Continue,
        ))
    })?;
    imports.func(ENV, "proxy_clear_route_cache", |_: C<'_>| -> CallResult {
        // Routing happens before the chain runs; there is no cached route to clear.
        Ok(Status::Ok as u32)
    })?;
    imports.func(ENV, "proxy_set_effective_context", set_effective_context)?;
    imports.func(ENV, "proxy_done", |c: C<'_>| -> CallResult {
        // Root contexts are torn down with their VM; accept the request.
        let _ = c;
        Ok(Status::Ok as u32)
    })?;
    Ok(())
}
