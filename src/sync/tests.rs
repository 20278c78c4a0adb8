//! The test vectors of docs/sync-protocol.md §11, replayed line by line through the
//! iteration state machine on an in-memory database, checking the same observable facts
//! the spec lists (bucket bookkeeping, stored ops, re-derive marks, gate keys, rows,
//! status).

use super::iteration::{Iteration, Next};
use super::protocol::SyncLine;
use super::status::{FULL_SYNC, PriorityProgress, StatusCell};
use super::stream_state::StreamState;
use super::subscriptions;
use super::{clear, oplog, write_gate};
use crate::{Column, Database, Error, Schema, Table};

struct Harness {
    db: Database,
    iteration: Iteration,
    status: StatusCell,
}

/// `name: last_op/last_applied_op, add+op, count_at_last/count_since_last` as in the spec.
#[derive(Debug, PartialEq)]
struct Bucket {
    last_op: i64,
    last_applied_op: i64,
    add: i64,
    op: i64,
    count_at_last: i64,
    count_since_last: i64,
}

fn b(last_op: i64, last_applied_op: i64, add: i64, op: i64, at: i64, since: i64) -> Bucket {
    Bucket {
        last_op,
        last_applied_op,
        add,
        op,
        count_at_last: at,
        count_since_last: since,
    }
}

impl Harness {
    async fn new() -> Self {
        let schema = Schema::new([Table::new(
            "todos",
            [Column::text("description"), Column::integer("done")],
        )]);
        Self {
            db: Database::in_memory(schema).await.unwrap(),
            iteration: Iteration::new(Vec::new(), StreamState::default()),
            status: StatusCell::new(),
        }
    }

    /// Starts a new iteration, as after a reconnect, with the buckets a request would list.
    async fn reconnect(&mut self) -> Vec<(String, i64)> {
        let (buckets, requested, rows) = self
            .db
            .read(|c| {
                Ok((
                    oplog::requested_buckets(c)?,
                    subscriptions::requested(c)?,
                    subscriptions::rows(c)?,
                ))
            })
            .await
            .unwrap();
        self.iteration = Iteration::new(
            buckets.iter().map(|(n, _)| n.clone()).collect(),
            StreamState::new(requested, rows),
        );
        buckets
    }

    async fn line(&mut self, line: &str) -> crate::Result<Next> {
        let parsed = SyncLine::parse(line.as_bytes())?;
        let next = self
            .iteration
            .handle(self.db.store(), &self.status, parsed, line.len())
            .await?;
        // Data lines are stored in the background; the checks below read the database.
        self.iteration.flush(&self.status).await?;
        Ok(next)
    }

    async fn lines(&mut self, lines: &[&str]) {
        for line in lines {
            let next = self.line(line).await.unwrap();
            assert!(matches!(next, Next::Continue), "{line} gave {next:?}");
        }
    }

    async fn bucket(&self, name: &str) -> Option<Bucket> {
        let name = name.to_owned();
        self.db
            .read(move |c| {
                use rusqlite::OptionalExtension;
                Ok(c.query_row(
                    "SELECT last_op, last_applied_op, add_checksum, op_checksum, count_at_last, count_since_last \
                     FROM ps_buckets WHERE name = ?1",
                    [name],
                    |r| Ok(b(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                )
                .optional()?)
            })
            .await
            .unwrap()
    }

    async fn strings(&self, sql: &'static str) -> Vec<String> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare(sql)?;
                let rows = stmt.query_map([], |r| {
                    Ok(match r.get::<_, rusqlite::types::Value>(0)? {
                        rusqlite::types::Value::Text(text) => text,
                        rusqlite::types::Value::Integer(n) => n.to_string(),
                        other => format!("{other:?}"),
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
            .unwrap()
    }

    async fn todos(&self) -> Vec<String> {
        self.strings(
            "SELECT id || ':' || ifnull(description, 'NULL') || ':' || ifnull(done, 'NULL') FROM todos ORDER BY id",
        )
        .await
    }

    async fn updated_rows(&self) -> Vec<String> {
        self.strings("SELECT row_type || '/' || row_id FROM ps_updated_rows ORDER BY 1")
            .await
    }

    async fn kv(&self) -> Vec<String> {
        self.strings("SELECT key || '=' || value FROM ps_kv WHERE key != 'client_id' ORDER BY key")
            .await
    }
}

const TV1: [&str; 3] = [
    r#"{"checkpoint":{"last_op_id":"3","write_checkpoint":null,"buckets":[{"bucket":"b1","checksum":60,"priority":3,"count":3}]}}"#,
    r#"{"data":{"bucket":"b1","data":[{"op_id":"1","op":"PUT","object_type":"todos","object_id":"t1","checksum":10,"subkey":"s","data":"{\"description\":\"a\",\"done\":0}"},{"op_id":"2","op":"PUT","object_type":"todos","object_id":"t2","checksum":20,"subkey":"s","data":"{\"description\":\"b\"}"},{"op_id":"3","op":"PUT","object_type":"lists","object_id":"l1","checksum":30,"data":"{\"name\":\"x\"}"}],"has_more":false,"after":"0","next_after":"3"}}"#,
    r#"{"checkpoint_complete":{"last_op_id":"3"}}"#,
];

#[tokio::test]
async fn tv1_initial_sync_and_unknown_object_type() {
    let mut h = Harness::new().await;
    assert!(h.reconnect().await.is_empty());
    h.lines(&TV1[..1]).await;
    let progress = h.status.get().downloading.unwrap();
    assert_eq!((progress.downloaded, progress.total), (0, 3));
    assert!(h.status.get().connected);

    h.lines(&TV1[1..2]).await;
    assert_eq!(h.bucket("b1").await.unwrap(), b(3, 0, 0, 60, 0, 3));
    assert_eq!(
        h.strings("SELECT row_type || '/' || row_id || '/' || subkey FROM ps_oplog ORDER BY op_id")
            .await,
        ["todos/t1/s", "todos/t2/s", "lists/l1/null"]
    );
    assert_eq!(h.status.get().downloading.unwrap().downloaded, 3);
    assert!(
        h.todos().await.is_empty(),
        "nothing is visible before the complete line"
    );

    h.lines(&TV1[2..]).await;
    assert_eq!(h.bucket("b1").await.unwrap(), b(3, 3, 0, 60, 3, 0));
    assert_eq!(h.todos().await, ["t1:a:0", "t2:b:NULL"]);
    assert_eq!(
        h.strings("SELECT type || '/' || id || '/' || data FROM ps_untyped")
            .await,
        [r#"lists/l1/{"name":"x"}"#]
    );
    let status = h.status.get();
    assert!(status.has_synced && status.downloading.is_none());
    assert_eq!(status.priority_status[0].priority, FULL_SYNC);
}

#[tokio::test]
async fn tv2_supersede_remove_diff_and_resume_position() {
    let mut h = Harness::new().await;
    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"2","buckets":[{"bucket":"b1","checksum":30,"priority":3,"count":2}]}}"#,
        r#"{"data":{"bucket":"b1","data":[{"op_id":"1","op":"PUT","object_type":"todos","object_id":"t1","checksum":10,"subkey":"s","data":"{\"description\":\"v1\"}"},{"op_id":"2","op":"PUT","object_type":"todos","object_id":"t2","checksum":20,"subkey":"s","data":"{\"description\":\"w\"}"}]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"2"}}"#,
    ])
    .await;
    assert_eq!(h.bucket("b1").await.unwrap(), b(2, 2, 0, 30, 2, 0));

    h.lines(&[r#"{"checkpoint_diff":{"last_op_id":"4","updated_buckets":[{"bucket":"b1","checksum":105,"priority":3,"count":4}],"removed_buckets":[]}}"#]).await;
    let progress = h.status.get().downloading.unwrap();
    assert_eq!((progress.downloaded, progress.total), (0, 2));

    h.lines(&[r#"{"data":{"bucket":"b1","data":[{"op_id":"3","op":"PUT","object_type":"todos","object_id":"t1","checksum":40,"subkey":"s","data":"{\"description\":\"v2\",\"done\":1}"},{"op_id":"4","op":"REMOVE","object_type":"todos","object_id":"t2","checksum":35,"subkey":"s","data":null}]}}"#]).await;
    assert_eq!(h.bucket("b1").await.unwrap(), b(4, 2, 65, 40, 2, 2));
    assert_eq!(h.strings("SELECT op_id FROM ps_oplog").await.len(), 1);
    assert_eq!(h.updated_rows().await, ["todos/t2"]);
    assert_eq!(
        h.strings("SELECT row_type || '/' || row_id FROM ps_oplog_pending")
            .await,
        ["todos/t1"],
        "the new op of an applied bucket is listed for the next apply"
    );
    assert_eq!(h.todos().await, ["t1:v1:NULL", "t2:w:NULL"]);

    h.lines(&[r#"{"checkpoint_complete":{"last_op_id":"4"}}"#])
        .await;
    assert_eq!(h.bucket("b1").await.unwrap(), b(4, 4, 65, 40, 4, 0));
    assert_eq!(h.todos().await, ["t1:v2:1"]);
    assert!(h.updated_rows().await.is_empty());
    assert!(
        h.strings("SELECT row_id FROM ps_oplog_pending")
            .await
            .is_empty()
    );
    assert_eq!(h.reconnect().await, [("b1".to_owned(), 4)]);
}

#[tokio::test]
async fn tv3_checksum_encodings_and_wrap_around() {
    let mut h = Harness::new().await;
    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"3","buckets":[{"bucket":"a","checksum":4,"priority":3,"count":2},{"bucket":"b2","checksum":-721471609,"count":1}]}}"#,
        r#"{"data":{"bucket":"a","data":[{"op_id":"1","op":"PUT","object_type":"todos","object_id":"t1","checksum":4294967290,"subkey":"s","data":"{\"description\":\"x\"}"},{"op_id":"2","op":"PUT","object_type":"todos","object_id":"t2","checksum":10,"subkey":"s","data":"{\"description\":\"y\"}"}]}}"#,
        r#"{"data":{"bucket":"b2","data":[{"op_id":"3","op":"PUT","object_type":"todos","object_id":"t3","checksum":3573495687,"subkey":"s","data":"{\"description\":\"z\"}"}]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"3"}}"#,
    ])
    .await;
    assert_eq!(h.bucket("a").await.unwrap().op, 4);
    assert_eq!(h.bucket("b2").await.unwrap().op, 3_573_495_687);
    assert_eq!(
        h.strings("SELECT hash FROM ps_oplog ORDER BY op_id").await,
        ["-6", "10", "-721471609"]
    );
    assert_eq!(h.todos().await.len(), 3);
}

#[tokio::test]
async fn tv4_checksum_mismatch_drops_only_the_bad_bucket() {
    let mut h = Harness::new().await;
    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"2","buckets":[{"bucket":"b1","checksum":4294967295,"priority":3,"count":2},{"bucket":"b2","checksum":-721471609,"count":1}]}}"#,
        r#"{"data":{"bucket":"b1","data":[{"op_id":"1","op":"PUT","object_type":"todos","object_id":"t1","checksum":4294967290,"subkey":"s","data":"{\"description\":\"a\"}"},{"op_id":"2","op":"PUT","object_type":"todos","object_id":"t2","checksum":5,"subkey":"s","data":"{\"description\":\"b\"}"}]}}"#,
        r#"{"data":{"bucket":"b2","data":[{"op_id":"2","op":"PUT","object_type":"todos","object_id":"t3","checksum":3573495687,"subkey":"s","data":"{\"description\":\"c\"}"}]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"2"}}"#,
    ])
    .await;
    assert_eq!(
        h.bucket("b1").await.unwrap(),
        b(2, 2, 0, 4_294_967_295, 2, 0)
    );
    assert_eq!(
        h.bucket("b2").await.unwrap(),
        b(2, 2, 0, 3_573_495_687, 1, 0)
    );
    assert_eq!(
        h.reconnect().await,
        [("b1".to_owned(), 2), ("b2".to_owned(), 2)]
    );

    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"3","buckets":[{"bucket":"b1","checksum":4294967295,"priority":3,"count":2},{"bucket":"b2","checksum":1,"count":2}]}}"#,
        r#"{"data":{"bucket":"b2","data":[{"op_id":"3","op":"PUT","object_type":"todos","object_id":"t4","checksum":100,"subkey":"s","data":"{\"description\":\"d\"}"}]}}"#,
    ])
    .await;
    let next = h
        .line(r#"{"checkpoint_complete":{"last_op_id":"3"}}"#)
        .await
        .unwrap();
    let Next::Reconnect(Some(Error::ChecksumMismatch(buckets))) = next else {
        panic!("expected a checksum mismatch, got {next:?}")
    };
    assert_eq!(buckets, "b2");
    assert_eq!(h.bucket("b2").await, None);
    assert_eq!(h.bucket("b1").await.unwrap().last_op, 2);
    assert_eq!(h.updated_rows().await, ["todos/t3", "todos/t4"]);
    assert_eq!(h.todos().await, ["t1:a:NULL", "t2:b:NULL", "t3:c:NULL"]);
    assert_eq!(h.reconnect().await, [("b1".to_owned(), 2)]);
}

#[tokio::test]
async fn tv5_two_buckets_remove_clear_and_move() {
    let mut h = Harness::new().await;
    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"3","buckets":[{"bucket":"a","checksum":4,"priority":3,"count":2},{"bucket":"b","checksum":7,"priority":3,"count":1}]}}"#,
        r#"{"data":{"bucket":"a","data":[{"op_id":"1","op":"PUT","object_type":"todos","object_id":"t1","checksum":4294967290,"subkey":"s","data":"{\"description\":\"from a\"}"},{"op_id":"2","op":"PUT","object_type":"todos","object_id":"t2","checksum":10,"subkey":"s","data":"{\"description\":\"only a\"}"}]}}"#,
        r#"{"data":{"bucket":"b","data":[{"op_id":"3","op":"PUT","object_type":"todos","object_id":"t1","checksum":7,"subkey":"s","data":"{\"description\":\"from b\"}"}]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"3"}}"#,
    ])
    .await;
    assert_eq!(h.todos().await, ["t1:from b:NULL", "t2:only a:NULL"]);

    h.lines(&[
        r#"{"checkpoint_diff":{"last_op_id":"5","updated_buckets":[{"bucket":"b","checksum":19,"priority":3,"count":2}],"removed_buckets":[]}}"#,
        r#"{"data":{"bucket":"b","data":[{"op_id":"5","op":"REMOVE","object_type":"todos","object_id":"t1","checksum":12,"subkey":"s"}]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"5"}}"#,
    ])
    .await;
    assert_eq!(h.bucket("b").await.unwrap(), b(5, 5, 19, 0, 2, 0));
    assert_eq!(h.bucket("a").await.unwrap().last_op, 5);
    assert_eq!(h.todos().await, ["t1:from a:NULL", "t2:only a:NULL"]);

    h.lines(&[
        r#"{"checkpoint_diff":{"last_op_id":"7","updated_buckets":[{"bucket":"a","checksum":100,"priority":3,"count":2}],"removed_buckets":["b"]}}"#,
        r#"{"data":{"bucket":"a","data":[{"op_id":"6","op":"CLEAR","checksum":90},{"op_id":"7","op":"PUT","object_type":"todos","object_id":"t3","checksum":10,"subkey":"s","data":"{\"description\":\"after clear\"}"}]}}"#,
    ])
    .await;
    assert_eq!(h.bucket("b").await, None);
    let a = h.bucket("a").await.unwrap();
    assert_eq!((a.last_op, a.last_applied_op, a.add, a.op), (7, 0, 90, 10));
    assert_eq!(h.strings("SELECT op_id FROM ps_oplog").await, ["7"]);
    assert_eq!(h.updated_rows().await, ["todos/t1", "todos/t2"]);
    assert_eq!(
        h.todos().await.len(),
        2,
        "nothing changes before the complete line"
    );

    h.lines(&[r#"{"checkpoint_complete":{"last_op_id":"7"}}"#])
        .await;
    assert_eq!(h.todos().await, ["t3:after clear:NULL"]);

    h.lines(&[
        r#"{"checkpoint_diff":{"last_op_id":"8","updated_buckets":[{"bucket":"a","checksum":105,"priority":3,"count":3}],"removed_buckets":[]}}"#,
        r#"{"data":{"bucket":"a","data":[{"op_id":"8","op":"MOVE","checksum":5}]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"8"}}"#,
    ])
    .await;
    assert_eq!(h.bucket("a").await.unwrap(), b(8, 8, 95, 10, 3, 0));
    assert_eq!(h.todos().await, ["t3:after clear:NULL"]);
}

#[tokio::test]
async fn tv6_local_writes_hold_checkpoints_until_the_write_checkpoint_arrives() {
    let mut h = Harness::new().await;
    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"1","buckets":[{"bucket":"b1","checksum":10,"priority":3,"count":1}]}}"#,
        r#"{"data":{"bucket":"b1","data":[{"op_id":"1","op":"PUT","object_type":"todos","object_id":"t1","checksum":10,"subkey":"s","data":"{\"description\":\"server\",\"done\":0}"}]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"1"}}"#,
    ])
    .await;
    h.db.execute_batch(
        "BEGIN; INSERT INTO todos(id, description, done) VALUES ('local1', 'mine', NULL); \
         UPDATE todos SET description = 'edited', done = 1 WHERE id = 't1'; COMMIT; \
         UPDATE todos SET done = 1 WHERE id = 't1'; DELETE FROM todos WHERE id = 'local1';",
    )
    .await
    .unwrap();
    // livesync closes the gate when the upload completes (the queue blocks every apply
    // until then), not at each write as the official core does.
    assert!(h.kv().await.is_empty());

    h.lines(&[
        r#"{"checkpoint_diff":{"last_op_id":"2","updated_buckets":[{"bucket":"b1","checksum":30,"priority":3,"count":2}],"removed_buckets":[]}}"#,
        r#"{"data":{"bucket":"b1","data":[{"op_id":"2","op":"PUT","object_type":"todos","object_id":"t2","checksum":20,"subkey":"s","data":"{\"description\":\"other\"}"}]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"2"}}"#,
    ])
    .await;
    let bucket = h.bucket("b1").await.unwrap();
    assert_eq!((bucket.last_op, bucket.last_applied_op), (2, 1));
    assert_eq!(
        h.todos().await,
        ["t1:edited:1"],
        "blocked: local edits stay, t2 not shown"
    );

    // The connector uploads everything; the gate still waits for a write checkpoint.
    while let Some(tx) = h.db.get_next_crud_transaction().await.unwrap() {
        tx.complete().await.unwrap();
    }
    assert_eq!(
        h.kv().await,
        [format!("target_checkpoint_request_id={}", i64::MAX)]
    );
    h.iteration
        .upload_finished(h.db.store(), &h.status)
        .await
        .unwrap();
    assert_eq!(h.todos().await, ["t1:edited:1"]);
    h.db.write(|c| write_gate::set_target(c, 7)).await.unwrap();
    h.iteration
        .upload_finished(h.db.store(), &h.status)
        .await
        .unwrap();
    assert_eq!(
        h.todos().await,
        ["t1:edited:1"],
        "no checkpoint with write_checkpoint 7 yet"
    );
    assert_eq!(h.updated_rows().await, ["todos/local1", "todos/t1"]);

    h.lines(&[
        r#"{"checkpoint_diff":{"last_op_id":"3","write_checkpoint":"7","updated_buckets":[{"bucket":"b1","checksum":75,"priority":3,"count":3}],"removed_buckets":[]}}"#,
        r#"{"data":{"bucket":"b1","data":[{"op_id":"3","op":"PUT","object_type":"todos","object_id":"t1","checksum":45,"subkey":"s","data":"{\"description\":\"edited\",\"done\":1}"}]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"3"}}"#,
    ])
    .await;
    assert_eq!(h.bucket("b1").await.unwrap(), b(3, 3, 10, 65, 3, 0));
    assert_eq!(
        h.kv().await,
        [
            "last_applied_checkpoint_request_id=7",
            "last_seen_checkpoint_request_id=7",
            "target_checkpoint_request_id=7"
        ]
    );
    assert_eq!(h.todos().await, ["t1:edited:1", "t2:other:NULL"]);
    assert!(h.updated_rows().await.is_empty());
}

#[tokio::test]
async fn tv7_high_priority_data_applies_despite_pending_writes() {
    let mut h = Harness::new().await;
    h.db.execute(
        "INSERT INTO todos(id, description) VALUES ('mine', 'pending upload')",
        (),
    )
    .await
    .unwrap();
    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"2","buckets":[{"bucket":"hi","checksum":1,"priority":0,"count":1},{"bucket":"lo","checksum":2,"priority":2,"count":1}]}}"#,
        r#"{"data":{"bucket":"hi","data":[{"op_id":"1","op":"PUT","object_type":"todos","object_id":"h1","checksum":1,"subkey":"s","data":"{\"description\":\"high\"}"}]}}"#,
        r#"{"partial_checkpoint_complete":{"last_op_id":"2","priority":0}}"#,
    ])
    .await;
    assert_eq!(
        h.todos().await,
        ["h1:high:NULL", "mine:pending upload:NULL"]
    );
    let status = h.status.get();
    assert_eq!(status.priority_status[0].priority, 0);
    assert!(!status.has_synced);
    let progress = status.downloading.unwrap();
    let first = progress.until_priority(0);
    assert_eq!((first.downloaded, first.total), (1, 1));
    assert_eq!(
        progress.per_priority[1],
        PriorityProgress {
            priority: 2,
            downloaded: 0,
            total: 1
        }
    );
    let hi = h.bucket("hi").await.unwrap();
    assert_eq!((hi.last_op, hi.last_applied_op), (2, 2));

    h.lines(&[
        r#"{"data":{"bucket":"lo","data":[{"op_id":"2","op":"PUT","object_type":"todos","object_id":"l1","checksum":2,"subkey":"s","data":"{\"description\":\"low\"}"}]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"2"}}"#,
    ])
    .await;
    let lo = h.bucket("lo").await.unwrap();
    assert_eq!((lo.last_op, lo.last_applied_op), (2, 0));
    assert_eq!(h.strings("SELECT priority FROM ps_sync_state").await, ["0"]);

    // The queue is emptied and the gate cleared (as an upload with a confirmed write
    // checkpoint would); the held checkpoint then applies and the unconfirmed write goes.
    h.db.get_next_crud_transaction()
        .await
        .unwrap()
        .unwrap()
        .complete()
        .await
        .unwrap();
    h.db.execute(
        "DELETE FROM ps_kv WHERE key = 'target_checkpoint_request_id'",
        (),
    )
    .await
    .unwrap();
    h.iteration
        .upload_finished(h.db.store(), &h.status)
        .await
        .unwrap();
    assert_eq!(h.todos().await, ["h1:high:NULL", "l1:low:NULL"]);
    let status = h.status.get();
    assert!(status.has_synced);
    assert_eq!(status.priority_status.len(), 1);
    assert_eq!(status.priority_status[0].priority, FULL_SYNC);
}

#[tokio::test]
async fn tv9_keepalives_unknown_lines_and_protocol_errors() {
    let mut h = Harness::new().await;
    assert!(
        matches!(
            h.line(r#"{"token_expires_in":100}"#).await.unwrap(),
            Next::CheckSubscriptions
        ),
        "a keepalive renews TTLs and compares the subscriptions to request"
    );
    assert!(h.status.get().connected);
    assert!(matches!(
        h.line(r#"{"token_expires_in":25}"#).await.unwrap(),
        Next::RefreshCredentials
    ));
    assert!(matches!(
        h.line(r#"{"token_expires_in":0}"#).await.unwrap(),
        Next::TokenExpired
    ));
    assert!(matches!(
        h.line(r#"{"some_future_line":{"x":1}}"#).await.unwrap(),
        Next::Continue
    ));
    let error = h.line(r#""invalid sync line""#).await.unwrap_err();
    assert!(error.to_string().contains("not a JSON object"), "{error}");
    let error = h
        .line(r#"{"checkpoint_diff":{"last_op_id":"1","updated_buckets":[],"removed_buckets":[]}}"#)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("checkpoint_diff without previous checkpoint")
    );
    let error = h
        .line(r#"{"checkpoint_complete":{"last_op_id":"1"}}"#)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("checkpoint complete without previous checkpoint")
    );

    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"0","buckets":[]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"0"}}"#,
    ])
    .await;
    assert!(
        h.status.get().has_synced,
        "an empty checkpoint is a complete sync"
    );
}

#[tokio::test]
async fn tv10_same_batch_supersede_on_an_empty_bucket() {
    let mut h = Harness::new().await;
    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"3","buckets":[{"bucket":"a","checksum":23,"count":3}]}}"#,
        r#"{"data":{"bucket":"a","data":[{"op_id":"1","op":"PUT","object_type":"todos","object_id":"t1","checksum":5,"data":"{\"description\":\"one\"}"},{"op_id":"2","op":"PUT","object_type":"todos","object_id":"t1","checksum":7,"data":"{\"description\":\"two\"}"},{"op_id":"3","op":"REMOVE","object_type":"todos","object_id":"t1","checksum":11}]}}"#,
    ])
    .await;
    assert_eq!(h.bucket("a").await.unwrap(), b(3, 0, 23, 0, 0, 3));
    assert!(h.strings("SELECT op_id FROM ps_oplog").await.is_empty());
    assert!(h.updated_rows().await.is_empty());
    h.lines(&[r#"{"checkpoint_complete":{"last_op_id":"3"}}"#])
        .await;
    assert!(h.todos().await.is_empty());
    assert!(h.status.get().has_synced);
}

#[tokio::test]
async fn a_bucket_missing_from_a_new_checkpoint_is_deleted_and_its_rows_go() {
    let mut h = Harness::new().await;
    h.lines(&TV1).await;
    h.reconnect().await;
    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"3","buckets":[]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"3"}}"#,
    ])
    .await;
    assert_eq!(h.bucket("b1").await, None);
    assert!(h.todos().await.is_empty());
    assert!(h.strings("SELECT id FROM ps_untyped").await.is_empty());
}

#[tokio::test]
async fn clearing_removes_synced_state_but_keeps_the_client_id() {
    let mut h = Harness::new().await;
    let client_id = h.db.client_id().await.unwrap();
    h.lines(&TV1).await;
    h.db.execute(
        "INSERT INTO todos(id, description) VALUES ('x', 'local')",
        (),
    )
    .await
    .unwrap();
    let mut changes = h.db.watch_tables(["todos"]);
    h.db.transaction(|tx| clear::clear(tx, false, &[]))
        .await
        .unwrap();
    assert!(
        futures::StreamExt::next(&mut changes)
            .await
            .unwrap()
            .contains("todos")
    );
    assert!(h.todos().await.is_empty());
    assert_eq!(h.bucket("b1").await, None);
    assert!(h.db.get_next_crud_transaction().await.unwrap().is_none());
    assert!(h.kv().await.is_empty());
    assert_eq!(h.db.client_id().await.unwrap(), client_id);
}

#[tokio::test]
async fn a_data_line_delivered_again_is_not_counted_twice() {
    let mut h = Harness::new().await;
    h.lines(&TV1[..2]).await;
    // As after a reconnect that raced a store: the service re-sends stored ops.
    h.lines(&TV1[1..2]).await;
    assert_eq!(h.bucket("b1").await.unwrap(), b(3, 0, 0, 60, 0, 3));
    h.lines(&TV1[2..]).await;
    assert_eq!(h.todos().await, ["t1:a:0", "t2:b:NULL"]);
}

#[tokio::test]
async fn tv8_sync_streams_reconcile_progress_and_synced_times() {
    use super::subscriptions::StreamKey;
    use serde_json::json;
    let mut h = Harness::new().await;
    let u1 = StreamKey::new("lists", &json!({"owner": "u1"})).unwrap();
    let five = StreamKey::new("lists", &json!({"owner": 5})).unwrap();
    let now = super::status::now_micros();
    let (a, b) = (u1.clone(), five.clone());
    h.db.transaction(move |tx| {
        subscriptions::subscribe(tx, &a, 3600, Some(1), now)?;
        subscriptions::subscribe(tx, &b, 86_400, None, now)
    })
    .await
    .unwrap();
    h.reconnect().await;
    let request: Vec<serde_json::Value> = h
        .iteration
        .streams()
        .requested()
        .iter()
        .map(|r| r.to_json())
        .collect();
    assert_eq!(
        serde_json::Value::from(request),
        json!([{"stream":"lists","parameters":{"owner":"u1"},"override_priority":1},
               {"stream":"lists","parameters":{"owner":5},"override_priority":null}])
    );

    h.lines(&[r#"{"checkpoint":{"last_op_id":"2","buckets":[
        {"bucket":"lists[\"u1\"]","checksum":1,"priority":1,"count":1,"subscriptions":[{"sub":0}]},
        {"bucket":"global[]","checksum":2,"priority":3,"count":1,"subscriptions":[{"default":0}]}],
        "streams":[{"name":"global","is_default":true,"errors":[]},
                   {"name":"lists","is_default":false,"errors":[{"subscription":1,"message":"owner must be a string"}]}]}}"#
        .replace('\n', "")
        .as_str()])
        .await;
    assert_eq!(
        h.strings(
            "SELECT id || ',' || stream_name || ',' || active || ',' || is_default || ',' || ifnull(local_priority, 'NULL') \
             || ',' || local_params || ',' || ifnull(ttl, 'NULL') FROM ps_stream_subscriptions ORDER BY id"
        )
        .await,
        [
            r#"1,lists,1,0,1,{"owner":"u1"},3600"#,
            r#"2,lists,1,0,NULL,{"owner":5},86400"#,
            "3,global,1,1,NULL,null,NULL"
        ]
    );
    let status = h.status.get();
    let lists_u1 = status.for_stream("lists", json!({"owner": "u1"})).unwrap();
    assert_eq!(
        (
            lists_u1.priority,
            lists_u1.progress.map(|p| (p.downloaded, p.total))
        ),
        (Some(1), Some((0, 1)))
    );
    assert!(lists_u1.has_explicit_subscription && !lists_u1.is_default && lists_u1.active);
    assert!(lists_u1.errors.is_empty());
    let lists_5 = status.for_stream("lists", json!({"owner": 5})).unwrap();
    assert_eq!(
        (
            lists_5.priority,
            lists_5.progress.map(|p| (p.downloaded, p.total))
        ),
        (None, Some((0, 0)))
    );
    assert_eq!(lists_5.errors, ["owner must be a string"]);
    let global = status.for_stream("global", None).unwrap();
    assert_eq!(
        (
            global.priority,
            global.progress.map(|p| (p.downloaded, p.total))
        ),
        (Some(3), Some((0, 1)))
    );
    assert!(global.is_default && !global.has_explicit_subscription);
    assert_eq!(global.expires_at, None);
    assert!(lists_u1.expires_at.is_some());

    h.lines(&[
        r#"{"data":{"bucket":"lists[\"u1\"]","data":[{"op_id":"1","op":"PUT","object_type":"todos","object_id":"l1","checksum":1,"data":"{\"description\":\"mine\"}"}]}}"#,
        r#"{"partial_checkpoint_complete":{"last_op_id":"2","priority":1}}"#,
    ])
    .await;
    let status = h.status.get();
    let synced = |name: &str, params: serde_json::Value| {
        status
            .for_stream(name, params)
            .unwrap()
            .last_synced_at
            .is_some()
    };
    assert!(synced("lists", json!({"owner": "u1"})));
    assert!(!synced("lists", json!({"owner": 5})));
    assert!(!synced("global", serde_json::Value::Null));
    assert_eq!(
        status
            .for_stream("lists", json!({"owner": "u1"}))
            .unwrap()
            .progress
            .map(|p| (p.downloaded, p.total)),
        Some((1, 1))
    );

    h.lines(&[
        r#"{"data":{"bucket":"global[]","data":[{"op_id":"2","op":"PUT","object_type":"todos","object_id":"g1","checksum":2,"data":"{\"description\":\"all\"}"}]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"2"}}"#,
    ])
    .await;
    let status = h.status.get();
    assert!(status.streams.iter().all(|s| s.has_synced()), "{status:?}");
    assert!(status.streams.iter().all(|s| s.progress.is_none()));
    assert_eq!(
        h.strings("SELECT count(*) FROM ps_stream_subscriptions WHERE last_synced_at IS NOT NULL")
            .await,
        ["3"]
    );

    // Ending the explicit subscription changes what a request would ask for.
    h.db.transaction(move |tx| subscriptions::unsubscribe_all(tx, &five))
        .await
        .unwrap();
    let requested = h.db.read(subscriptions::requested).await.unwrap();
    assert_ne!(requested, h.iteration.streams().requested());
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].key, u1);
}

/// docs/sync-protocol.md §7.3: a later checkpoint counts only the ops it adds, overall, per priority and
/// per stream (2 more ops show as 0/2, not 2/4).
#[tokio::test]
async fn progress_of_a_later_checkpoint_counts_only_new_ops() {
    let mut h = Harness::new().await;
    h.reconnect().await;
    let put = |id: u32| {
        format!(
            r#"{{"data":{{"bucket":"b","data":[{{"op_id":"{id}","op":"PUT","object_type":"todos","object_id":"t{id}","checksum":{id},"data":"{{}}"}}]}}}}"#
        )
    };
    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"2","buckets":[{"bucket":"b","checksum":3,"priority":1,"count":2,"subscriptions":[{"default":0}]}],"streams":[{"name":"all","is_default":true,"errors":[]}]}}"#,
        &put(1),
        &put(2),
    ])
    .await;
    let downloading = h.status.get().downloading.unwrap();
    assert_eq!((downloading.downloaded, downloading.total), (2, 2));
    h.lines(&[r#"{"checkpoint_complete":{"last_op_id":"2"}}"#])
        .await;
    assert!(h.status.get().downloading.is_none());

    h.lines(&[r#"{"checkpoint_diff":{"last_op_id":"4","updated_buckets":[{"bucket":"b","checksum":10,"priority":1,"count":4,"subscriptions":[{"default":0}]}],"removed_buckets":[]}}"#])
        .await;
    let status = h.status.get();
    let downloading = status.downloading.clone().unwrap();
    assert_eq!((downloading.downloaded, downloading.total), (0, 2));
    assert_eq!(
        downloading.per_priority,
        [PriorityProgress {
            priority: 1,
            downloaded: 0,
            total: 2
        }]
    );
    let stream = status.for_stream("all", None).unwrap();
    assert_eq!(
        stream.progress.map(|p| (p.downloaded, p.total)),
        Some((0, 2))
    );
    h.lines(&[&put(3)]).await;
    let stream = h.status.get().for_stream("all", None).cloned().unwrap();
    assert_eq!(
        stream.progress.map(|p| (p.downloaded, p.total)),
        Some((1, 2))
    );
}

/// A subscription added after the request was sent is not marked synced by that
/// connection's checkpoint (the service never saw it); an explicit parameterless
/// subscription to a default stream counts its buckets once.
#[tokio::test]
async fn a_full_apply_marks_only_subscriptions_the_request_carried() {
    use super::subscriptions::StreamKey;
    let mut h = Harness::new().await;
    let global = StreamKey::new("global", &serde_json::Value::Null).unwrap();
    let g = global.clone();
    let now = super::status::now_micros();
    h.db.transaction(move |tx| subscriptions::subscribe(tx, &g, 60, None, now))
        .await
        .unwrap();
    h.reconnect().await;
    // Subscribed after the request went out.
    let late = StreamKey::new("late", &serde_json::Value::Null).unwrap();
    let l = late.clone();
    h.db.transaction(move |tx| subscriptions::subscribe(tx, &l, 60, None, now))
        .await
        .unwrap();
    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"1","buckets":[{"bucket":"g","checksum":1,"priority":3,"count":1,"subscriptions":[{"default":0},{"sub":0},{"unknown":7}]}],"streams":[{"name":"global","is_default":true,"errors":[{"subscription":{"odd":1},"message":"ignored"}]}]}}"#,
    ])
    .await;
    let status = h.status.get();
    assert_eq!(
        status
            .for_stream("global", None)
            .unwrap()
            .progress
            .map(|p| (p.downloaded, p.total)),
        Some((0, 1)),
        "the bucket counts once, not once per reason"
    );
    h.lines(&[
        r#"{"data":{"bucket":"g","data":[{"op_id":"1","op":"PUT","object_type":"todos","object_id":"t1","checksum":1,"data":"{}"}]}}"#,
        r#"{"checkpoint_complete":{"last_op_id":"1"}}"#,
    ])
    .await;
    let status = h.status.get();
    assert!(status.for_stream("global", None).unwrap().has_synced());
    assert!(
        !status.for_stream("late", None).unwrap().has_synced(),
        "not requested by this connection: not synced by its checkpoint"
    );
}

/// A download of `BULK_DOWNLOAD_OPS` or more checkpoints the WAL rarely while it runs and
/// goes back to frequent checkpoints once applied, so later small writes stay cheap.
#[tokio::test]
async fn a_large_download_checkpoints_the_wal_rarely_until_applied() {
    let mut h = Harness::new().await;
    h.reconnect().await;
    let threshold = |db: Database| async move { db.store().checkpoint_threshold().await.unwrap() };
    assert_eq!(threshold(h.db.clone()).await, 1_000);
    // The count only feeds progress; the checksum of the one op sent is what validates.
    h.lines(&[
        r#"{"checkpoint":{"last_op_id":"1","buckets":[{"bucket":"b","checksum":1,"priority":3,"count":10000}]}}"#,
        r#"{"data":{"bucket":"b","data":[{"op_id":"1","op":"PUT","object_type":"todos","object_id":"t1","checksum":1,"data":"{}"}]}}"#,
    ])
    .await;
    assert_eq!(threshold(h.db.clone()).await, 10_000);
    h.lines(&[r#"{"checkpoint_complete":{"last_op_id":"1"}}"#])
        .await;
    assert_eq!(h.todos().await, ["t1:NULL:NULL"]);
    assert_eq!(threshold(h.db.clone()).await, 1_000);
}
