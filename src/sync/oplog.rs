//! The op log (docs/sync-protocol.md §4.5, §4.8): storing the ops of a `data` line with
//! their checksum bookkeeping, deleting buckets, and the per-bucket download counters.
//!
//! Every function here runs inside a write transaction the caller opened, so one sync
//! line is all-or-nothing and readers never see half of it.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::protocol::{DataLine, OpType};
use super::target_checkpoint::TargetCheckpoint;
use crate::Result;

/// A download of at least this many ops checkpoints the WAL less often while it runs
/// (`Store::set_bulk_writes`).
pub(crate) const BULK_DOWNLOAD_OPS: u64 = 10_000;

/// Per-bucket download counters as stored (docs/sync-protocol.md §7.3).
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

/// Stores one `data` line (docs/sync-protocol.md §4.5). Returns how many ops it held.
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

/// Deletes buckets locally (docs/sync-protocol.md §4.8): their rows are marked for re-derivation at the
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
