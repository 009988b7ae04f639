//! The `wasp` binary's memory allocator (a module of the binary, not of the
//! library): jemalloc with the `jemalloc` feature, else the C library's
//! `malloc`; and how memory freed by loading filter plugins goes back to
//! the operating system.
#![allow(unsafe_code)]

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Gives the operating system back the free memory of every heap of the
/// process: after a plugin load (Cranelift's buffers, the module bytes),
/// the loading threads' heaps hold megabytes of freed memory that would
/// otherwise stay resident.
pub fn release_free_memory() {
    #[cfg(feature = "jemalloc")]
    // SAFETY: a NUL-terminated control name of jemalloc that reads and
    // writes nothing (null pointers, length 0); purging only returns
    // unused pages of jemalloc's arenas to the kernel.
    unsafe {
        // `arena.<MALLCTL_ARENAS_ALL>.purge`: every arena.
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks glibc's own heaps (under their
    // locks) and returns unused pages to the kernel; it touches no memory
    // the program holds.
    unsafe {
        libc::malloc_trim(0);
    }
}
