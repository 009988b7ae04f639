//! The table of live contexts by id. Every host callback looks its context
//! up, so the common case is one index and one compare: the host numbers
//! contexts upwards from 1 and streams live briefly, so the live ids fit in
//! a window and a direct-mapped array indexed by the id's low bits finds
//! nearly all of them in their own slot. An id whose slot is taken (by a
//! long-lived root context, or a stream that outlived many others) goes to
//! a map beside the array, and the array doubles when that map holds more
//! than an eighth of its size.

use super::ids::{self, IdMap};

/// Slots of a new table.
const INITIAL_SLOTS: usize = 64;
/// The table stops doubling here (then a crowded map takes the rest).
const MAX_SLOTS: usize = 1 << 16;

/// Values by context id: an array slot for most, a map for the rest.
pub(crate) struct ContextTable<V> {
    /// Indexed by `id & (len - 1)`; empty until the first insert.
    slots: Vec<Option<(u32, V)>>,
    /// Ids whose slot was taken when they came.
    others: IdMap<u32, V>,
}

impl<V> ContextTable<V> {
    /// An empty table (allocates at its first insert).
    pub const fn new() -> Self {
        ContextTable {
            slots: Vec::new(),
            others: ids::new_map(),
        }
    }

    fn slot(&self, id: u32) -> usize {
        id as usize & (self.slots.len() - 1)
    }

    /// The value of `id`.
    pub fn get(&self, id: u32) -> Option<&V> {
        if !self.slots.is_empty()
            && let Some((at, value)) = &self.slots[self.slot(id)]
            && *at == id
        {
            return Some(value);
        }
        if self.others.is_empty() {
            None
        } else {
            self.others.get(&id)
        }
    }

    /// Sets the value of `id`, returning the one it replaces.
    pub fn insert(&mut self, id: u32, value: V) -> Option<V> {
        if self.slots.is_empty() {
            self.slots.resize_with(INITIAL_SLOTS, || None);
        }
        let at = self.slot(id);
        match &mut self.slots[at] {
            Some((held, old)) if *held == id => return Some(std::mem::replace(old, value)),
            Some(_) => {}
            empty => {
                *empty = Some((id, value));
                return self.take_other(id);
            }
        }
        let replaced = self.others.insert(id, value);
        if self.others.len() > self.slots.len() / 8 && self.slots.len() < MAX_SLOTS {
            self.grow();
        }
        replaced
    }

    /// Takes the value of `id` out.
    pub fn remove(&mut self, id: u32) -> Option<V> {
        if !self.slots.is_empty() {
            let at = self.slot(id);
            if matches!(&self.slots[at], Some((held, _)) if *held == id) {
                return self.slots[at].take().map(|(_, value)| value);
            }
        }
        self.take_other(id)
    }

    /// Takes `id` out of the map beside the array (which is nearly always
    /// empty: then without hashing).
    fn take_other(&mut self, id: u32) -> Option<V> {
        if self.others.is_empty() {
            None
        } else {
            self.others.remove(&id)
        }
    }

    /// Doubles the array and places every value again.
    fn grow(&mut self) {
        let len = self.slots.len() * 2;
        let old = std::mem::take(&mut self.slots);
        let others = std::mem::replace(&mut self.others, ids::new_map());
        self.slots.resize_with(len, || None);
        for (id, value) in old.into_iter().flatten().chain(others) {
            let at = self.slot(id);
            match &mut self.slots[at] {
                Some(_) => {
                    self.others.insert(id, value);
                }
                empty => *empty = Some((id, value)),
            }
        }
    }

    /// How many values the table holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.iter().flatten().count() + self.others.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_streams_beside_a_long_lived_root_are_found_inserted_and_removed() {
        let mut table = ContextTable::new();
        assert_eq!(table.get(1), None);
        assert_eq!(table.remove(1), None);
        table.insert(1, 1000);
        // Streams come and go with a few alive at a time; ids 65, 129, ...
        // land on the root's slot.
        for id in 2..5000u32 {
            assert_eq!(table.insert(id, id * 10), None);
            if id >= 10 {
                assert_eq!(table.remove(id - 8), Some((id - 8) * 10));
            }
            assert_eq!(table.get(id), Some(&(id * 10)));
            assert_eq!(table.get(1), Some(&1000), "the root stays found");
        }
        assert_eq!(table.len(), 1 + 8);
        assert_eq!(table.slots.len(), INITIAL_SLOTS, "no growth was needed");
        assert_eq!(table.get(4990), None, "removed");
    }

    #[test]
    fn values_whose_slots_are_taken_are_kept_beside_the_array_and_it_grows() {
        let mut table = ContextTable::new();
        // Every id on the same slot of the first array.
        let ids: Vec<u32> = (0..200).map(|i| 7 + i * INITIAL_SLOTS as u32).collect();
        for &id in &ids {
            table.insert(id, u64::from(id));
        }
        assert!(table.slots.len() > INITIAL_SLOTS, "grew");
        assert_eq!(table.len(), ids.len());
        for &id in &ids {
            assert_eq!(table.get(id), Some(&u64::from(id)));
        }
        // Replacing keeps one value per id, wherever it is.
        for &id in &ids {
            assert_eq!(table.insert(id, 1), Some(u64::from(id)));
        }
        assert_eq!(table.len(), ids.len());
        for &id in ids.iter().rev() {
            assert_eq!(table.remove(id), Some(1));
            assert_eq!(table.get(id), None);
        }
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn an_id_that_moved_into_its_freed_slot_leaves_no_stale_copy() {
        let mut table = ContextTable::new();
        let (a, b) = (3, 3 + INITIAL_SLOTS as u32);
        table.insert(a, 'a');
        table.insert(b, 'b'); // beside the array
        table.remove(a);
        // `b` comes again while its slot is free: the old value is replaced,
        // not left behind.
        assert_eq!(table.insert(b, 'B'), Some('b'));
        assert_eq!(table.get(b), Some(&'B'));
        assert_eq!(table.remove(b), Some('B'));
        assert_eq!(table.get(b), None);
        assert_eq!(table.len(), 0);
    }
}
