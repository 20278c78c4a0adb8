//! Which tables each transaction on the writer connection touched, collected by SQLite's
//! update, commit and rollback hooks.
//!
//! SQLite's update hook misses two kinds of change, and both are covered here:
//! - a `DELETE FROM t` without `WHERE`, which SQLite runs as one truncate: an authorizer
//!   answers `SQLITE_IGNORE` to deletes from app tables, which (by SQLite's contract)
//!   turns the truncate optimisation off so every row is deleted, and seen, one by one.
//!   livesync's internal bookkeeping tables keep the fast truncate;
//! - tables declared `WITHOUT ROWID`, for which the update hook never fires: the writer
//!   gives each such app table temporary triggers (on its own connection only) that
//!   report the table, created at open and after every statement that creates a table.
//!   Until those triggers exist (a write in the same job as the `CREATE TABLE`), the
//!   authorizer marks a written table as touched when the statement is prepared, which
//!   can only announce a change too many, never miss one.
//!
//! The contract: every committed change to a table of the schema or to an ordinary table
//! of the app's own (rowid or not) is announced. Virtual tables are not watched.
//!
//! SQLite runs the commit hook *before* the commit is visible to other connections, so
//! the hook only moves the touched tables to a "committed" list; the writer publishes
//! that list after the statement that committed has returned (see `writer.rs`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::hooks::{Action, AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;

use crate::schema::names;

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
    /// Every commit so far, whatever it touched (schema changes included): the browser's
    /// page storage saves after each (`page_storage_wasm.rs`).
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    commits: u64,
    /// A statement creating a table was prepared: `WITHOUT ROWID` tables may need triggers.
    tables_created: bool,
    /// A `DROP TABLE`/`DROP VIEW` is being prepared: SQLite checks a delete of the dropped
    /// object next, and answering IGNORE to that one would skip the drop.
    dropping: bool,
}

impl TrackerState {
    fn touch(&mut self, table: &str) {
        if !self.touched.iter().any(|t| t == table) {
            self.touched.push(table.to_owned());
        }
    }
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

    /// How many transactions have committed on the writer so far.
    #[cfg(target_arch = "wasm32")]
    pub(super) fn commits(&self) -> u64 {
        self.lock().commits
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
                tracker.lock().touch(table);
            },
        ))?;
        let tracker = Arc::clone(self);
        conn.authorizer(Some(move |context: AuthContext<'_>| {
            // Reads matter to live queries on this connection (an in-memory database's
            // only one): see `query_tables.rs`.
            super::query_tables::note_read(&context);
            tracker.authorize(context.action)
        }))?;
        let tracker = Arc::clone(self);
        conn.create_scalar_function(
            "livesync_touched",
            1,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_INNOCUOUS,
            move |ctx| {
                if let ValueRef::Text(table) = ctx.get_raw(0) {
                    tracker.lock().touch(&String::from_utf8_lossy(table));
                }
                Ok(rusqlite::types::Null)
            },
        )?;
        let (tracker, committed_ids) = (Arc::clone(self), Arc::clone(ids));
        conn.commit_hook(Some(move || {
            committed_ids.transaction_committed();
            let mut state = tracker.lock();
            state.commits += 1;
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
        self.watch_without_rowid_tables(conn)
    }

    /// The authorizer: runs while a statement is prepared, never while it runs.
    fn authorize(&self, action: AuthAction<'_>) -> Authorization {
        match action {
            AuthAction::CreateTable { .. } => {
                self.lock().tables_created = true;
                Authorization::Allow
            }
            AuthAction::DropTable { .. }
            | AuthAction::DropTempTable { .. }
            | AuthAction::DropView { .. }
            | AuthAction::DropTempView { .. } => {
                self.lock().dropping = true;
                Authorization::Allow
            }
            AuthAction::Delete { .. } if std::mem::take(&mut self.lock().dropping) => {
                Authorization::Allow
            }
            AuthAction::Delete { table_name } if is_app_table(table_name) => {
                let mut state = self.lock();
                if state.tables_created {
                    state.touch(table_name);
                }
                // SQLite's contract: IGNORE on a DELETE disables only the truncate
                // optimisation; the rows are still deleted.
                Authorization::Ignore
            }
            AuthAction::Insert { table_name } | AuthAction::Update { table_name, .. }
                if is_app_table(table_name) =>
            {
                let mut state = self.lock();
                if state.tables_created {
                    state.touch(table_name);
                }
                Authorization::Allow
            }
            _ => Authorization::Allow,
        }
    }

    /// After a job, with no transaction open: gives `WITHOUT ROWID` tables created since
    /// the last call their reporting triggers.
    pub(super) fn after_job(&self, conn: &Connection) {
        if std::mem::take(&mut self.lock().tables_created)
            && let Err(error) = self.watch_without_rowid_tables(conn)
        {
            tracing::warn!(%error, "could not watch the app's WITHOUT ROWID tables");
        }
    }

    /// Creates the temporary triggers that report writes to every `WITHOUT ROWID` app
    /// table (idempotent; a dropped table takes its triggers with it).
    fn watch_without_rowid_tables(&self, conn: &Connection) -> rusqlite::Result<()> {
        // `pragma_table_list` over the whole schema costs far more than linear time in
        // SQLite (thousands of tables took seconds); the schema's SQL text narrows the
        // candidates (the data tables never are), and the pragma confirms each by name.
        let candidates: Vec<String> = conn
            .prepare(
                "SELECT name FROM main.sqlite_schema WHERE type = 'table' \
                 AND sql LIKE '%without%rowid%' AND name NOT LIKE 'ps\\_%' ESCAPE '\\'",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut without_rowid = conn.prepare(
            "SELECT wr FROM pragma_table_list(?1) WHERE schema = 'main' AND type = 'table'",
        )?;
        let mut tables = Vec::new();
        for name in candidates {
            if without_rowid
                .query_row([&name], |row| row.get::<_, bool>(0))
                .unwrap_or(false)
            {
                tables.push(name);
            }
        }
        for table in tables.iter().filter(|t| is_app_table(t)) {
            for event in ["INSERT", "UPDATE", "DELETE"] {
                let trigger = names::quote(&format!("livesync_watch_{event}__{table}"));
                conn.execute_batch(&format!(
                    "CREATE TEMP TRIGGER IF NOT EXISTS {trigger} AFTER {event} ON main.{} \
                     BEGIN SELECT livesync_touched({}); END",
                    names::quote(table),
                    names::literal(table),
                ))?;
            }
        }
        Ok(())
    }
}

/// Tables whose changes apps may watch: livesync's data tables and the app's own tables,
/// not livesync's bookkeeping (`ps_*`) nor SQLite's (`sqlite_*`).
fn is_app_table(table: &str) -> bool {
    names::is_data_table(table) || !(table.starts_with("ps_") || names::is_sqlite_reserved(table))
}
