//! The write-checkpoint gate (docs/sync-protocol.md §5): downloaded data is applied only
//! while no local write is queued and the service has confirmed, with a write checkpoint,
//! that it reflects every upload. Its state is three `ps_kv` keys, plus a fourth in
//! checkpoint-request mode (the last id this client allocated, §5.3), read and written
//! only here.

use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;

/// The write checkpoint the gate waits for; [`PENDING`] while an upload awaits one.
const TARGET: &str = "target_checkpoint_request_id";
/// The write checkpoint carried by the newest complete checkpoint validated (recorded
/// even when the gate then holds its data back).
const LAST_SEEN: &str = "last_seen_checkpoint_request_id";
/// The write checkpoint carried by the newest checkpoint applied in full.
const LAST_APPLIED: &str = "last_applied_checkpoint_request_id";

/// Checkpoint-request mode (docs/sync-protocol.md §5.3): the last checkpoint request id
/// this client allocated or had acknowledged. Only grows, also across restarts.
const LAST_REQUESTED: &str = "last_requested_checkpoint_request_id";

/// The [`TARGET`] value meaning "local writes were uploaded, no write checkpoint was
/// requested for them yet".
pub(crate) const PENDING: i64 = i64::MAX;

/// Closes the gate after uploaded entries left the queue: data may only be applied again
/// once the service confirmed, through a write checkpoint, that it reflects them. With a
/// custom checkpoint (`CrudTransaction::complete_with_checkpoint`), that checkpoint is the
/// target once nothing else is queued.
pub(crate) fn close_after_upload(conn: &Connection, custom: Option<i64>) -> Result<()> {
    let target = match custom {
        Some(checkpoint) if crud_queue_empty(conn)? => checkpoint,
        _ => PENDING,
    };
    set_target(conn, target)?;
    conn.prepare_cached("DELETE FROM ps_kv WHERE key IN (?1, ?2)")?
        .execute([LAST_SEEN, LAST_APPLIED])?;
    Ok(())
}

/// Records the write checkpoint of a checkpoint that arrived.
pub(crate) fn record_seen(conn: &Connection, write_checkpoint: i64) -> Result<()> {
    set_kv(conn, LAST_SEEN, write_checkpoint)
}

/// Records the write checkpoint of a checkpoint applied in full.
pub(crate) fn record_applied(conn: &Connection, write_checkpoint: i64) -> Result<()> {
    set_kv(conn, LAST_APPLIED, write_checkpoint)
}

/// Whether downloaded data must wait (docs/sync-protocol.md §5.1): local writes are queued, or the
/// service has not yet confirmed the last upload with a write checkpoint.
pub(crate) fn is_blocked(conn: &Connection) -> Result<bool> {
    if !crud_queue_empty(conn)? {
        return Ok(true);
    }
    let target = get_kv(conn, TARGET)?;
    let seen = get_kv(conn, LAST_SEEN)?.unwrap_or(0);
    Ok(target.is_some_and(|target| target > seen))
}

/// Whether no local write waits for upload.
pub(crate) fn crud_queue_empty(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM ps_crud)")?
        .query_row([], |r| r.get(0))?)
}

/// The gate's target: `Some(PENDING)` while an upload awaits its write checkpoint.
pub(crate) fn target(conn: &Connection) -> Result<Option<i64>> {
    get_kv(conn, TARGET)
}

/// Records the write checkpoint the service issued for our uploads.
pub(crate) fn set_target(conn: &Connection, target: i64) -> Result<()> {
    set_kv(conn, TARGET, target)
}

/// Whether the gate waits for a write checkpoint that has not been requested yet.
pub(crate) fn needs_write_checkpoint(conn: &Connection) -> Result<bool> {
    Ok(target(conn)? == Some(PENDING))
}

/// The id to propose when a connection starts in checkpoint-request mode
/// (docs/sync-protocol.md §5.3 step 1): the last one allocated, or the gate's target if
/// that is a real id and larger, and at least 1. Posting it again re-posts a request
/// that may not have reached the service before a disconnect.
pub(crate) fn seed_proposal(conn: &Connection) -> Result<i64> {
    let requested = get_kv(conn, LAST_REQUESTED)?.unwrap_or(0);
    let target = target(conn)?
        .filter(|t| *t != PENDING && *t > 0)
        .unwrap_or(0);
    Ok(requested.max(target).max(1))
}

/// Records an id the service acknowledged (it may answer with a larger one it already
/// holds); the stored id never decreases.
pub(crate) fn record_requested(conn: &Connection, acknowledged: i64) -> Result<()> {
    let requested = get_kv(conn, LAST_REQUESTED)?.unwrap_or(0);
    if acknowledged > requested {
        set_kv(conn, LAST_REQUESTED, acknowledged)?;
    }
    Ok(())
}

/// Allocates the next checkpoint request id (docs/sync-protocol.md §5.3 step 2),
/// persisted before it is posted so no id is ever handed out twice.
pub(crate) fn next_request_id(conn: &Connection) -> Result<i64> {
    let next = get_kv(conn, LAST_REQUESTED)?
        .unwrap_or(0)
        .max(0)
        .checked_add(1)
        .filter(|id| *id < PENDING)
        .ok_or_else(|| {
            crate::Error::Protocol(
                "the checkpoint request ids of this database are exhausted (2^63 - 1)".into(),
            )
        })?;
    set_kv(conn, LAST_REQUESTED, next)?;
    Ok(next)
}

/// The last checkpoint request id allocated or acknowledged (0 for none).
pub(crate) fn last_requested(conn: &Connection) -> Result<i64> {
    Ok(get_kv(conn, LAST_REQUESTED)?.unwrap_or(0))
}

/// The write checkpoint of the newest complete checkpoint validated, if it carried one
/// (also when the gate then held its data back).
pub(crate) fn last_seen(conn: &Connection) -> Result<Option<i64>> {
    get_kv(conn, LAST_SEEN)
}

/// The write checkpoint of the last checkpoint applied in full, if it carried one.
pub(crate) fn last_applied(conn: &Connection) -> Result<Option<i64>> {
    get_kv(conn, LAST_APPLIED)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn gate_tables() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE ps_kv(key TEXT PRIMARY KEY NOT NULL, value BLOB);
             CREATE TABLE ps_crud(id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT);",
        )
        .unwrap();
        conn
    }

    /// docs/sync-protocol.md §11 TV11, the part the gate keeps: seeding, allocating,
    /// the gate opening on the request id, and the next connection's proposal.
    #[test]
    fn checkpoint_request_bookkeeping_follows_tv11() {
        let conn = gate_tables();
        assert_eq!(
            seed_proposal(&conn).unwrap(),
            1,
            "a fresh database proposes 1"
        );
        record_requested(&conn, 5).unwrap();
        assert_eq!(next_request_id(&conn).unwrap(), 6);
        close_after_upload(&conn, None).unwrap();
        assert!(needs_write_checkpoint(&conn).unwrap());
        set_target(&conn, 6).unwrap();
        assert!(is_blocked(&conn).unwrap(), "no checkpoint carried 6 yet");
        record_seen(&conn, 6).unwrap();
        record_applied(&conn, 6).unwrap();
        assert!(!is_blocked(&conn).unwrap());
        assert_eq!(last_applied(&conn).unwrap(), Some(6));
        assert_eq!(
            seed_proposal(&conn).unwrap(),
            6,
            "the next start proposes 6"
        );
    }

    #[test]
    fn requested_ids_never_decrease_and_a_larger_target_is_proposed() {
        let conn = gate_tables();
        record_requested(&conn, 9).unwrap();
        record_requested(&conn, 4).unwrap();
        assert_eq!(seed_proposal(&conn).unwrap(), 9);
        // A legacy write checkpoint above the requested ids (a switch of modes).
        set_target(&conn, 12).unwrap();
        assert_eq!(seed_proposal(&conn).unwrap(), 12);
        // "Pending" is no id.
        set_target(&conn, PENDING).unwrap();
        assert_eq!(seed_proposal(&conn).unwrap(), 9);
        assert_eq!(next_request_id(&conn).unwrap(), 10);
        record_requested(&conn, PENDING - 1).unwrap();
        assert!(
            next_request_id(&conn).is_err(),
            "ids are exhausted, not wrapped"
        );
    }
}
