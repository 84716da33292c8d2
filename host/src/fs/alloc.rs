//! Allocator settings for a process whose memory is mostly large,
//! short-lived buffers (prefetch segments, upload parts) allocated on one
//! thread and freed on another.
//!
//! glibc serves a large allocation with its own mapping, but raises that
//! threshold to the size of every such block freed (up to 32 MiB). After
//! the first part buffer is freed, the next ones come from the per-thread
//! arenas instead, whose freed space stays resident: the process grew to
//! half again what its buffers held. A fixed threshold keeps the large
//! buffers (prefetch segments and upload parts of 2 MiB and more, which
//! the budget's pool recycles) each in its own mapping, given back to the
//! kernel when the pool lets go of them.
//!
//! The threshold is not lower because a fresh mapping costs a page fault
//! per 4 KiB: the transport's read buffers (under 512 KiB) and the 1 MiB
//! copies of FUSE writes, allocated and freed hundreds of times a second,
//! stay in the arenas, where freed space is reused at once. A trim
//! threshold above their size keeps the arenas from handing that space
//! back and faulting it in again; two arenas keep it shared between
//! threads rather than spread over one arena per thread.

/// Blocks at least this large get their own mapping.
const MMAP_THRESHOLD: i32 = 2 * 1024 * 1024;
/// Free space at the top of an arena kept rather than given back.
const TRIM_THRESHOLD: i32 = 8 * 1024 * 1024;
/// Most malloc arenas (glibc's default is 8 per core).
const ARENA_MAX: i32 = 2;

/// Applies the settings once per process; an operator's own
/// `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` or
/// `MALLOC_ARENA_MAX` takes precedence.
pub(crate) fn tune() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        for (env, param, value) in [
            ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, ARENA_MAX),
        ] {
            if std::env::var_os(env).is_none() {
                // SAFETY: mallopt only changes allocator parameters; the
                // values are in their documented ranges.
                unsafe {
                    libc::mallopt(param, value);
                }
            }
        }
    });
}
