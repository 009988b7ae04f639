//! Guest memory access for hostcalls: bounds-checked reads and writes, and
//! copying host bytes into memory the guest allocates.
//!
//! Every failure is an ABI status (`InvalidMemoryAccess`, `BadArgument`), never
//! a host panic; a trap in the guest's allocator propagates as a trap.
//! [`answer`] runs the body of a hostcall, where `?` on either ends the call.

use wasmtime::{Caller, Memory};
use wasp_abi::Status;

use crate::state::VmState;

/// A hostcall's outcome: an ABI status for the guest, or a trap.
pub(crate) type CallResult = wasmtime::Result<u32>;

/// Why a hostcall ends before it succeeds: a status for the guest, or a trap.
///
/// Both convert with `?`: a `Result<_, Status>` ends the call with its status,
/// a `wasmtime::Result` traps.
pub(crate) enum Stop {
    /// The call ends with this status (`NotFound`, `BadArgument`, ...).
    Status(Status),
    /// The guest trapped (in its allocator).
    Trap(wasmtime::Error),
}

impl From<Status> for Stop {
    fn from(status: Status) -> Self {
        Self::Status(status)
    }
}

impl From<wasmtime::Error> for Stop {
    fn from(trap: wasmtime::Error) -> Self {
        Self::Trap(trap)
    }
}

/// The body of a hostcall: `Ok` when it succeeds, or why it stopped.
pub(crate) type Hostcall<T = ()> = Result<T, Stop>;

/// Runs the body of a hostcall and answers the guest: `Ok` when it succeeds,
/// the status it stopped with, or its trap.
pub(crate) fn answer(body: impl FnOnce() -> Hostcall) -> CallResult {
    match body() {
        Ok(()) => Ok(Status::Ok as u32),
        Err(Stop::Status(status)) => Ok(status as u32),
        Err(Stop::Trap(trap)) => Err(trap),
    }
}

/// Counts a misuse of the ABI by the module, logs it (at most once per
/// plugin and call every [`WARN_INTERVAL`](crate::warnings::WARN_INTERVAL),
/// with how many went unlogged) and returns `status` as the result.
pub(crate) fn misuse(
    caller: &Caller<'_, VmState>,
    call: &str,
    argument: &str,
    status: Status,
) -> Status {
    let core = &caller.data().core;
    let plugin = core.spec.name.as_str();
    core.services
        .metrics
        .abi_misuse
        .with_label_values(&[plugin, call])
        .inc();
    if let Some(suppressed) = core.warnings.admit(call) {
        tracing::warn!(
            plugin,
            call,
            argument,
            status = ?status,
            suppressed,
            "filter misused the proxy-wasm ABI"
        );
    }
    status
}

fn memory(caller: &Caller<'_, VmState>) -> Option<Memory> {
    caller.data().memory
}

/// Reads `len` bytes at `ptr`.
pub(crate) fn read(
    caller: &Caller<'_, VmState>,
    call: &str,
    argument: &str,
    ptr: u32,
    len: u32,
) -> Result<Vec<u8>, Status> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let Some(mem) = memory(caller) else {
        return Err(misuse(caller, call, argument, Status::InvalidMemoryAccess));
    };
    let start = ptr as usize;
    let end = start.checked_add(len as usize);
    match end.and_then(|end| mem.data(caller).get(start..end)) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => Err(misuse(caller, call, argument, Status::InvalidMemoryAccess)),
    }
}

/// Reads a UTF-8 string of `len` bytes at `ptr`.
pub(crate) fn read_str(
    caller: &Caller<'_, VmState>,
    call: &str,
    argument: &str,
    ptr: u32,
    len: u32,
) -> Result<String, Status> {
    let bytes = read(caller, call, argument, ptr, len)?;
    String::from_utf8(bytes).map_err(|_| misuse(caller, call, argument, Status::BadArgument))
}

/// Writes `bytes` at `ptr`.
pub(crate) fn write(
    caller: &mut Caller<'_, VmState>,
    call: &str,
    argument: &str,
    ptr: u32,
    bytes: &[u8],
) -> Result<(), Status> {
    let Some(mem) = memory(caller) else {
        return Err(misuse(caller, call, argument, Status::InvalidMemoryAccess));
    };
    if mem.write(&mut *caller, ptr as usize, bytes).is_err() {
        return Err(misuse(caller, call, argument, Status::InvalidMemoryAccess));
    }
    Ok(())
}

/// Writes a little-endian `u32` at `ptr`.
pub(crate) fn write_u32(
    caller: &mut Caller<'_, VmState>,
    call: &str,
    argument: &str,
    ptr: u32,
    value: u32,
) -> Result<(), Status> {
    write(caller, call, argument, ptr, &value.to_le_bytes())
}

/// Writes a little-endian `u64` at `ptr`.
pub(crate) fn write_u64(
    caller: &mut Caller<'_, VmState>,
    call: &str,
    argument: &str,
    ptr: u32,
    value: u64,
) -> Result<(), Status> {
    write(caller, call, argument, ptr, &value.to_le_bytes())
}

/// Copies `bytes` into memory allocated by the guest and stores the pointer
/// at `ptr_ptr` and the size at `size_ptr`. Empty data is reported as a null
/// pointer and size 0 without allocating.
///
/// Stops with a status, or with a trap of the guest's allocator.
pub(crate) fn copy_out(
    caller: &mut Caller<'_, VmState>,
    call: &str,
    bytes: &[u8],
    ptr_ptr: u32,
    size_ptr: u32,
) -> Hostcall {
    if bytes.is_empty() {
        write_u32(caller, call, "return_data", ptr_ptr, 0)?;
        return Ok(write_u32(caller, call, "return_size", size_ptr, 0)?);
    }
    let Ok(len) = u32::try_from(bytes.len()) else {
        return Err(misuse(caller, call, "value size", Status::BadArgument).into());
    };
    // Taken out for the call and put back: a `TypedFunc` clone registers
    // its type again, which costs more than the call.
    let Some(malloc) = caller.data_mut().malloc.take() else {
        return Err(misuse(caller, call, "allocator", Status::InternalFailure).into());
    };
    let called = malloc.call(&mut *caller, len);
    caller.data_mut().malloc = Some(malloc);
    let addr = called?;
    if addr == 0 {
        return Err(misuse(caller, call, "guest allocation", Status::InternalFailure).into());
    }
    write(caller, call, "allocated buffer", addr, bytes)?;
    write_u32(caller, call, "return_data", ptr_ptr, addr)?;
    Ok(write_u32(caller, call, "return_size", size_ptr, len)?)
}

/// Turns a status result into the code returned to the guest.
pub(crate) fn status(result: Result<(), Status>) -> u32 {
    match result {
        Ok(()) => Status::Ok as u32,
        Err(status) => status as u32,
    }
}
