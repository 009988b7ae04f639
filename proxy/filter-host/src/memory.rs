//! Guest memory access for hostcalls: bounds-checked reads and writes, and
//! copying host bytes into memory the guest allocates.
//!
//! Every failure is an ABI status (`InvalidMemoryAccess`, `BadArgument`), never
//! a host panic; a trap in the guest's allocator propagates as a trap.

use wasmtime::{Caller, Memory};
use wasp_abi::Status;

use crate::state::VmState;

/// A hostcall's outcome: an ABI status for the guest, or a trap.
pub(crate) type CallResult = wasmtime::Result<u32>;

/// Logs a misuse of the ABI by the module and returns `status` as the result.
pub(crate) fn misuse(
    caller: &Caller<'_, VmState>,
    call: &str,
    argument: &str,
    status: Status,
) -> Status {
    tracing::warn!(
        plugin = %caller.data().core.spec.name,
        call,
        argument,
        status = ?status,
        "filter misused the proxy-wasm ABI"
    );
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
/// The outer error is a trap of the guest's allocator; the inner one a status.
pub(crate) fn copy_out(
    caller: &mut Caller<'_, VmState>,
    call: &str,
    bytes: &[u8],
    ptr_ptr: u32,
    size_ptr: u32,
) -> wasmtime::Result<Result<(), Status>> {
    if bytes.is_empty() {
        let written = write_u32(caller, call, "return_data", ptr_ptr, 0)
            .and_then(|()| write_u32(caller, call, "return_size", size_ptr, 0));
        return Ok(written);
    }
    let Ok(len) = u32::try_from(bytes.len()) else {
        return Ok(Err(misuse(caller, call, "value size", Status::BadArgument)));
    };
    let Some(malloc) = caller.data().malloc.clone() else {
        return Ok(Err(misuse(
            caller,
            call,
            "allocator",
            Status::InternalFailure,
        )));
    };
    let addr = malloc.call(&mut *caller, len)?;
    if addr == 0 {
        return Ok(Err(misuse(
            caller,
            call,
            "guest allocation",
            Status::InternalFailure,
        )));
    }
    Ok(write(caller, call, "allocated buffer", addr, bytes)
        .and_then(|()| write_u32(caller, call, "return_data", ptr_ptr, addr))
        .and_then(|()| write_u32(caller, call, "return_size", size_ptr, len)))
}

/// Turns a status result into the code returned to the guest.
pub(crate) fn status(result: Result<(), Status>) -> u32 {
    match result {
        Ok(()) => Status::Ok as u32,
        Err(status) => status as u32,
    }
}
