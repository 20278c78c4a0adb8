//! Whether the sync engine is writing right now: raw tables' upload triggers must not
//! record the rows a sync apply writes into them (those come from the service), only the
//! app's own writes.
//!
//! The flag is per thread: the apply and the triggers it fires run on the writer's
//! thread, inside one `sqlite3_step`, so a thread-local needs no lock and cannot leak to
//! another connection. SQL sees it as `livesync_in_sync_apply()` (and as
//! `powersync_in_sync_operation()`, the name the official SDKs' trigger recipes use).

use std::cell::Cell;

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Marks the current thread as applying synced data until dropped.
#[derive(Debug)]
pub(crate) struct SyncApply(());

impl SyncApply {
    pub(crate) fn enter() -> Self {
        DEPTH.with(|d| d.set(d.get() + 1));
        Self(())
    }
}

impl Drop for SyncApply {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

fn active() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// Registers the SQL functions on `conn`.
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    // Not deterministic: the answer changes between statements of one connection.
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_INNOCUOUS;
    for name in ["livesync_in_sync_apply", "powersync_in_sync_operation"] {
        conn.create_scalar_function(name, 0, flags, |_| Ok(active()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_set_while_a_guard_lives_and_nests() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let read = || -> bool {
            conn.query_row("SELECT livesync_in_sync_apply()", [], |r| r.get(0))
                .unwrap()
        };
        assert!(!read());
        let outer = SyncApply::enter();
        let inner = SyncApply::enter();
        assert!(read());
        drop(inner);
        assert!(read());
        drop(outer);
        assert!(!read());
        let other_thread = std::thread::spawn(|| {
            let _guard = SyncApply::enter();
            active()
        });
        assert!(other_thread.join().unwrap() && !read());
    }
}
