//! Process-wide SQLite settings, made once before this process's first connection opens.
//!
//! SQLite keeps memory statistics by default (`SQLITE_DEFAULT_MEMSTATUS=1`, which
//! `rusqlite`'s bundled build keeps): every allocation and free of every connection
//! then takes one process-wide mutex. With a writer and several reader threads
//! allocating at once (live queries re-running while writes commit) that mutex was the
//! most contended lock of the process. On the 1,000-live-query throughput bench (file,
//! throttle 0; README, Benchmarks) the build with the statistics off was faster in three
//! of four alternated pairs of runs, noisy as that machine was (1.59x–2.52x the time of
//! the same writes without live queries, against 1.66x–3.42x with them on). livesync
//! reads none of those statistics (`sqlite3_memory_used` and friends report 0 once they
//! are off).
//!
//! SQLite accepts this setting only before it initialises: when the application opened
//! an SQLite connection of its own first, the call is refused and nothing changes (a
//! `debug` log says so).

use std::sync::Once;

/// Turns SQLite's memory statistics off, once per process, before the first
/// connection livesync opens.
pub(super) fn before_first_connection() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let code = disable_memory_statistics();
        if code != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(
                code,
                "SQLite was initialised before livesync opened a database: its memory statistics stay on"
            );
        }
    });
}

#[allow(unsafe_code)]
fn disable_memory_statistics() -> std::ffi::c_int {
    // SAFETY: `SQLITE_CONFIG_MEMSTATUS` takes one `int` argument, passed here.
    // `sqlite3_config` must not run while another thread calls into SQLite: it runs
    // once, before livesync's first connection, and returns `SQLITE_MISUSE` without
    // changing anything once SQLite is initialised (when the application opened a
    // connection of its own earlier).
    unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int)
    }
}
