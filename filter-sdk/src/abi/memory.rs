//! Guest memory handed to the host: `proxy_on_memory_allocate` and taking
//! ownership of the buffers the host filled through it.

use std::alloc::{Layout, alloc, handle_alloc_error};
use std::ptr::NonNull;

/// Allocates `size` bytes the host will fill and the SDK will later reclaim
/// with `take`. Backs the `proxy_on_memory_allocate` export.
///
/// The bytes are not zeroed: the host writes every one of them before it
/// hands the buffer over (zeroing first cost a `calloc` and a fill on
/// every hostcall that answers with data). The buffer has the layout of a
/// `Box<[u8]>` of `size` bytes, as `take` rebuilds it; a size of zero is a
/// dangling pointer, as an empty box's is.
pub fn allocate(size: usize) -> *mut u8 {
    if size == 0 {
        return NonNull::<u8>::dangling().as_ptr();
    }
    let Ok(layout) = Layout::array::<u8>(size) else {
        // Larger than the address space: the host's request cannot be met.
        return std::ptr::null_mut();
    };
    // SAFETY: `layout` has a non-zero size.
    let ptr = unsafe { alloc(layout) };
    if ptr.is_null() {
        handle_alloc_error(layout);
    }
    ptr
}

/// Takes back a buffer returned by the host (allocated with [`allocate`]).
/// A null pointer or zero size is an empty buffer.
///
/// # Safety
/// `data` must come from [`allocate`] called with exactly `size`, and must not
/// be taken twice.
pub unsafe fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() || size == 0 {
        return Vec::new();
    }
    // SAFETY: the caller guarantees `data`/`size` describe one boxed slice from `allocate`.
    let boxed = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, size)) };
    boxed.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_buffers_round_trip() {
        let ptr = allocate(4);
        // SAFETY: `ptr` has 4 writable bytes from `allocate`.
        unsafe { std::ptr::copy_nonoverlapping(b"wasp".as_ptr(), ptr, 4) };
        // SAFETY: taken once, with the size it was allocated with.
        assert_eq!(unsafe { take(ptr, 4) }, b"wasp");
        // SAFETY: null is always accepted.
        assert!(unsafe { take(std::ptr::null_mut(), 0) }.is_empty());
    }

    #[test]
    fn empty_and_large_buffers_are_taken_back_whole() {
        let empty = allocate(0);
        assert!(!empty.is_null(), "an empty buffer is dangling, not null");
        // SAFETY: taken once, with the size it was allocated with.
        assert!(unsafe { take(empty, 0) }.is_empty());
        let size = 1 << 20;
        let ptr = allocate(size);
        // SAFETY: `ptr` has `size` writable bytes from `allocate`.
        unsafe { std::ptr::write_bytes(ptr, 7, size) };
        // SAFETY: taken once, with the size it was allocated with.
        let taken = unsafe { take(ptr, size) };
        assert_eq!(taken.len(), size);
        assert!(taken.iter().all(|&b| b == 7));
    }
}
