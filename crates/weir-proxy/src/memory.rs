//! The process's memory allocator (glibc's malloc): what it holds, and the one policy weir sets.

/// Makes allocations of 256 KiB and more always come from their own mappings.
///
/// glibc starts that threshold at 128 KiB and raises it each time such a mapping is freed,
/// after which large blocks come from the heap, and freeing them cannot give memory back while
/// anything sits above them. The blocks that large are the connection and stream tables after
/// a burst: with the threshold fixed, a table that empties again (see `GenSlab::remove`)
/// returns its pages, and one that grows is moved by `mremap` instead of copied. I/O buffers
/// stay under it (a read brings at most 64 KiB), so no request pays for a mapping.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn fix_mmap_threshold() {
    // SAFETY: `mallopt` only sets a tunable of the allocator (under its own lock) and returns a
    // status; M_MMAP_THRESHOLD with a value under the 32 MiB maximum is always accepted.
    let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024) };
}

/// Other allocators have no such threshold.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn fix_mmap_threshold() {}

/// Gives the heap's free pages back to the kernel (all threads' arenas). After a burst, the
/// memory its requests used is free but still resident: without this an idle keep-alive
/// connection would look hundreds of bytes bigger than it is for as long as weir runs.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn release_free() {
    // SAFETY: `malloc_trim` takes a byte count, walks the allocator's arenas under their own
    // locks and advises the kernel to drop whole free pages; it touches no memory in use and
    // returns a status.
    let _ = unsafe { libc::malloc_trim(0) };
}

/// Other allocators release memory their own way.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free() {}

/// Bytes the allocator has handed out and holds (`server.memory_allocated`,
/// `server.memory_heap_size`), from glibc's `mallinfo2`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn usage() -> (i64, i64) {
    // SAFETY: `mallinfo2` takes no arguments, only reads the allocator's own bookkeeping
    // (under its arena locks) and returns a plain struct by value; glibc ≥ 2.33 has it (the
    // `libc` crate links against the system glibc, which on supported systems is newer).
    let info = unsafe { libc::mallinfo2() };
    let allocated = info.uordblks + info.hblkhd;
    let heap = info.arena + info.hblkhd;
    (allocated as i64, heap as i64)
}

/// Without glibc there is no cheap allocator query; the gauges read 0.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn usage() -> (i64, i64) {
    (0, 0)
}
