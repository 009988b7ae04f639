//! The filters' allocator on `wasm32`: small blocks (up to 256 bytes, at
//! most 16-byte aligned) freed by a filter are kept on one free list per
//! 16-byte size class and handed out again by the next allocation of their
//! class; larger blocks, first allocations of a class, and blocks past a
//! list's cap go to the system allocator underneath (wasi-libc's dlmalloc).
//!
//! A request allocates and frees dozens of small blocks (header names and
//! values, buffers the host fills, label strings). Through Rust's shims and
//! dlmalloc's general paths each allocation and each free costs about a
//! hundred instructions or more; a free list costs a few.
//!
//! A module without threads (`wasm32` without the `atomics` feature) is
//! the only place the allocator is installed: its lists are not locked.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

/// The step between size classes, and the alignment of every block of one.
const GRANULE: usize = 16;
/// Size classes: 16, 32, … 256 bytes.
const CLASSES: usize = 16;
/// The largest size served from a class.
const LARGEST: usize = GRANULE * CLASSES;
/// Freed blocks kept per class; more go back to the system allocator.
/// At most 32 × (16 + 32 + … + 256) bytes, 68 KiB, stay on the lists.
pub const KEPT_PER_CLASS: u32 = 32;

/// One class's freed blocks: a list threaded through their first word.
#[derive(Clone, Copy)]
struct FreeList {
    head: *mut u8,
    len: u32,
}

/// Free lists by size class over the allocator `A`.
pub struct SizeClassAlloc<A> {
    inner: A,
    lists: UnsafeCell<[FreeList; CLASSES]>,
}

// SAFETY: without threads (`wasm32` without `atomics`) nothing runs
// concurrently with an allocation, so the unlocked lists are never shared.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<A: Sync> Sync for SizeClassAlloc<A> {}

impl<A> SizeClassAlloc<A> {
    /// Empty lists over `inner`.
    pub const fn new(inner: A) -> Self {
        let empty = FreeList {
            head: ptr::null_mut(),
            len: 0,
        };
        SizeClassAlloc {
            inner,
            lists: UnsafeCell::new([empty; CLASSES]),
        }
    }

    /// Blocks kept on the list of the class of `size` (tests).
    #[cfg(test)]
    fn kept(&self, size: usize) -> u32 {
        let class = class_of(Layout::from_size_align(size, 1).expect("a valid layout"))
            .expect("a small size");
        // SAFETY: the lists are only touched by this (single-threaded) value.
        unsafe { (*self.lists.get())[class].len }
    }
}

/// The class of `layout`: `None` for blocks the inner allocator serves.
fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size();
    (size != 0 && size <= LARGEST && layout.align() <= GRANULE).then(|| (size - 1) / GRANULE)
}

/// The layout every block of `class` has in the inner allocator: the
/// class's full size, 16-byte aligned, so that any request of the class
/// can reuse it.
fn class_layout(class: usize) -> Layout {
    // SAFETY: a non-zero multiple of its power-of-two alignment, far below
    // `isize::MAX`.
    unsafe { Layout::from_size_align_unchecked((class + 1) * GRANULE, GRANULE) }
}

// SAFETY: every block handed out is either the inner allocator's (with
// `layout`, or with its class's layout, at least as large and as aligned)
// or a freed block of the same class, not handed out twice: a block is on
// a list only between its `dealloc` and the next `alloc` that pops it.
unsafe impl<A: GlobalAlloc> GlobalAlloc for SizeClassAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller's layout, passed on.
            return unsafe { self.inner.alloc(layout) };
        };
        // SAFETY: single-threaded (see the `Sync` impl); no reference to the
        // lists outlives this call.
        let list = unsafe { &mut (*self.lists.get())[class] };
        if list.head.is_null() {
            // SAFETY: a valid, non-zero layout.
            return unsafe { self.inner.alloc(class_layout(class)) };
        }
        let block = list.head;
        // SAFETY: a freed block of this class holds the next block's address
        // in its first word (16-byte aligned, at least 16 bytes).
        list.head = unsafe { block.cast::<*mut u8>().read() };
        list.len -= 1;
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            // SAFETY: allocated by the inner allocator with this layout.
            return unsafe { self.inner.dealloc(block, layout) };
        };
        // SAFETY: as in `alloc`.
        let list = unsafe { &mut (*self.lists.get())[class] };
        if list.len >= KEPT_PER_CLASS {
            // SAFETY: every block of a class has its class's layout inside.
            return unsafe { self.inner.dealloc(block, class_layout(class)) };
        }
        // SAFETY: the block is the caller's no more; its first word is
        // 16-byte aligned and inside it.
        unsafe { block.cast::<*mut u8>().write(list.head) };
        list.head = block;
        list.len += 1;
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class_of(layout).is_none() {
            // SAFETY: the caller's layout, passed on.
            return unsafe { self.inner.alloc_zeroed(layout) };
        }
        // SAFETY: the caller's layout; a reused block is zeroed here.
        let block = unsafe { self.alloc(layout) };
        if !block.is_null() {
            // SAFETY: `block` has at least `layout.size()` bytes.
            unsafe { ptr::write_bytes(block, 0, layout.size()) };
        }
        block
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to the
        // alignment, does not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            // SAFETY: the inner allocator's block, with its layout.
            (None, None) => unsafe { self.inner.realloc(block, layout, new_size) },
            // The block already has its class's full size.
            (Some(old), Some(new)) if old == new => block,
            _ => {
                // SAFETY: a valid layout; both blocks are live and distinct,
                // and the smaller size is inside both.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("a valid layout")
    }

    #[test]
    fn a_freed_small_block_serves_the_next_request_of_its_class() {
        let alloc = SizeClassAlloc::new(System);
        // SAFETY: each block is used within its layout and freed once.
        unsafe {
            let a = alloc.alloc(layout(20, 4));
            assert_eq!(a as usize % GRANULE, 0, "class blocks are 16-byte aligned");
            alloc.dealloc(a, layout(20, 4));
            assert_eq!(alloc.kept(20), 1);
            // 17..=32 bytes share a class, whatever their alignment.
            let b = alloc.alloc(layout(32, 16));
            assert_eq!(a, b);
            assert_eq!(alloc.kept(20), 0);
            // Another class does not take it.
            alloc.dealloc(b, layout(32, 16));
            let c = alloc.alloc(layout(48, 8));
            assert_ne!(c, b);
            alloc.dealloc(c, layout(48, 8));
        }
    }

    #[test]
    fn lists_keep_at_most_their_cap_and_large_blocks_pass_through() {
        let alloc = SizeClassAlloc::new(System);
        let small = layout(64, 8);
        // SAFETY: each block is freed once, with its layout.
        unsafe {
            let blocks: Vec<*mut u8> = (0..KEPT_PER_CLASS + 10)
                .map(|_| alloc.alloc(small))
                .collect();
            for &block in &blocks {
                alloc.dealloc(block, small);
            }
            assert_eq!(alloc.kept(64), KEPT_PER_CLASS);
            let large = layout(4096, 64);
            let block = alloc.alloc(large);
            assert_eq!(block as usize % 64, 0);
            alloc.dealloc(block, large);
            // An alignment above the classes' goes to the inner allocator too.
            let aligned = layout(32, 64);
            let block = alloc.alloc(aligned);
            assert_eq!(block as usize % 64, 0);
            alloc.dealloc(block, aligned);
            assert_eq!(alloc.kept(32), 0);
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_when_reused() {
        let alloc = SizeClassAlloc::new(System);
        let small = layout(100, 1);
        // SAFETY: blocks used within their layout and freed once.
        unsafe {
            let dirty = alloc.alloc(small);
            ptr::write_bytes(dirty, 0xAB, 100);
            alloc.dealloc(dirty, small);
            let clean = alloc.alloc_zeroed(small);
            assert_eq!(clean, dirty, "the freed block is reused");
            assert!(
                std::slice::from_raw_parts(clean, 100)
                    .iter()
                    .all(|&b| b == 0)
            );
            alloc.dealloc(clean, small);
            let large = layout(1000, 8);
            let block = alloc.alloc_zeroed(large);
            assert!(
                std::slice::from_raw_parts(block, 1000)
                    .iter()
                    .all(|&b| b == 0)
            );
            alloc.dealloc(block, large);
        }
    }

    #[test]
    fn reallocation_keeps_the_contents_across_classes_and_to_large_blocks() {
        let alloc = SizeClassAlloc::new(System);
        // SAFETY: each block is used within its current layout, and every
        // block a realloc returns replaces the one given.
        unsafe {
            let mut size = 1;
            let mut block = alloc.alloc(layout(size, 1));
            block.write(0);
            // Grows one byte at a time through every class and past them,
            // as a `Vec` pushed one by one without growth doubling would.
            for next in 2..=600usize {
                block = alloc.realloc(block, layout(size, 1), next);
                assert!(!block.is_null());
                block.add(next - 1).write((next - 1) as u8);
                size = next;
            }
            let bytes = std::slice::from_raw_parts(block, size);
            assert!(bytes.iter().enumerate().all(|(i, &b)| b == i as u8));
            // Back down into a class.
            block = alloc.realloc(block, layout(size, 1), 40);
            let bytes = std::slice::from_raw_parts(block, 40);
            assert!(bytes.iter().enumerate().all(|(i, &b)| b == i as u8));
            alloc.dealloc(block, layout(40, 1));
        }
    }

    #[test]
    fn many_interleaved_blocks_never_overlap_and_keep_their_bytes() {
        let alloc = SizeClassAlloc::new(System);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        // SAFETY: every live block is written and read within its layout
        // and freed once.
        unsafe {
            for round in 0..20_000u32 {
                if live.len() > 200 || (!live.is_empty() && next() % 3 == 0) {
                    let (block, layout, fill) = live.swap_remove(next() as usize % live.len());
                    let bytes = std::slice::from_raw_parts(block, layout.size());
                    assert!(bytes.iter().all(|&b| b == fill), "block changed while live");
                    alloc.dealloc(block, layout);
                } else {
                    let size = 1 + next() as usize % 400;
                    let layout = layout(size, 1 << (next() % 5));
                    let block = alloc.alloc(layout);
                    assert_eq!(block as usize % layout.align(), 0);
                    let fill = round as u8;
                    ptr::write_bytes(block, fill, size);
                    live.push((block, layout, fill));
                }
            }
            for (block, layout, _) in live {
                alloc.dealloc(block, layout);
            }
        }
    }
}
