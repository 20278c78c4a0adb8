//! Applying a validated checkpoint to the data tables (docs/sync-protocol.md §4.6):
//! every row touched since the last apply is re-derived from its newest stored op, in
//! one write transaction, unless the write-checkpoint gate holds the data back.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::raw_rows;
use super::target_checkpoint::TargetCheckpoint;
use super::write_gate;
use crate::Result;
use crate::schema::{CheckedRawTable, names};

/// The priority recorded in `ps_sync_state` for a complete (all-priority) sync.
pub(crate) const FULL_SYNC_PRIORITY: i64 = i32::MAX as i64;

/// Whether an apply reached the data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApplyOutcome {
    Applied,
    /// Local writes are pending (or not yet confirmed by a write checkpoint).
    Blocked,
}

/// Applies a validated checkpoint (docs/sync-protocol.md §4.6): everything when `priority` is `None`,
/// else only buckets with priority ≤ `priority`. `now_us` is the sync time to record.
pub(crate) fn apply(
    conn: &Connection,
    checkpoint: &TargetCheckpoint,
    priority: Option<u8>,
    now_us: i64,
    raw_tables: &[CheckedRawTable],
) -> Result<ApplyOutcome> {
    let scope: Vec<&str> = checkpoint
        .buckets_in_scope(priority)
        .into_iter()
        .map(|b| b.bucket.as_str())
        .collect();
    let scope_json = serde_json::Value::from(scope).to_string();
    conn.prepare_cached(
        "UPDATE ps_buckets SET last_op = ?1 WHERE name IN (SELECT value FROM json_each(?2))",
    )?
    .execute(params![checkpoint.last_op_id, scope_json])?;
    let full = priority.is_none();
    if full && let Some(write_checkpoint) = checkpoint.write_checkpoint {
        write_gate::record_seen(conn, write_checkpoint)?;
    }
    if priority != Some(0) && write_gate::is_blocked(conn)? {
        return Ok(ApplyOutcome::Blocked);
    }
    write_rows(
        conn,
        if full { None } else { Some(&scope_json) },
        raw_tables,
    )?;
    if full {
        conn.execute_batch(
            "UPDATE ps_buckets SET last_applied_op = last_op; DELETE FROM ps_updated_rows; \
             DELETE FROM ps_oplog_pending;",
        )?;
        let mut reset = conn.prepare_cached(
            "UPDATE ps_buckets SET count_at_last = ?2, count_since_last = 0 WHERE name = ?1",
        )?;
        for bucket in checkpoint.buckets.values() {
            if let Some(count) = bucket.count {
                reset.execute(params![bucket.bucket, count as i64])?;
            }
        }
        conn.prepare_cached("DELETE FROM ps_sync_state WHERE priority < ?1")?
            .execute([FULL_SYNC_PRIORITY])?;
        record_sync(conn, FULL_SYNC_PRIORITY, now_us)?;
        if let Some(write_checkpoint) = checkpoint.write_checkpoint {
            write_gate::record_applied(conn, write_checkpoint)?;
        }
    } else {
        conn.prepare_cached(
            "UPDATE ps_buckets SET last_applied_op = last_op WHERE name IN (SELECT value FROM json_each(?1))",
        )?
        .execute([&scope_json])?;
        conn.prepare_cached(
            "DELETE FROM ps_oplog_pending WHERE bucket IN \
             (SELECT id FROM ps_buckets WHERE name IN (SELECT value FROM json_each(?1)))",
        )?
        .execute([&scope_json])?;
        let priority = i64::from(priority.unwrap_or_default());
        conn.prepare_cached("DELETE FROM ps_sync_state WHERE priority < ?1")?
            .execute([priority])?;
        record_sync(conn, priority, now_us)?;
    }
    Ok(ApplyOutcome::Applied)
}

fn record_sync(conn: &Connection, priority: i64, now_us: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO ps_sync_state(priority, last_synced_at) VALUES (?1, ?2)",
    )?
    .execute([priority, now_us])?;
    Ok(())
}

/// Re-derives every row touched since the last apply: the newest stored op for the row
/// (across all buckets, or the in-scope ones) wins; no op means the row is deleted.
///
/// Runs as a few set-based statements per table inside SQLite rather than a Rust loop
/// over rows. An initial download (no bucket applied yet) takes a faster route: every
/// stored op is new, so the newest op per row comes from one ordered pass over the ops.
fn write_rows(
    conn: &Connection,
    scope_json: Option<&str>,
    raw_tables: &[CheckedRawTable],
) -> Result<()> {
    let tables = synced_tables(conn)?;
    // Types with a home: a JSON table's data table or a raw table. The rest are parked
    // in ps_untyped.
    let known = serde_json::Value::from(
        tables
            .keys()
            .map(String::as_str)
            .chain(raw_tables.iter().map(|raw| raw.name.as_str()))
            .collect::<Vec<_>>(),
    )
    .to_string();
    let initial: bool = scope_json.is_none()
        && conn
            .prepare_cached(
                "SELECT NOT EXISTS (SELECT 1 FROM ps_buckets WHERE last_applied_op > 0)",
            )?
            .query_row([], |r| r.get(0))?;
    if initial {
        for (row_type, table) in &tables {
            let quoted = names::quote(table);
            // `max(op_id)` makes SQLite take `data` from the newest op of each group.
            conn.prepare_cached(&format!(
                "INSERT OR REPLACE INTO {quoted}(id, data) \
                 SELECT row_id, data FROM (SELECT row_id, data, max(op_id) FROM ps_oplog \
                   WHERE row_type = ?1 GROUP BY row_id) WHERE data IS NOT NULL"
            ))?
            .execute([row_type])?;
        }
        for raw in raw_tables {
            raw_rows::write_selected(
                conn,
                raw,
                "SELECT row_id, data FROM (SELECT row_id, data, max(op_id) FROM ps_oplog \
                 WHERE row_type = ?1 GROUP BY row_id) WHERE data IS NOT NULL",
            )?;
        }
        conn.prepare_cached(
            "INSERT OR REPLACE INTO ps_untyped(type, id, data) \
             SELECT row_type, row_id, data FROM (SELECT row_type, row_id, data, max(op_id) FROM ps_oplog \
               WHERE row_type NOT IN (SELECT value FROM json_each(?1)) \
               GROUP BY row_type, row_id) WHERE data IS NOT NULL",
        )?
        .execute([&known])?;
    }
    // The rows to re-derive, with the newest op's data (NULL: delete the row). After an
    // initial download only the rows marked in ps_updated_rows remain to be done.
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS ps_apply_rows(row_type TEXT NOT NULL, row_id TEXT NOT NULL, data TEXT, \
           PRIMARY KEY(row_type, row_id)) WITHOUT ROWID; DELETE FROM temp.ps_apply_rows;",
    )?;
    let newest = |scope: &str| {
        format!(
            "(SELECT n.data FROM ps_oplog n WHERE n.row_type = c.row_type AND n.row_id = c.row_id {scope} \
              ORDER BY n.op_id DESC LIMIT 1)"
        )
    };
    // Rows with new ops: those listed as pending (buckets applied before), and every
    // op of a bucket never applied (a scan of the op log, only when there is one).
    let in_scope = "SELECT id FROM ps_buckets WHERE name IN (SELECT value FROM json_each(?1))";
    let (pending, fresh_filter) = match scope_json {
        None => (String::new(), ""),
        Some(_) => (
            format!("WHERE bucket IN ({in_scope})"),
            " AND name IN (SELECT value FROM json_each(?1))",
        ),
    };
    let mut sources = vec![format!(
        "SELECT row_type, row_id FROM ps_oplog_pending {pending}"
    )];
    if !initial {
        let fresh_sql = format!(
            "SELECT EXISTS (SELECT 1 FROM ps_buckets WHERE last_applied_op = 0{fresh_filter})"
        );
        let mut fresh = conn.prepare_cached(&fresh_sql)?;
        let any_fresh: bool = match scope_json {
            None => fresh.query_row([], |r| r.get(0))?,
            Some(scope) => fresh.query_row([scope], |r| r.get(0))?,
        };
        if any_fresh {
            sources.push(format!(
                "SELECT row_type, row_id FROM ps_oplog WHERE bucket IN \
                 (SELECT id FROM ps_buckets WHERE last_applied_op = 0{fresh_filter})"
            ));
        }
    }
    if scope_json.is_none() {
        sources.push("SELECT row_type, row_id FROM ps_updated_rows".to_owned());
    }
    let newest_scope = match scope_json {
        None => String::new(),
        Some(_) => format!("AND n.bucket IN ({in_scope})"),
    };
    let mut collect = conn.prepare_cached(&format!(
        "INSERT INTO temp.ps_apply_rows(row_type, row_id, data) \
         SELECT c.row_type, c.row_id, {} FROM ({}) c",
        newest(&newest_scope),
        sources.join(" UNION ")
    ))?;
    match scope_json {
        None => collect.execute([])?,
        Some(scope) => collect.execute([scope])?,
    };
    for (row_type, table) in &tables {
        let quoted = names::quote(table);
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {quoted}(id, data) \
             SELECT row_id, data FROM temp.ps_apply_rows WHERE row_type = ?1 AND data IS NOT NULL"
        ))?
        .execute([row_type])?;
        conn.prepare_cached(&format!(
            "DELETE FROM {quoted} WHERE id IN \
             (SELECT row_id FROM temp.ps_apply_rows WHERE row_type = ?1 AND data IS NULL)"
        ))?
        .execute([row_type])?;
    }
    for raw in raw_tables {
        raw_rows::write_selected(
            conn,
            raw,
            "SELECT row_id, data FROM temp.ps_apply_rows WHERE row_type = ?1",
        )?;
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO ps_untyped(type, id, data) SELECT row_type, row_id, data FROM temp.ps_apply_rows \
         WHERE data IS NOT NULL AND row_type NOT IN (SELECT value FROM json_each(?1))",
    )?
    .execute([&known])?;
    conn.prepare_cached(
        "DELETE FROM ps_untyped WHERE (type, id) IN (SELECT row_type, row_id FROM temp.ps_apply_rows \
         WHERE data IS NULL AND row_type NOT IN (SELECT value FROM json_each(?1)))",
    )?
    .execute([&known])?;
    conn.execute_batch("DELETE FROM temp.ps_apply_rows")?;
    Ok(())
}

/// Synced object type → its data table, as present in the database right now (the
/// schema may have changed since the download started).
fn synced_tables(conn: &Connection) -> Result<HashMap<String, String>> {
    let mut stmt = conn
        .prepare_cached("SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB ?1")?;
    let found = stmt.query_map([names::SYNCED_GLOB], |r| r.get::<_, String>(0))?;
    let mut tables = HashMap::new();
    for name in found {
        let name = name?;
        if let Some(object_type) = names::synced_type(&name) {
            tables.insert(object_type.to_owned(), name.clone());
        }
    }
    Ok(tables)
}

/// Last successful sync per priority, as stored: `(priority, µs since the epoch)`,
/// highest priority (lowest number) first.
pub(crate) fn sync_state(conn: &Connection) -> Result<Vec<(i64, i64)>> {
    let mut stmt = conn
        .prepare_cached("SELECT priority, last_synced_at FROM ps_sync_state ORDER BY priority")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
