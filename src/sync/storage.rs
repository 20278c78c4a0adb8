//! Bucket storage (spec §3–4): storing ops, checksum bookkeeping, validation, applying a
//! checkpoint to the data tables, the write-checkpoint gate, and clearing.
//!
//! Every function here runs inside a write transaction the caller opened, so one sync
//! line (or one apply) is all-or-nothing and readers never see half of it.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, params};

use super::protocol::{BucketChecksum, DataLine, OpType};
use crate::Result;
use crate::schema::GATE_PENDING;

/// The priority recorded in `ps_sync_state` for a complete (all-priority) sync.
pub(crate) const FULL_SYNC_PRIORITY: i64 = i32::MAX as i64;

/// The checkpoint the client is downloading towards (spec §2.1–2.2), held in memory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TargetCheckpoint {
    pub(crate) last_op_id: i64,
    pub(crate) write_checkpoint: Option<i64>,
    pub(crate) buckets: BTreeMap<String, BucketChecksum>,
}

impl TargetCheckpoint {
    /// Buckets with priority number ≤ `priority` (all when `None`).
    pub(crate) fn buckets_in_scope(&self, priority: Option<u8>) -> Vec<&BucketChecksum> {
        self.buckets
            .values()
            .filter(|b| priority.is_none_or(|p| b.priority <= p))
            .collect()
    }
}

/// A bucket whose local checksum disagreed with the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChecksumMismatch {
    pub(crate) bucket: String,
    pub(crate) expected: u32,
    pub(crate) op_checksum: u32,
    pub(crate) add_checksum: u32,
}

impl std::fmt::Display for ChecksumMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let actual = self.op_checksum.wrapping_add(self.add_checksum);
        write!(
            f,
            "{} (expected {:#010x}, got {actual:#010x} = {:#010x} (op) + {:#010x} (add))",
            self.bucket, self.expected, self.op_checksum, self.add_checksum
        )
    }
}

/// Whether an apply reached the data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApplyOutcome {
    Applied,
    /// Local writes are pending (or not yet confirmed by a write checkpoint).
    Blocked,
}

/// Per-bucket download counters as stored (spec §7.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StoredCounts {
    pub(crate) at_last: u64,
    pub(crate) since_last: u64,
}

/// Buckets to list in the next request, with the op id to resume after.
pub(crate) fn requested_buckets(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, last_op FROM ps_buckets WHERE pending_delete = 0 ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Stores one `data` line (spec §4.5). Returns how many ops it held.
pub(crate) fn store_data(conn: &Connection, line: &DataLine, line_bytes: usize) -> Result<u64> {
    if line.data.is_empty() {
        return Ok(0);
    }
    conn.prepare_cached("INSERT INTO ps_buckets(name) VALUES (?1) ON CONFLICT(name) DO NOTHING")?
        .execute([&line.bucket])?;
    let (bucket_id, last_applied, last_op): (i64, i64, i64) = conn
        .prepare_cached("SELECT id, last_applied_op, last_op FROM ps_buckets WHERE name = ?1")?
        .query_row([&line.bucket], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    // Ops at or before the bucket's position are stored already (the service resumes
    // after it); storing one again would count its checksum twice.
    let fresh = line.data.partition_point(|op| op.op_id.0 <= last_op);
    if fresh > 0 {
        tracing::debug!(bucket = %line.bucket, skipped = fresh, "ignoring ops already stored");
    }
    let ops = &line.data[fresh..];
    if ops.is_empty() {
        return Ok(0);
    }
    // A bucket never applied has no visible rows, so its removals need no re-derive marks.
    let mut empty = last_applied == 0;
    let mut cleared = false;
    let (mut add, mut opsum) = (0u32, 0u32);
    let mut supersede = conn.prepare_cached(
        "DELETE FROM ps_oplog WHERE row_type = ?1 AND row_id = ?2 AND bucket = ?3 AND subkey = ?4 \
         RETURNING hash",
    )?;
    // The common case (a row not stored in this bucket yet) costs one insert: the primary
    // key detects a superseded op, which then takes the slower path.
    let mut insert = conn.prepare_cached(
        "INSERT INTO ps_oplog(row_type, row_id, bucket, subkey, op_id, data, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
    )?;
    let mut mark = conn.prepare_cached(
        "INSERT OR IGNORE INTO ps_updated_rows(row_type, row_id) VALUES (?1, ?2)",
    )?;
    // Rows with new ops in a bucket applied before; a bucket never applied (an initial
    // download) needs no such list: all its ops are new.
    let mut pending = conn.prepare_cached(
        "INSERT OR IGNORE INTO ps_oplog_pending(bucket, row_type, row_id) VALUES (?1, ?2, ?3)",
    )?;
    for op in ops {
        let checksum = op.checksum.0;
        match (op.op, &op.object_type, &op.object_id) {
            (OpType::Put | OpType::Remove, Some(row_type), Some(row_id)) => {
                let subkey = op.subkey.as_deref().unwrap_or("null");
                let key = params![row_type, row_id, bucket_id, subkey];
                let stored = |insert: &mut rusqlite::CachedStatement<'_>| {
                    let values = params![
                        row_type,
                        row_id,
                        bucket_id,
                        subkey,
                        op.op_id.0,
                        op.data,
                        checksum as i32
                    ];
                    insert.execute(values)
                };
                if op.op == OpType::Put && stored(&mut insert)? == 1 {
                    opsum = opsum.wrapping_add(checksum);
                    if !empty {
                        pending.execute(params![bucket_id, row_type, row_id])?;
                    }
                    continue;
                }
                let mut superseded = false;
                let mut rows = supersede.query(key)?;
                while let Some(row) = rows.next()? {
                    let hash = row.get::<_, i64>(0)? as u32;
                    add = add.wrapping_add(hash);
                    opsum = opsum.wrapping_sub(hash);
                    superseded |= !empty;
                }
                drop(rows);
                if op.op == OpType::Remove {
                    add = add.wrapping_add(checksum);
                    if superseded {
                        mark.execute(params![row_type, row_id])?;
                    }
                } else {
                    stored(&mut insert)?;
                    opsum = opsum.wrapping_add(checksum);
                    if !empty {
                        pending.execute(params![bucket_id, row_type, row_id])?;
                    }
                }
            }
            // A PUT or REMOVE naming no row cannot be stored or applied; its checksum
            // still counts.
            (OpType::Put | OpType::Remove, _, _) => add = add.wrapping_add(checksum),
            (OpType::Move, _, _) => add = add.wrapping_add(checksum),
            (OpType::Clear, _, _) => {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO ps_updated_rows(row_type, row_id) \
                     SELECT row_type, row_id FROM ps_oplog WHERE bucket = ?1",
                )?
                .execute([bucket_id])?;
                forget_ops(conn, bucket_id)?;
                // Everything before the CLEAR is replaced by its checksum.
                add = checksum;
                opsum = 0;
                empty = true;
                cleared = true;
            }
        }
    }
    let last = ops.last().map_or(0, |op| op.op_id.0);
    let count = ops.len() as u64;
    if cleared {
        conn.prepare_cached(
            "UPDATE ps_buckets SET last_applied_op = 0, add_checksum = 0, op_checksum = 0 WHERE id = ?1",
        )?
        .execute([bucket_id])?;
    }
    conn.prepare_cached(
        "UPDATE ps_buckets SET last_op = ?2, \
           add_checksum = (add_checksum + ?3) & 0xffffffff, \
           op_checksum = (op_checksum + ?4) & 0xffffffff, \
           count_since_last = count_since_last + ?5, downloaded_size = downloaded_size + ?6 \
         WHERE id = ?1",
    )?
    .execute(params![
        bucket_id,
        last,
        i64::from(add),
        i64::from(opsum),
        count as i64,
        line_bytes as i64
    ])?;
    Ok(count)
}

/// Deletes buckets locally (spec §4.8): their rows are marked for re-derivation at the
/// next full apply, their ops and bookkeeping dropped.
pub(crate) fn delete_buckets<'a>(
    conn: &Connection,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let mut find = conn.prepare_cached("SELECT id FROM ps_buckets WHERE name = ?1")?;
    for name in names {
        let Some(id) = find.query_row([name], |r| r.get::<_, i64>(0)).optional()? else {
            continue;
        };
        conn.prepare_cached(
            "INSERT OR IGNORE INTO ps_updated_rows(row_type, row_id) \
             SELECT row_type, row_id FROM ps_oplog WHERE bucket = ?1",
        )?
        .execute([id])?;
        forget_ops(conn, id)?;
        conn.prepare_cached("DELETE FROM ps_buckets WHERE id = ?1")?
            .execute([id])?;
        tracing::debug!(bucket = name, "deleted bucket");
    }
    Ok(())
}

/// Drops a bucket's stored ops (a scan of the op log: there is no index by bucket, to
/// keep storing an op cheap; clearing or dropping a bucket is rare).
fn forget_ops(conn: &Connection, bucket_id: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM ps_oplog WHERE bucket = ?1")?
        .execute([bucket_id])?;
    conn.prepare_cached("DELETE FROM ps_oplog_pending WHERE bucket = ?1")?
        .execute([bucket_id])?;
    Ok(())
}

/// Compares the local checksums of the buckets in scope with the checkpoint's (spec §3.4).
pub(crate) fn validate(
    conn: &Connection,
    checkpoint: &TargetCheckpoint,
    priority: Option<u8>,
) -> Result<Vec<ChecksumMismatch>> {
    let mut stmt =
        conn.prepare_cached("SELECT add_checksum, op_checksum FROM ps_buckets WHERE name = ?1")?;
    let mut mismatches = Vec::new();
    for bucket in checkpoint.buckets_in_scope(priority) {
        let (add, op): (i64, i64) = stmt
            .query_row([&bucket.bucket], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0));
        let (add, op) = (add as u32, op as u32);
        if add.wrapping_add(op) != bucket.checksum.0 {
            mismatches.push(ChecksumMismatch {
                bucket: bucket.bucket.clone(),
                expected: bucket.checksum.0,
                op_checksum: op,
                add_checksum: add,
            });
        }
    }
    Ok(mismatches)
}

/// Reads the stored download counters of the checkpoint's buckets and resets those of
/// buckets that shrank (compaction, redeploy), so progress never runs past 100 %.
pub(crate) fn progress_counts(
    conn: &Connection,
    checkpoint: &TargetCheckpoint,
) -> Result<HashMap<String, StoredCounts>> {
    let mut read = conn
        .prepare_cached("SELECT count_at_last, count_since_last FROM ps_buckets WHERE name = ?1")?;
    let mut counts = HashMap::new();
    for bucket in checkpoint.buckets.values() {
        let stored = read
            .query_row([&bucket.bucket], |r| {
                Ok(StoredCounts {
                    at_last: r.get::<_, i64>(0)?.max(0) as u64,
                    since_last: r.get::<_, i64>(1)?.max(0) as u64,
                })
            })
            .optional()?
            .unwrap_or_default();
        let target = bucket.count.unwrap_or(0);
        let stored = if target < stored.at_last + stored.since_last {
            conn.prepare_cached(
                "UPDATE ps_buckets SET count_at_last = 0, count_since_last = 0 WHERE name = ?1",
            )?
            .execute([&bucket.bucket])?;
            StoredCounts::default()
        } else {
            stored
        };
        counts.insert(bucket.bucket.clone(), stored);
    }
    Ok(counts)
}

/// Applies a validated checkpoint (spec §4.6): everything when `priority` is `None`,
/// else only buckets with priority ≤ `priority`. `now_us` is the sync time to record.
pub(crate) fn apply(
    conn: &Connection,
    checkpoint: &TargetCheckpoint,
    priority: Option<u8>,
    now_us: i64,
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
        set_kv(conn, "last_seen_checkpoint_request_id", write_checkpoint)?;
    }
    if priority != Some(0) && gate_blocked(conn)? {
        return Ok(ApplyOutcome::Blocked);
    }
    write_rows(conn, if full { None } else { Some(&scope_json) })?;
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
            set_kv(conn, "last_applied_checkpoint_request_id", write_checkpoint)?;
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
fn write_rows(conn: &Connection, scope_json: Option<&str>) -> Result<()> {
    let tables = synced_tables(conn)?;
    let known =
        serde_json::Value::from(tables.keys().map(String::as_str).collect::<Vec<_>>()).to_string();
    let initial: bool = scope_json.is_none()
        && conn
            .prepare_cached(
                "SELECT NOT EXISTS (SELECT 1 FROM ps_buckets WHERE last_applied_op > 0)",
            )?
            .query_row([], |r| r.get(0))?;
    if initial {
        for (row_type, table) in &tables {
            let quoted = table.replace('"', "\"\"");
            // `max(op_id)` makes SQLite take `data` from the newest op of each group.
            conn.prepare_cached(&format!(
                "INSERT OR REPLACE INTO \"{quoted}\"(id, data) \
                 SELECT row_id, data FROM (SELECT row_id, data, max(op_id) FROM ps_oplog \
                   WHERE row_type = ?1 GROUP BY row_id) WHERE data IS NOT NULL"
            ))?
            .execute([row_type])?;
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
        let quoted = table.replace('"', "\"\"");
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO \"{quoted}\"(id, data) \
             SELECT row_id, data FROM temp.ps_apply_rows WHERE row_type = ?1 AND data IS NOT NULL"
        ))?
        .execute([row_type])?;
        conn.prepare_cached(&format!(
            "DELETE FROM \"{quoted}\" WHERE id IN \
             (SELECT row_id FROM temp.ps_apply_rows WHERE row_type = ?1 AND data IS NULL)"
        ))?
        .execute([row_type])?;
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
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 'ps_data__*'",
    )?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut tables = HashMap::new();
    for name in names {
        let name = name?;
        tables.insert(name["ps_data__".len()..].to_owned(), name);
    }
    Ok(tables)
}

/// Whether downloaded data must wait (spec §5.1): local writes are queued, or the
/// service has not yet confirmed the last upload with a write checkpoint.
pub(crate) fn gate_blocked(conn: &Connection) -> Result<bool> {
    if !crud_queue_empty(conn)? {
        return Ok(true);
    }
    let target = get_kv(conn, "target_checkpoint_request_id")?;
    let seen = get_kv(conn, "last_seen_checkpoint_request_id")?.unwrap_or(0);
    Ok(target.is_some_and(|target| target > seen))
}

/// Whether no local write waits for upload.
pub(crate) fn crud_queue_empty(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM ps_crud)")?
        .query_row([], |r| r.get(0))?)
}

/// The gate's target: `Some(GATE_PENDING)` while an upload awaits its write checkpoint.
pub(crate) fn gate_target(conn: &Connection) -> Result<Option<i64>> {
    get_kv(conn, "target_checkpoint_request_id")
}

/// Records the write checkpoint the service issued for our uploads.
pub(crate) fn set_gate_target(conn: &Connection, target: i64) -> Result<()> {
    set_kv(conn, "target_checkpoint_request_id", target)
}

/// Whether the gate waits for a write checkpoint that has not been requested yet.
pub(crate) fn needs_write_checkpoint(conn: &Connection) -> Result<bool> {
    Ok(gate_target(conn)? == Some(GATE_PENDING))
}

fn get_kv(conn: &Connection, key: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT CAST(value AS INTEGER) FROM ps_kv WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

fn set_kv(conn: &Connection, key: &str, value: i64) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO ps_kv(key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

/// Last successful sync per priority, as stored: `(priority, µs since the epoch)`,
/// highest priority (lowest number) first.
pub(crate) fn sync_state(conn: &Connection) -> Result<Vec<(i64, i64)>> {
    let mut stmt = conn
        .prepare_cached("SELECT priority, last_synced_at FROM ps_sync_state ORDER BY priority")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A download of at least this many ops checkpoints the WAL less often while it runs
/// (`Database::set_bulk_writes`).
pub(crate) const BULK_DOWNLOAD_OPS: u64 = 10_000;

/// Deletes all synced state and data (spec §4.9): buckets, ops, the upload queue, the
/// gate, sync times and every synced table's rows; with `clear_local`, local-only tables
/// too. The client id stays.
pub(crate) fn clear(conn: &Connection, clear_local: bool) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM ps_oplog; DELETE FROM ps_oplog_pending; DELETE FROM ps_buckets; DELETE FROM ps_crud; DELETE FROM ps_untyped; \
         DELETE FROM ps_updated_rows; DELETE FROM ps_kv WHERE key != 'client_id'; DELETE FROM ps_sync_state;",
    )?;
    super::subscriptions::clear(conn)?;
    let pattern = if clear_local {
        "ps_data*__*"
    } else {
        "ps_data__*"
    };
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB ?1")?
        .query_map([pattern], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for table in tables {
        // One row first, then the rest: a bare `DELETE FROM t` truncates without running
        // the update hook, and watchers would not hear that the table changed.
        let quoted = table.replace('"', "\"\"");
        conn.execute_batch(&format!(
            "DELETE FROM \"{quoted}\" WHERE rowid IN (SELECT rowid FROM \"{quoted}\" LIMIT 1); DELETE FROM \"{quoted}\";"
        ))?;
    }
    Ok(())
}
