//! Process-wide shared data (key/value with compare-and-swap) and shared
//! queues, both scoped by VM id, visible to every VM of every plugin, each
//! bounded by the limits of the plugin that writes (see [`crate::limits`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError, Weak};

use wasp_abi::Status;

use crate::limits::{self, Limit};
use crate::pool::VmSlot;

/// Why a shared data or queue write was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// An ABI status (`CasMismatch`, `NotFound`).
    Status(Status),
    /// A limit of the calling plugin would be passed.
    Limit(Limit),
}

impl From<Status> for Refused {
    fn from(status: Status) -> Self {
        Self::Status(status)
    }
}

/// The shared data of one `vm_id` and what it holds.
#[derive(Default)]
struct Scope {
    entries: HashMap<String, (Vec<u8>, u32)>,
    /// Keys plus values, in bytes.
    bytes: usize,
}

/// Shared key/value data with a version (CAS) per key, scoped by VM id.
#[derive(Default)]
pub(crate) struct SharedData {
    scopes: Mutex<HashMap<String, Scope>>,
}

impl SharedData {
    /// Holds the data's lock until the result is dropped: every VM reading
    /// or writing shared data waits meanwhile.
    #[cfg(test)]
    pub fn hold(&self) -> impl Sized + '_ {
        self.scopes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value and its CAS version.
    pub fn get(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        let scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        scopes.get(vm_id)?.entries.get(key).cloned()
    }

    /// Sets a value; with a non-zero `cas`, only if the version still
    /// matches. Refused when the `vm_id` would hold more than `max_bytes`
    /// (keys plus values) or `max_keys` keys.
    pub fn set(
        &self,
        vm_id: &str,
        key: &str,
        value: Vec<u8>,
        cas: u32,
        (max_bytes, max_keys): (u64, u64),
    ) -> Result<(), Refused> {
        let mut scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        let scope = scopes.entry(vm_id.to_owned()).or_default();
        let existing = scope.entries.get(key);
        let version = match existing {
            Some((_, version)) if cas != 0 && cas != *version => {
                return Err(Status::CasMismatch.into());
            }
            None if cas != 0 => return Err(Status::CasMismatch.into()),
            Some((_, version)) => version.checked_add(1).unwrap_or(1),
            None => 1,
        };
        let replaced = existing.map_or(0, |(v, _)| key.len() + v.len());
        let after = scope.bytes - replaced + key.len() + value.len();
        if existing.is_none() && scope.entries.len() as u64 >= max_keys {
            return Err(Refused::Limit(Limit::SharedDataKeys));
        }
        if limits::grows_past(scope.bytes as u64, after as u64, max_bytes) {
            return Err(Refused::Limit(Limit::SharedDataBytes));
        }
        scope.bytes = after;
        scope.entries.insert(key.to_owned(), (value, version));
        Ok(())
    }
}

/// The VM that registered a queue (notified with `proxy_on_queue_ready`).
#[derive(Clone)]
pub(crate) struct QueueOwner {
    pub slot: Weak<VmSlot>,
    pub generation: u64,
}

struct Queue {
    items: VecDeque<Vec<u8>>,
    /// Bytes of `items`.
    bytes: usize,
    owner: QueueOwner,
}

#[derive(Default)]
struct Queues {
    by_name: HashMap<(String, String), u32>,
    queues: HashMap<u32, Queue>,
    next_id: u32,
}

/// Shared queues by id.
#[derive(Default)]
pub(crate) struct SharedQueues {
    inner: Mutex<Queues>,
}

impl SharedQueues {
    /// Registers (or re-registers, taking ownership) a queue.
    pub fn register(&self, vm_id: &str, name: &str, owner: QueueOwner) -> u32 {
        let mut q = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (vm_id.to_owned(), name.to_owned());
        if let Some(id) = q.by_name.get(&key).copied() {
            if let Some(queue) = q.queues.get_mut(&id) {
                queue.owner = owner;
            }
            return id;
        }
        q.next_id += 1;
        let id = q.next_id;
        q.by_name.insert(key, id);
        q.queues.insert(
            id,
            Queue {
                items: VecDeque::new(),
                bytes: 0,
                owner,
            },
        );
        id
    }

    /// The id of a registered queue.
    pub fn resolve(&self, vm_id: &str, name: &str) -> Option<u32> {
        let q = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        q.by_name.get(&(vm_id.to_owned(), name.to_owned())).copied()
    }

    /// Appends an item and tells the owner (asynchronously) it has work.
    /// Refused (nothing is dropped) when the queue would hold more than
    /// `max_depth` items or `max_bytes` bytes.
    pub fn enqueue(
        &self,
        id: u32,
        value: Vec<u8>,
        (max_depth, max_bytes): (u64, u64),
    ) -> Result<(), Refused> {
        let owner = {
            let mut q = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let queue = q.queues.get_mut(&id).ok_or(Status::NotFound)?;
            if queue.items.len() as u64 >= max_depth {
                return Err(Refused::Limit(Limit::QueueDepth));
            }
            let after = queue.bytes + value.len();
            if limits::grows_past(queue.bytes as u64, after as u64, max_bytes) {
                return Err(Refused::Limit(Limit::QueueBytes));
            }
            queue.bytes = after;
            queue.items.push_back(value);
            queue.owner.clone()
        };
        crate::pool::notify_queue_ready(owner, id);
        Ok(())
    }

    /// Takes the oldest item.
    pub fn dequeue(&self, id: u32) -> Result<Option<Vec<u8>>, Status> {
        let mut q = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let queue = q.queues.get_mut(&id).ok_or(Status::NotFound)?;
        let item = queue.items.pop_front();
        if let Some(item) = &item {
            queue.bytes -= item.len();
        }
        Ok(item)
    }
}
