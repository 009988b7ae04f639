//! Guest memory handed to the host: `proxy_on_memory_allocate` and taking
//! ownership of the buffers the host filled through it.

/// Allocates `size` bytes the host will fill and the SDK will later reclaim
/// with `take`. Backs the `proxy_on_memory_allocate` export.
pub fn allocate(size: usize) -> *mut u8 {
    let buffer = vec![0u8; size].into_boxed_slice();
    Box::into_raw(buffer).cast::<u8>()
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
}
