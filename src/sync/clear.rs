//! Signing out (docs/sync-protocol.md §4.9): deleting every synced row and all sync
//! state, keeping the client id.

use rusqlite::Connection;

use crate::Result;
use crate::schema::{CheckedRawTable, names};

/// Deletes all synced state and data (docs/sync-protocol.md §4.9): buckets, ops, the upload queue, the
/// gate, sync times and every synced table's rows; with `clear_local`, local-only tables
/// too; and runs the raw tables' clear statements. The client id stays.
pub(crate) fn clear(
    conn: &Connection,
    clear_local: bool,
    raw_tables: &[CheckedRawTable],
) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM ps_oplog; DELETE FROM ps_oplog_pending; DELETE FROM ps_buckets; DELETE FROM ps_crud; DELETE FROM ps_untyped; \
         DELETE FROM ps_updated_rows; DELETE FROM ps_kv WHERE key != 'client_id'; DELETE FROM ps_sync_state;",
    )?;
    super::subscriptions::clear(conn)?;
    let pattern = if clear_local {
        names::ANY_DATA_GLOB
    } else {
        names::SYNCED_GLOB
    };
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB ?1")?
        .query_map([pattern], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for table in tables {
        // Announced to watchers like any delete: the writer's change tracking turns
        // SQLite's truncate shortcut off for data tables (see store/change_tracker.rs).
        conn.execute_batch(&format!("DELETE FROM {}", names::quote(&table)))?;
    }
    super::raw_rows::clear(conn, raw_tables)
}
