//! The heap: how many malloc arenas the process may use.
//!
//! glibc gives each thread that allocates while others hold the heap an
//! arena of its own, up to 8 per core, and an arena returns memory to the
//! system only from its top. The job allocates in many threads (the tokio
//! workers, the blocking pool, rayon, ONNX Runtime's pool), so freed batch
//! buffers stay resident in a growing set of arenas: the soak bench's peak
//! RSS was 986–1,121 MiB from run to run, its floor climbing 38–72 MiB per
//! 10,000 comments; with two arenas, 816 MiB and flat (−1 MiB).

/// The arenas used unless `MALLOC_ARENA_MAX` says otherwise.
pub const HEAP_ARENAS: i32 = 2;

/// Limits glibc's malloc to [`HEAP_ARENAS`] arenas, unless the
/// `MALLOC_ARENA_MAX` environment variable is set (glibc then applies it
/// itself). Call it first in `main`, before any thread starts: a thread
/// that already has an arena keeps it. Does nothing on other C libraries.
/// Returns whether the limit was set here.
pub fn limit_heap_arenas() -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    set_arena_max(HEAP_ARENAS)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(n: i32) -> bool {
    // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX with a
    // positive value is valid at any time (it bounds arenas created later).
    unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_: i32) -> bool {
    false
}
