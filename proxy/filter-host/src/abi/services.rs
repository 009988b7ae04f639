//! Hostcalls of host services: logging, time, ticks, properties, shared data,
//! shared queues, metrics, and the few calls with nothing to act on.

use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::Caller;
use wasp_abi::{LogLevel, MetricType, Status};

use super::{ENV, HostImports};
use crate::limits;
use crate::memory::{
    CallResult, answer, copy_out, misuse, read, read_str, status, view, write_u32, write_u64,
};
use crate::plugin::PluginCore;
use crate::properties;
use crate::shared::Refused;
use crate::state::{StateValue, VmState};

type C<'a> = Caller<'a, VmState>;

fn log(mut caller: C<'_>, level: u32, ptr: u32, len: u32) -> CallResult {
    const CALL: &str = "proxy_log";
    answer(|| {
        let Ok(level) = LogLevel::try_from(level) else {
            return Err(misuse(&caller, CALL, "log_level", Status::BadArgument).into());
        };
        let message = read(&caller, CALL, "message", ptr, len)?;
        let message = String::from_utf8_lossy(&message);
        caller.data_mut().capture_log(&message);
        let plugin = &*caller.data().core.spec.name;
        match level {
            LogLevel::Trace => tracing::trace!(target: "wasp::filter", plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "wasp::filter", plugin, "{message}"),
            LogLevel::Info => tracing::info!(target: "wasp::filter", plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "wasp::filter", plugin, "{message}"),
            LogLevel::Error => tracing::error!(target: "wasp::filter", plugin, "{message}"),
            // `tracing` has no level above error: a field keeps critical
            // apart (`severity`, since JSON logs already have a `level` key).
            LogLevel::Critical => {
                tracing::error!(target: "wasp::filter", plugin, severity = "critical", "{message}")
            }
        }
        Ok(())
    })
}

/// The most verbose level `tracing` currently lets through.
fn current_log_level() -> LogLevel {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::TRACE => LogLevel::Trace,
        LevelFilter::DEBUG => LogLevel::Debug,
        LevelFilter::INFO => LogLevel::Info,
        LevelFilter::WARN => LogLevel::Warn,
        LevelFilter::ERROR => LogLevel::Error,
        _ => LogLevel::Critical,
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Segments of a property path held without allocating; property paths
/// have a handful.
const INLINE_SEGMENTS: usize = 8;

/// The segments of a property path: inline up to [`INLINE_SEGMENTS`].
enum Segments<'p> {
    /// A path of one segment (a filter state key such as
    /// `telemetry.trace_id`): no array to fill.
    One(&'p str),
    Inline([&'p str; INLINE_SEGMENTS], usize),
    Heap(Vec<&'p str>),
}

impl<'p> std::ops::Deref for Segments<'p> {
    type Target = [&'p str];

    fn deref(&self) -> &[&'p str] {
        match self {
            Self::One(segment) => std::slice::from_ref(segment),
            Self::Inline(segments, n) => &segments[..*n],
            Self::Heap(segments) => segments,
        }
    }
}

/// The UTF-8 segments of a serialized property path.
fn path_segments<'p>(caller: &C<'_>, call: &str, path: &'p [u8]) -> Result<Segments<'p>, Status> {
    split_path(path).ok_or_else(|| misuse(caller, call, "path", Status::BadArgument))
}

/// The segments of a serialized property path, split as
/// `wasp_abi::decode_property_path` splits it; `None` when one is not UTF-8.
/// The path is checked as UTF-8 once, whole (a NUL is one byte of UTF-8,
/// so its pieces are UTF-8 exactly when it is), and cut at its NUL bytes:
/// the host's most frequent hostcall argument. (Paths are a few dozen
/// bytes: a plain scan beats a `str::split` searcher there.)
fn split_path(path: &[u8]) -> Option<Segments<'_>> {
    let trimmed = path.strip_suffix(&[0]).unwrap_or(path);
    if trimmed.is_empty() {
        return Some(Segments::Inline([""; INLINE_SEGMENTS], 0));
    }
    let mut rest = std::str::from_utf8(trimmed).ok()?;
    if !trimmed.contains(&0) {
        return Some(Segments::One(rest));
    }
    let mut inline = [""; INLINE_SEGMENTS];
    let mut n = 0;
    let mut heap: Vec<&str> = Vec::new();
    loop {
        let (segment, more) = match rest.bytes().position(|b| b == 0) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        if n < INLINE_SEGMENTS {
            inline[n] = segment;
            n += 1;
        } else {
            if heap.is_empty() {
                heap.extend_from_slice(&inline);
            }
            heap.push(segment);
        }
        match more {
            Some(more) => rest = more,
            None if heap.is_empty() => return Some(Segments::Inline(inline, n)),
            None => return Some(Segments::Heap(heap)),
        }
    }
}

fn get_property(
    mut caller: C<'_>,
    path_ptr: u32,
    path_len: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> CallResult {
    const CALL: &str = "proxy_get_property";
    answer(|| {
        let path = view(&caller, CALL, "path", path_ptr, path_len)?;
        // A fixed attribute is found by its bytes, without splitting.
        let value = match properties::Attr::of_path(path) {
            Some(attr) => properties::get_attr(caller.data(), attr),
            None => {
                let segments = path_segments(&caller, CALL, path)?;
                properties::get(caller.data(), &segments)
            }
        };
        copy_out(
            &mut caller,
            CALL,
            &value.ok_or(Status::NotFound)?,
            ptr_ptr,
            size_ptr,
        )
    })
}

fn set_property(
    mut caller: C<'_>,
    path_ptr: u32,
    path_len: u32,
    value_ptr: u32,
    value_len: u32,
) -> CallResult {
    const CALL: &str = "proxy_set_property";
    answer(|| {
        let value = StateValue::from_slice(view(&caller, CALL, "value", value_ptr, value_len)?);
        let path = view(&caller, CALL, "path", path_ptr, path_len)?;
        let segments = path_segments(&caller, CALL, path)?;
        if segments.is_empty() {
            return Err(misuse(&caller, CALL, "path (empty)", Status::BadArgument).into());
        }
        if !properties::settable(&segments) {
            let argument = "path (an attribute of the proxy)";
            return Err(misuse(&caller, CALL, argument, Status::BadArgument).into());
        }
        let key = properties::state_key(&segments);
        properties::set(caller.data_mut(), key, value)
            .map_err(|limit| limits::exceeded(&caller.data().core, CALL, limit))?;
        Ok(())
    })
}

/// The status of a refused shared data or queue write (counting a limit).
fn refusal(core: &PluginCore, call: &str, refused: Refused) -> Status {
    match refused {
        Refused::Status(status) => status,
        Refused::Limit(limit) => limits::exceeded(core, call, limit),
    }
}

fn get_shared_data(
    mut caller: C<'_>,
    key_ptr: u32,
    key_len: u32,
    ptr_ptr: u32,
    size_ptr: u32,
    cas_ptr: u32,
) -> CallResult {
    const CALL: &str = "proxy_get_shared_data";
    answer(|| {
        let key = read_str(&caller, CALL, "key", key_ptr, key_len)?;
        let core = caller.data().core.clone();
        let (value, cas) = core
            .services
            .shared_data
            .get(&core.spec.vm_id, &key)
            .ok_or(Status::NotFound)?;
        copy_out(&mut caller, CALL, &value, ptr_ptr, size_ptr)?;
        Ok(write_u32(&mut caller, CALL, "return_cas", cas_ptr, cas)?)
    })
}

fn set_shared_data(
    caller: C<'_>,
    key_ptr: u32,
    key_len: u32,
    value_ptr: u32,
    value_len: u32,
    cas: u32,
) -> CallResult {
    const CALL: &str = "proxy_set_shared_data";
    answer(|| {
        let key = read_str(&caller, CALL, "key", key_ptr, key_len)?;
        let value = read(&caller, CALL, "value", value_ptr, value_len)?;
        let core = &caller.data().core;
        let shared = &core.services.shared_data;
        let max = (
            core.spec.limits.max_shared_data_bytes,
            core.spec.limits.max_shared_data_keys,
        );
        Ok(shared
            .set(&core.spec.vm_id, &key, value, cas, max)
            .map_err(|refused| refusal(core, CALL, refused))?)
    })
}

fn register_queue(mut caller: C<'_>, name_ptr: u32, name_len: u32, id_ptr: u32) -> CallResult {
    const CALL: &str = "proxy_register_shared_queue";
    answer(|| {
        let name = read_str(&caller, CALL, "queue_name", name_ptr, name_len)?;
        let state = caller.data();
        let owner = crate::shared::QueueOwner {
            slot: state.slot.clone(),
            generation: state.generation,
        };
        let queues = &state.core.services.queues;
        let id = queues.register(&state.core.spec.vm_id, &name, owner);
        Ok(write_u32(&mut caller, CALL, "return_queue_id", id_ptr, id)?)
    })
}

fn resolve_queue(
    mut caller: C<'_>,
    vm_ptr: u32,
    vm_len: u32,
    name_ptr: u32,
    name_len: u32,
    id_ptr: u32,
) -> CallResult {
    const CALL: &str = "proxy_resolve_shared_queue";
    answer(|| {
        let vm_id = read_str(&caller, CALL, "vm_id", vm_ptr, vm_len)?;
        let name = read_str(&caller, CALL, "queue_name", name_ptr, name_len)?;
        let queues = &caller.data().core.services.queues;
        let id = queues.resolve(&vm_id, &name).ok_or(Status::NotFound)?;
        Ok(write_u32(&mut caller, CALL, "return_queue_id", id_ptr, id)?)
    })
}

fn enqueue(caller: C<'_>, id: u32, ptr: u32, len: u32) -> CallResult {
    const CALL: &str = "proxy_enqueue_shared_queue";
    answer(|| {
        let value = read(&caller, CALL, "value", ptr, len)?;
        let core = &caller.data().core;
        let max = (
            core.spec.limits.max_queue_depth,
            core.spec.limits.max_queue_bytes,
        );
        Ok(core
            .services
            .queues
            .enqueue(id, value, max)
            .map_err(|refused| refusal(core, CALL, refused))?)
    })
}

fn dequeue(mut caller: C<'_>, id: u32, ptr_ptr: u32, size_ptr: u32) -> CallResult {
    const CALL: &str = "proxy_dequeue_shared_queue";
    answer(|| {
        let queues = &caller.data().core.services.queues;
        let value = queues.dequeue(id)?.ok_or(Status::Empty)?;
        copy_out(&mut caller, CALL, &value, ptr_ptr, size_ptr)
    })
}

fn define_metric(
    mut caller: C<'_>,
    kind: u32,
    name_ptr: u32,
    name_len: u32,
    id_ptr: u32,
) -> CallResult {
    const CALL: &str = "proxy_define_metric";
    answer(|| {
        let Ok(kind) = MetricType::try_from(kind) else {
            return Err(misuse(&caller, CALL, "metric_type", Status::BadArgument).into());
        };
        let name = read_str(&caller, CALL, "name", name_ptr, name_len)?;
        let core = &caller.data().core;
        let id = core.services.metrics.define(kind, &name).map_err(|error| {
            // Rate-limited: a filter building label sets per request would
            // otherwise log one line per request once its family is full.
            if let Some(suppressed) = core.warnings.admit(&format!("{CALL}/{}", error.kind())) {
                tracing::warn!(
                    plugin = %core.spec.name,
                    call = CALL,
                    metric = %name,
                    %error,
                    suppressed,
                    "filter metric not defined"
                );
            }
            error.status()
        })?;
        Ok(write_u32(
            &mut caller,
            CALL,
            "return_metric_id",
            id_ptr,
            id,
        )?)
    })
}

fn get_metric(mut caller: C<'_>, id: u32, value_ptr: u32) -> CallResult {
    const CALL: &str = "proxy_get_metric";
    answer(|| {
        let value = caller.data().core.services.metrics.get(id)?;
        Ok(write_u64(
            &mut caller,
            CALL,
            "return_value",
            value_ptr,
            value,
        )?)
    })
}

fn get_status(mut caller: C<'_>, code_ptr: u32, msg_ptr_ptr: u32, msg_size_ptr: u32) -> CallResult {
    const CALL: &str = "proxy_get_status";
    answer(|| {
        let callout = caller.data().callout.as_ref();
        let (code, message) = callout
            .and_then(|v| v.status.clone())
            .ok_or(Status::NotFound)?;
        write_u32(&mut caller, CALL, "return_status_code", code_ptr, code)?;
        copy_out(
            &mut caller,
            CALL,
            message.as_bytes(),
            msg_ptr_ptr,
            msg_size_ptr,
        )
    })
}

pub(super) fn register(imports: &mut HostImports) -> wasmtime::Result<()> {
    imports.func(ENV, "proxy_log", log)?;
    imports.func(
        ENV,
        "proxy_get_log_level",
        |mut c: C<'_>, ptr: u32| -> CallResult {
            Ok(status(write_u32(
                &mut c,
                "proxy_get_log_level",
                "return_log_level",
                ptr,
                current_log_level() as u32,
            )))
        },
    )?;
    imports.func(
        ENV,
        "proxy_get_current_time_nanoseconds",
        |mut c: C<'_>, ptr: u32| -> CallResult {
            Ok(status(write_u64(
                &mut c,
                "proxy_get_current_time_nanoseconds",
                "return_time",
                ptr,
                now_nanos(),
            )))
        },
    )?;
    imports.func(
        ENV,
        "proxy_set_tick_period_milliseconds",
        |mut c: C<'_>, period: u32| -> CallResult {
            c.data_mut().tick_period_ms = period;
            Ok(Status::Ok as u32)
        },
    )?;
    imports.func(
        ENV,
        "proxy_get_configuration",
        |mut c: C<'_>, ptr_ptr: u32, size_ptr: u32| -> CallResult {
            let config = c.data().core.spec.configuration.clone();
            answer(|| {
                copy_out(
                    &mut c,
                    "proxy_get_configuration",
                    &config,
                    ptr_ptr,
                    size_ptr,
                )
            })
        },
    )?;
    imports.func(ENV, "proxy_get_property", get_property)?;
    imports.func(ENV, "proxy_set_property", set_property)?;
    imports.func(ENV, "proxy_get_shared_data", get_shared_data)?;
    imports.func(ENV, "proxy_set_shared_data", set_shared_data)?;
    imports.func(ENV, "proxy_register_shared_queue", register_queue)?;
    imports.func(ENV, "proxy_resolve_shared_queue", resolve_queue)?;
    imports.func(ENV, "proxy_enqueue_shared_queue", enqueue)?;
    imports.func(ENV, "proxy_dequeue_shared_queue", dequeue)?;
    imports.func(ENV, "proxy_define_metric", define_metric)?;
    imports.func(
        ENV,
        "proxy_increment_metric",
        |c: C<'_>, id: u32, offset: i64| -> CallResult {
            Ok(status(c.data().core.services.metrics.increment(id, offset)))
        },
    )?;
    imports.func(
        ENV,
        "proxy_record_metric",
        |c: C<'_>, id: u32, value: u64| -> CallResult {
            Ok(status(c.data().core.services.metrics.record(id, value)))
        },
    )?;
    imports.func(ENV, "proxy_get_metric", get_metric)?;
    imports.func(ENV, "proxy_get_status", get_status)?;
    imports.func(
        ENV,
        "proxy_call_foreign_function",
        |_: C<'_>, _np: u32, _nl: u32, _ap: u32, _al: u32, _rp: u32, _rs: u32| -> CallResult {
            // No foreign functions are registered: every name is unknown.
            Ok(Status::NotFound as u32)
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_paths_split_as_the_abi_decodes_them_inline_or_not() {
        let long: Vec<String> = (0..INLINE_SEGMENTS + 3).map(|i| format!("s{i}")).collect();
        let long = wasp_abi::encode_property_path(&long);
        for path in [
            &b""[..],
            b"\0",
            b"request\0path",
            b"request\0path\0",
            b"a\0\0b",
            b"node\0metadata\0LABELS\0app",
            &long,
        ] {
            let expected: Vec<&str> = wasp_abi::decode_property_path(path)
                .into_iter()
                .map(|s| std::str::from_utf8(s).unwrap())
                .collect();
            assert_eq!(&*split_path(path).unwrap(), expected.as_slice(), "{path:?}");
        }
        assert!(split_path(b"ok\0\xff").is_none(), "not UTF-8");
    }
}
