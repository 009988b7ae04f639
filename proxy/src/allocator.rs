//! The `wasp` binary's memory allocator (a module of the binary, not of the
//! library): jemalloc with the `jemalloc` feature, else the C library's
//! `malloc`; and how memory freed by loading filter plugins goes back to
//! the operating system, with the binary's code pages that loading paged
//! in (the compiler's).
#![allow(unsafe_code)]

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Caps the C library's malloc arenas at one per worker thread. Without a
/// cap glibc gives every thread that allocates its own arena, and the
/// threads that load plugins leave megabytes of them behind (fragments
/// between the module's live allocations, which trimming cannot return).
pub fn limit_arenas(workers: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
    // SAFETY: sets one malloc parameter before the runtime's threads start;
    // glibc takes its own lock and reads no memory of the program.
    unsafe {
        libc::mallopt(
            libc::M_ARENA_MAX,
            i32::try_from(workers.max(1)).unwrap_or(i32::MAX),
        );
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc"))))]
    let _ = workers;
}

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

/// After a module was compiled, and once the first configuration serves:
/// asks the kernel to drop the resident pages of the binary's read-only
/// mappings (code, constants), among them the megabytes of Cranelift that
/// compiling paged in and the code that only start-up ran. They are clean
/// file pages, so this frees them without writing anything; the ones the
/// request path uses are paged back in by its next requests (a cost paid
/// after a compile and once after start, never after a load of a compiled
/// module during a reload).
pub fn page_out_code() {
    #[cfg(target_os = "linux")]
    page_out_mappings();
}

#[cfg(target_os = "linux")]
fn page_out_mappings() {
    let (Ok(exe), Ok(maps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/maps"),
    ) else {
        return;
    };
    for line in maps.lines() {
        // `start-end perms offset device inode path`
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [range, perms, _, _, _, path] = fields[..] else {
            continue;
        };
        if !(perms == "r-xp" || perms == "r--p") || std::path::Path::new(path) != exe {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: an advice on a mapping of the binary taken from
        // /proc/self/maps; MADV_PAGEOUT only reclaims pages (clean file
        // pages are dropped and read again on use) and changes no content.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT);
        }
    }
}
