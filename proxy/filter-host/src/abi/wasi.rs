//! The WASI preview 1 subset that filters built for `wasm32-wasip1` import:
//! stdout/stderr go to the log, clocks, randomness, environment (from the
//! plugin's `vm_config.environment`), empty arguments, `proc_exit` (kills the
//! VM), and proper errno answers for files, which filters do not get.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::Caller;

use super::HostImports;
use crate::memory::{read, write, write_u32, write_u64};
use crate::state::VmState;

type C<'a> = Caller<'a, VmState>;

const SUCCESS: u32 = 0;
const EBADF: u32 = 8;
const EFAULT: u32 = 21;
const EINVAL: u32 = 28;
const ENOTSUP: u32 = 58;
const ESPIPE: u32 = 70;
const ENOTCAPABLE: u32 = 76;

/// Bytes of one `fd_write` kept for the log.
const MAX_WRITE: usize = 64 << 10;

/// Maps a memory access status to `EFAULT`.
fn fault<T>(result: Result<T, wasp_abi::Status>) -> Result<T, u32> {
    result.map_err(|_| EFAULT)
}

fn errno(result: Result<(), u32>) -> u32 {
    match result {
        Ok(()) => SUCCESS,
        Err(code) => code,
    }
}

fn fd_write(mut caller: C<'_>, fd: u32, iovs: u32, iovs_len: u32, nwritten_ptr: u32) -> u32 {
    const CALL: &str = "fd_write";
    if fd != 1 && fd != 2 {
        return EBADF;
    }
    errno((|| {
        // Every buffer is checked, but the log keeps at most MAX_WRITE bytes:
        // iovs may all point at the same large buffer.
        let mut text = Vec::new();
        let mut written: u32 = 0;
        for i in 0..iovs_len {
            let at = iovs.wrapping_add(i.wrapping_mul(8));
            let iov = fault(read(&caller, CALL, "iovs", at, 8))?;
            let ptr = u32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
            let len = u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
            let room = MAX_WRITE.saturating_sub(text.len());
            let buffer = fault(read(&caller, CALL, "iov buffer", ptr, len))?;
            text.extend_from_slice(&buffer[..buffer.len().min(room)]);
            written = written.saturating_add(len);
        }
        let message = String::from_utf8_lossy(&text);
        let message = message.trim_end_matches('\n');
        caller.data_mut().capture_log(message);
        let plugin = &*caller.data().core.spec.name;
        if !message.is_empty() {
            if fd == 1 {
                tracing::info!(target: "wasp::filter", plugin, stream = "stdout", "{message}");
            } else {
                tracing::warn!(target: "wasp::filter", plugin, stream = "stderr", "{message}");
            }
        }
        fault(write_u32(
            &mut caller,
            CALL,
            "nwritten",
            nwritten_ptr,
            written,
        ))
    })())
}

/// `NAME=value` strings of the plugin's environment.
fn environment(caller: &C<'_>) -> Vec<Vec<u8>> {
    caller
        .data()
        .core
        .spec
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

fn environ_sizes_get(mut caller: C<'_>, count_ptr: u32, size_ptr: u32) -> u32 {
    let env = environment(&caller);
    let size: usize = env.iter().map(Vec::len).sum();
    errno(fault(
        write_u32(
            &mut caller,
            "environ_sizes_get",
            "count",
            count_ptr,
            env.len() as u32,
        )
        .and_then(|()| {
            write_u32(
                &mut caller,
                "environ_sizes_get",
                "size",
                size_ptr,
                size as u32,
            )
        }),
    ))
}

fn environ_get(mut caller: C<'_>, ptrs: u32, buf: u32) -> u32 {
    let env = environment(&caller);
    errno((|| {
        let mut at = buf;
        for (i, entry) in env.iter().enumerate() {
            fault(write_u32(
                &mut caller,
                "environ_get",
                "environ",
                ptrs + 4 * i as u32,
                at,
            ))?;
            fault(write(&mut caller, "environ_get", "environ_buf", at, entry))?;
            at += entry.len() as u32;
        }
        Ok(())
    })())
}

fn clock_time_get(mut caller: C<'_>, clock: u32, _precision: u64, time_ptr: u32) -> u32 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let now = match clock {
        0 => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        1..=3 => START.get_or_init(Instant::now).elapsed().as_nanos() as u64,
        _ => return EINVAL,
    };
    errno(fault(write_u64(
        &mut caller,
        "clock_time_get",
        "time",
        time_ptr,
        now,
    )))
}

fn random_get(mut caller: C<'_>, buf: u32, len: u32) -> u32 {
    // Reading the range first checks it, so `len` never sizes an
    // allocation larger than the VM's memory.
    let Ok(mut bytes) = read(&caller, "random_get", "buf", buf, len) else {
        return EFAULT;
    };
    fastrand::fill(&mut bytes);
    errno(fault(write(&mut caller, "random_get", "buf", buf, &bytes)))
}

fn fd_fdstat_get(mut caller: C<'_>, fd: u32, stat_ptr: u32) -> u32 {
    if fd > 2 {
        return EBADF;
    }
    // filetype (u8) = character device, flags (u16) = 0, rights base and inheriting (u64).
    let mut stat = [0u8; 24];
    stat[0] = 2;
    let rights: u64 = if fd == 0 { 1 << 1 } else { 1 << 6 };
    stat[8..16].copy_from_slice(&rights.to_le_bytes());
    errno(fault(write(
        &mut caller,
        "fd_fdstat_get",
        "stat",
        stat_ptr,
        &stat,
    )))
}

pub(super) fn register(imports: &mut HostImports, module: &str) -> wasmtime::Result<()> {
    imports.func(module, "fd_write", fd_write)?;
    imports.func(
        module,
        "fd_read",
        |mut c: C<'_>, fd: u32, _iovs: u32, _len: u32, nread: u32| -> u32 {
            if fd != 0 {
                return EBADF;
            }
            errno(fault(write_u32(&mut c, "fd_read", "nread", nread, 0)))
        },
    )?;
    imports.func(module, "fd_close", |_: C<'_>, fd: u32| -> u32 {
        if fd <= 2 { SUCCESS } else { EBADF }
    })?;
    imports.func(
        module,
        "fd_seek",
        |_: C<'_>, fd: u32, _off: i64, _whence: u32, _new: u32| -> u32 {
            if fd <= 2 { ESPIPE } else { EBADF }
        },
    )?;
    imports.func(module, "fd_fdstat_get", fd_fdstat_get)?;
    imports.func(
        module,
        "fd_fdstat_set_flags",
        |_: C<'_>, fd: u32, _flags: u32| -> u32 { if fd <= 2 { ENOTSUP } else { EBADF } },
    )?;
    imports.func(
        module,
        "fd_prestat_get",
        |_: C<'_>, _fd: u32, _ptr: u32| -> u32 { EBADF },
    )?;
    imports.func(
        module,
        "fd_prestat_dir_name",
        |_: C<'_>, _fd: u32, _ptr: u32, _len: u32| -> u32 { EBADF },
    )?;
    imports.func(
        module,
        "fd_filestat_get",
        |_: C<'_>, _fd: u32, _ptr: u32| -> u32 { EBADF },
    )?;
    imports.func(
        module,
        "fd_readdir",
        |_: C<'_>, _fd: u32, _b: u32, _l: u32, _c: u64, _r: u32| -> u32 { EBADF },
    )?;
    imports.func(
        module,
        "path_open",
        |_: C<'_>,
         _fd: u32,
         _df: u32,
         _p: u32,
         _pl: u32,
         _of: u32,
         _rb: u64,
         _ri: u64,
         _ff: u32,
         _r: u32|
         -> u32 { ENOTCAPABLE },
    )?;
    imports.func(
        module,
        "path_filestat_get",
        |_: C<'_>, _fd: u32, _f: u32, _p: u32, _pl: u32, _r: u32| -> u32 { ENOTCAPABLE },
    )?;
    imports.func(module, "environ_sizes_get", environ_sizes_get)?;
    imports.func(module, "environ_get", environ_get)?;
    imports.func(
        module,
        "args_sizes_get",
        |mut c: C<'_>, count: u32, size: u32| -> u32 {
            errno(fault(
                write_u32(&mut c, "args_sizes_get", "count", count, 0)
                    .and_then(|()| write_u32(&mut c, "args_sizes_get", "size", size, 0)),
            ))
        },
    )?;
    imports.func(
        module,
        "args_get",
        |_: C<'_>, _argv: u32, _buf: u32| -> u32 { SUCCESS },
    )?;
    imports.func(module, "clock_time_get", clock_time_get)?;
    imports.func(
        module,
        "clock_res_get",
        |mut c: C<'_>, clock: u32, ptr: u32| -> u32 {
            if clock > 3 {
                return EINVAL;
            }
            errno(fault(write_u64(
                &mut c,
                "clock_res_get",
                "resolution",
                ptr,
                1_000,
            )))
        },
    )?;
    imports.func(module, "random_get", random_get)?;
    imports.func(module, "sched_yield", |_: C<'_>| -> u32 { SUCCESS })?;
    imports.func(
        module,
        "poll_oneoff",
        |_: C<'_>, _i: u32, _o: u32, _n: u32, _r: u32| -> u32 { ENOTSUP },
    )?;
    imports.func(
        module,
        "proc_exit",
        |c: C<'_>, code: u32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!(
                "plugin `{}` called proc_exit({code})",
                c.data().core.spec.name
            )))
        },
    )?;
    Ok(())
}
