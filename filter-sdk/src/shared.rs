//! State shared between the VMs of a host: key/value shared data with
//! compare-and-swap versions, and shared message queues.

use crate::abi::hostcalls;
use crate::error::Result;

/// A shared-data value and the version to pass back for a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedValue {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// The value's version (CAS token).
    pub cas: u32,
}

/// Reads shared data; `Ok(None)` when `key` is unset.
pub fn get(key: &str) -> Result<Option<SharedValue>> {
    Ok(hostcalls::get_shared_data(key)?.map(|(value, cas)| SharedValue { value, cas }))
}

/// Writes shared data. With `cas: Some(version)` the write only succeeds if
/// the stored value still has that version; otherwise it fails with an error
/// for which [`crate::Error::is_cas_mismatch`] is true. `None` writes unconditionally.
pub fn set(key: &str, value: &[u8], cas: Option<u32>) -> Result<()> {
    hostcalls::set_shared_data(key, value, cas.unwrap_or(0))
}

/// Read-modify-write with compare-and-swap, retried up to `attempts` times
/// when another writer got in between. Returns the value written.
pub fn update(
    key: &str,
    attempts: usize,
    mut change: impl FnMut(Option<&[u8]>) -> Vec<u8>,
) -> Result<Vec<u8>> {
    let mut last_error = None;
    for _ in 0..attempts.max(1) {
        let current = get(key)?;
        let next = change(current.as_ref().map(|c| c.value.as_slice()));
        // Version 0 is "unconditional" on the wire; a fresh key has no version to compare.
        let cas = current.as_ref().map(|c| c.cas).filter(|cas| *cas != 0);
        match set(key, &next, cas) {
            Ok(()) => return Ok(next),
            Err(e) if e.is_cas_mismatch() => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.expect("at least one attempt ran"))
}

/// Adds `delta` to a little-endian `u64` counter in shared data, atomically
/// with compare-and-swap. Returns the new value.
pub fn increment(key: &str, delta: u64) -> Result<u64> {
    let written = update(key, 16, |current| {
        let now = current
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0);
        now.wrapping_add(delta).to_le_bytes().to_vec()
    })?;
    let bytes: [u8; 8] = written.try_into().unwrap_or_default();
    Ok(u64::from_le_bytes(bytes))
}

/// A shared message queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SharedQueue {
    id: u32,
}

impl SharedQueue {
    /// Registers (or re-opens) the queue `name` owned by this VM. The root
    /// filter's `on_queue_ready` runs when messages arrive on it.
    pub fn register(name: &str) -> Result<SharedQueue> {
        Ok(SharedQueue {
            id: hostcalls::register_shared_queue(name)?,
        })
    }

    /// Finds the queue `name` registered by the VM `vm_id`; `None` if there is none.
    pub fn resolve(vm_id: &str, name: &str) -> Result<Option<SharedQueue>> {
        Ok(hostcalls::resolve_shared_queue(vm_id, name)?.map(|id| SharedQueue { id }))
    }

    /// The queue for a raw id (as delivered to `on_queue_ready`).
    pub fn from_id(id: u32) -> SharedQueue {
        SharedQueue { id }
    }

    /// The queue's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Appends a message.
    pub fn enqueue(&self, message: &[u8]) -> Result<()> {
        hostcalls::enqueue_shared_queue(self.id, message)
    }

    /// Takes the oldest message; `Ok(None)` when the queue is empty.
    pub fn dequeue(&self) -> Result<Option<Vec<u8>>> {
        hostcalls::dequeue_shared_queue(self.id)
    }
}
