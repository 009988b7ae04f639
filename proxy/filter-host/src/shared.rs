//! Process-wide shared data (key/value with compare-and-swap) and shared
//! queues, both scoped by VM id, visible to every VM of every plugin.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError, Weak};

use wasp_abi::Status;

use crate::pool::VmSlot;

/// Most items a queue holds; enqueueing more drops the oldest.
const QUEUE_CAPACITY: usize = 10_000;

/// A key scoped by VM id.
type ScopedKey = (String, String);

/// Shared key/value data with a version (CAS) per key.
#[derive(Default)]
pub(crate) struct SharedData {
    map: Mutex<HashMap<ScopedKey, (Vec<u8>, u32)>>,
}

impl SharedData {
    /// The value and its CAS version.
    pub fn get(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(vm_id.to_owned(), key.to_owned())).cloned()
    }

    /// Sets a value; with a non-zero `cas`, only if the version still matches.
    pub fn set(&self, vm_id: &str, key: &str, value: Vec<u8>, cas: u32) -> Result<(), Status> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry((vm_id.to_owned(), key.to_owned()));
        match entry {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let (stored, version) = e.get_mut();
                if cas != 0 && cas != *version {
                    return Err(Status::CasMismatch);
                }
                *stored = value;
                *version = version.checked_add(1).unwrap_or(1);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                if cas != 0 {
                    return Err(Status::CasMismatch);
                }
                e.insert((value, 1));
            }
        }
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
    pub fn enqueue(&self, id: u32, value: Vec<u8>) -> Result<(), Status> {
        let owner = {
            let mut q = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let queue = q.queues.get_mut(&id).ok_or(Status::NotFound)?;
            if queue.items.len() >= QUEUE_CAPACITY {
                queue.items.pop_front();
            }
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
        Ok(queue.items.pop_front())
    }
}
