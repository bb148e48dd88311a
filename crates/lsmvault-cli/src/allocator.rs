//! glibc malloc tuning, set once at start-up before any thread runs.
//!
//! Multi-MiB buffers (packs, chunker windows, decompressed chunks) are
//! allocated and freed all the time. Served as fresh mappings, or from heap
//! memory that glibc hands back to the kernel as soon as it is free, every
//! 4 KiB page of them costs a page fault and a zeroing when next used:
//! measured on an 0.85 GB checkpoint, that was most of the system time of
//! `verify --read-data` (267 000 faults, 0.6 s of 1.2 s CPU) and of a restore.
//! So freed heap memory is kept for reuse, and chunk-sized buffers stay in the
//! heap. Pack-sized buffers stay mappings returned when freed, in a restore
//! too (which reads packs in ranges of up to a pack): heap arenas kept a
//! verify's 16-20 MiB pack buffers at their fragmented peak, 75 MiB on a
//! repository of zstd SSTs, above the 64 MiB target. Peak RSS of each command is in docs/benchmarks.md.

/// Above the largest chunk (4 MiB) with room for what a chunk grows by on
/// its way into a pack (zstd's worst-case bound, ~16 KiB; the seal's nonce
/// and tag, 40 bytes): chunks and their compressed forms stay in the heap,
/// pack-sized buffers do not. At exactly 4 MiB + 1, every incompressible
/// maximum-size chunk's zstd output buffer was a fresh mapping.
const DEFAULT_MMAP_THRESHOLD: i32 = 4 * 1024 * 1024 + 64 * 1024;
/// Free memory at the top of a heap kept before it is returned.
const TRIM_THRESHOLD: i32 = 256 * 1024 * 1024;

/// Tunes the allocator (the same for every command); call before any thread starts.
pub fn tune() {
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD);
        nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
