//! WAL checkpoints run by the writer *after* it has answered a job, instead of SQLite's
//! automatic checkpoint, which runs inside the commit and so adds a whole checkpoint to
//! the latency of whichever write happens to cross the threshold.
//!
//! The policy is otherwise SQLite's: a passive checkpoint once the WAL holds the threshold
//! number of pages (1,000, SQLite's default, which suits many small transactions: a large
//! WAL makes each one dearer), retried after later commits while readers keep it from
//! completing. A large sync download raises the threshold while it runs
//! ([`Checkpointer::set_bulk`]): it writes every row twice (op log, then the table), and
//! checkpointing ten times as often cost a third of its time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use rusqlite::Connection;

/// WAL pages after which the writer checkpoints (SQLite's default).
const PAGES: i32 = 1_000;
/// The threshold during a large download (~40 MiB of WAL).
const BULK_PAGES: i32 = 10_000;

/// Tracks the WAL's size through SQLite's WAL hook and checkpoints when it is due.
pub(crate) struct Checkpointer {
    /// Pages in the WAL after the last commit, as the hook reported them.
    wal_pages: Arc<AtomicI32>,
    threshold: i32,
}

impl Checkpointer {
    /// Installs the WAL hook on the writer connection. This replaces SQLite's automatic
    /// checkpoint (which is itself a WAL hook). An in-memory database has no WAL: the hook
    /// never runs and no checkpoint is ever due.
    pub(crate) fn install(conn: &mut Connection) -> rusqlite::Result<Self> {
        let wal_pages = Arc::new(AtomicI32::new(0));
        let seen = Arc::clone(&wal_pages);
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
            seen.store(pages, Ordering::Relaxed);
            Ok(())
        }))?;
        Ok(Self {
            wal_pages,
            threshold: PAGES,
        })
    }

    /// Raises the threshold for a large download (`true`) or restores the default.
    pub(crate) fn set_bulk(&mut self, bulk: bool) {
        self.threshold = if bulk { BULK_PAGES } else { PAGES };
    }

    /// The current threshold in WAL pages.
    #[cfg(test)]
    pub(crate) fn threshold(&self) -> i32 {
        self.threshold
    }

    /// Runs a passive checkpoint (it never waits for readers) if the WAL has grown past
    /// the threshold since the last one. Called between jobs, when no transaction is open.
    pub(crate) fn run_if_due(&self, conn: &Connection) {
        if self.wal_pages.load(Ordering::Relaxed) < self.threshold {
            return;
        }
        // The next commit reports the WAL's size again; until then nothing is due.
        self.wal_pages.store(0, Ordering::Relaxed);
        let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match outcome {
            Ok((frames, done)) if done < frames => {
                tracing::debug!(frames, done, "WAL checkpoint held back by readers")
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "WAL checkpoint failed; retried later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_connection(dir: &tempfile::TempDir) -> Connection {
        let conn = Connection::open(dir.path().join("db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t(x)")
            .unwrap();
        conn
    }

    #[test]
    fn checkpoints_only_once_the_wal_reaches_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = wal_connection(&dir);
        let mut checkpointer = Checkpointer::install(&mut conn).unwrap();
        checkpointer.threshold = 20;
        let write = |conn: &Connection| {
            conn.execute("INSERT INTO t VALUES (randomblob(3000))", [])
                .unwrap()
        };
        write(&conn);
        let pages = checkpointer.wal_pages.load(Ordering::Relaxed);
        assert!(pages > 0 && pages < 20, "hook saw {pages} pages");
        checkpointer.run_if_due(&conn);
        assert_eq!(checkpointer.wal_pages.load(Ordering::Relaxed), pages);

        for _ in 0..20 {
            write(&conn);
        }
        assert!(checkpointer.wal_pages.load(Ordering::Relaxed) >= 20);
        checkpointer.run_if_due(&conn);
        assert_eq!(checkpointer.wal_pages.load(Ordering::Relaxed), 0);
        // Everything was copied: the next write starts the WAL over from its beginning.
        write(&conn);
        let restarted = checkpointer.wal_pages.load(Ordering::Relaxed);
        assert!(restarted < 20, "WAL restarted at {restarted} pages");
    }

    #[test]
    fn bulk_mode_raises_the_threshold_until_reset() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = wal_connection(&dir);
        let mut checkpointer = Checkpointer::install(&mut conn).unwrap();
        assert_eq!(checkpointer.threshold(), PAGES);
        checkpointer.set_bulk(true);
        assert_eq!(checkpointer.threshold(), BULK_PAGES);
        checkpointer.set_bulk(false);
        assert_eq!(checkpointer.threshold(), PAGES);
    }
}
