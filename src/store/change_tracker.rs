//! Which tables each transaction on the writer connection touched, collected by SQLite's
//! update, commit and rollback hooks.
//!
//! SQLite runs the commit hook *before* the commit is visible to other connections, so
//! the hook only moves the touched tables to a "committed" list; the writer publishes
//! that list after the statement that committed has returned (see `writer.rs`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, hooks::Action};

use super::crud_functions::CrudIds;

/// Shared between the hooks (which SQLite calls on the writer thread) and the writer.
#[derive(Default)]
pub(crate) struct ChangeTracker {
    state: Mutex<TrackerState>,
}

#[derive(Default)]
struct TrackerState {
    /// Raw table names changed by the open transaction. A short list: a linear scan of a
    /// few names is cheaper than hashing on every changed row.
    touched: Vec<String>,
    /// Change sets of transactions committed since the last [`ChangeTracker::take_committed`].
    committed: Vec<HashSet<String>>,
}

impl ChangeTracker {
    fn lock(&self) -> MutexGuard<'_, TrackerState> {
        // A panic while holding this lock cannot leave the sets inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Change sets of every transaction that committed since the last call, oldest first.
    pub(super) fn take_committed(&self) -> Vec<HashSet<String>> {
        std::mem::take(&mut self.lock().committed)
    }

    /// Installs the hooks on the writer connection. `ids` learns about every commit and
    /// rollback too, so a rolled-back transaction gives its upload ids back.
    pub(super) fn install(
        self: &Arc<Self>,
        conn: &mut Connection,
        ids: &Arc<CrudIds>,
    ) -> rusqlite::Result<()> {
        let tracker = Arc::clone(self);
        conn.update_hook(Some(
            move |_: Action, _db: &str, table: &str, _rowid: i64| {
                let mut state = tracker.lock();
                if !state.touched.iter().any(|t| t == table) {
                    state.touched.push(table.to_owned());
                }
            },
        ))?;
        let (tracker, committed_ids) = (Arc::clone(self), Arc::clone(ids));
        conn.commit_hook(Some(move || {
            committed_ids.transaction_committed();
            let mut state = tracker.lock();
            let touched = std::mem::take(&mut state.touched);
            if !touched.is_empty() {
                state.committed.push(touched.into_iter().collect());
            }
            false // never veto the commit
        }))?;
        let (tracker, rolled_back_ids) = (Arc::clone(self), Arc::clone(ids));
        conn.rollback_hook(Some(move || {
            rolled_back_ids.transaction_rolled_back();
            tracker.lock().touched.clear();
        }))?;
        Ok(())
    }
}
