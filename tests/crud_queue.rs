//! The upload queue: CRUD entries written by the view triggers (docs/sync-protocol.md §4.4, TV12).

mod common;

use common::{rows, todo_schema, tv12_schema};
use futures::StreamExt;
use livesync::{Database, UpdateType};
use serde_json::json;

#[tokio::test]
async fn table_options_produce_the_tv12_crud_entries() {
    let db = Database::in_memory(tv12_schema()).await.unwrap();
    for sql in [
        "INSERT INTO my_todos(id,description,done,score,_metadata) VALUES('a','x',0,1.5,'created-by-test')",
        "UPDATE my_todos SET done=0 WHERE id='a'",
        "UPDATE my_todos SET description='y', done=1, _metadata='meta2' WHERE id='a'",
        "UPDATE my_todos SET done=2 WHERE id='a'",
        "UPDATE my_todos SET _deleted=TRUE, _metadata='bye' WHERE id='a'",
        "INSERT INTO logs(id,msg) VALUES('l1','hello')",
        "INSERT INTO drafts(id,body) VALUES('d1','secret')",
    ] {
        db.execute(sql, ()).await.unwrap();
    }
    let queue = rows(&db, "SELECT tx_id, data FROM ps_crud ORDER BY id").await;
    let expected = [
        (
            "1",
            json!({"op":"PUT","id":"a","type":"todos","data":{"description":"x","done":0,"score":1.5},"metadata":"created-by-test"}),
        ),
        (
            "3",
            json!({"op":"PATCH","id":"a","type":"todos","data":{"description":"y","done":1},"old":{"description":"x"},"metadata":"meta2"}),
        ),
        (
            "4",
            json!({"op":"PATCH","id":"a","type":"todos","data":{"done":2},"old":{}}),
        ),
        (
            "5",
            json!({"op":"DELETE","id":"a","type":"todos","old":{"description":"y"},"metadata":"bye"}),
        ),
        (
            "6",
            json!({"op":"PUT","type":"logs","id":"l1","data":{"msg":"hello"}}),
        ),
    ];
    assert_eq!(queue.len(), expected.len(), "{queue:?}");
    for (row, (tx, entry)) in queue.iter().zip(expected) {
        assert_eq!(row[0], tx);
        let stored: serde_json::Value = serde_json::from_str(&row[1]).unwrap();
        assert_eq!(stored, entry);
    }
    // Exact text of the first entry: keys in the official order.
    assert_eq!(
        queue[1][1],
        r#"{"op":"PATCH","id":"a","type":"todos","data":{"description":"y","done":1},"old":{"description":"x"},"metadata":"meta2"}"#
    );
    assert!(rows(&db, "SELECT * FROM logs").await.is_empty());
    assert_eq!(
        rows(&db, "SELECT id, body FROM drafts").await,
        vec![vec!["d1", "secret"]]
    );
    let objects = rows(&db, "SELECT name FROM sqlite_schema WHERE name IN ('ps_data__todos__by_desc','ps_data__logs','ps_data_local__drafts','my_todos') ORDER BY name").await;
    assert_eq!(objects.len(), 4, "{objects:?}");
    let columns = rows(&db, "SELECT name FROM pragma_table_info('my_todos')").await;
    assert_eq!(
        columns.concat(),
        [
            "id",
            "description",
            "done",
            "score",
            "_metadata",
            "_deleted"
        ]
    );
}

#[tokio::test]
async fn entries_of_one_transaction_form_one_crud_transaction() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.transaction(|tx| {
        tx.execute(
            "INSERT INTO todos(id, description, done) VALUES ('a', 'one', 0)",
            [],
        )?;
        tx.execute("INSERT INTO todos(id, description) VALUES ('b', NULL)", [])?;
        tx.execute("UPDATE todos SET done = 1 WHERE id = 'a'", [])?;
        Ok(())
    })
    .await
    .unwrap();
    db.execute("DELETE FROM todos WHERE id = 'b'", ())
        .await
        .unwrap();

    let first = db.get_next_crud_transaction().await.unwrap().unwrap();
    assert_eq!(first.transaction_id, Some(1));
    let ops: Vec<_> = first.crud.iter().map(|e| (e.op, e.id.as_str())).collect();
    assert_eq!(
        ops,
        [
            (UpdateType::Put, "a"),
            (UpdateType::Put, "b"),
            (UpdateType::Patch, "a")
        ]
    );
    assert_eq!(
        first.crud[1].data.as_ref().unwrap().len(),
        0,
        "NULL columns are omitted from PUT data"
    );
    assert_eq!(json!(first.crud[2].data), json!({"done": 1}));

    let all: Vec<_> = db
        .crud_transactions()
        .map(|t| t.unwrap().crud.len())
        .collect()
        .await;
    assert_eq!(all, [3, 1]);

    first.complete().await.unwrap();
    let second = db.get_next_crud_transaction().await.unwrap().unwrap();
    assert_eq!(second.transaction_id, Some(2));
    assert_eq!(second.crud[0].op, UpdateType::Delete);
    second.complete().await.unwrap();
    assert!(db.get_next_crud_transaction().await.unwrap().is_none());
}

#[tokio::test]
async fn completing_an_upload_closes_the_download_gate_and_marks_the_rows() {
    let db = Database::in_memory(common::tv12_schema()).await.unwrap();
    db.execute_batch(
        "INSERT INTO ps_kv(key, value) VALUES ('last_seen_checkpoint_request_id', 5), ('last_applied_checkpoint_request_id', 5)",
    )
    .await
    .unwrap();
    // Local-only writes are not queued; queued writes hold the gate shut by their presence.
    db.execute("INSERT INTO drafts(id, body) VALUES ('d', 'x')", ())
        .await
        .unwrap();
    assert!(rows(&db, "SELECT * FROM ps_crud").await.is_empty());
    db.execute("INSERT INTO logs(id, msg) VALUES ('l', 'x')", ())
        .await
        .unwrap();
    db.execute(
        "INSERT INTO my_todos(id, description) VALUES ('a', 'x')",
        (),
    )
    .await
    .unwrap();
    assert_eq!(
        rows(&db, "SELECT count(*) FROM ps_crud").await,
        vec![vec!["2"]]
    );
    // Once uploaded, the written row (not the insert-only one) is re-derived from server
    // data at the next full sync apply.
    while let Some(tx) = db.get_next_crud_transaction().await.unwrap() {
        tx.complete().await.unwrap();
    }
    assert_eq!(
        rows(&db, "SELECT row_type, row_id FROM ps_updated_rows").await,
        vec![vec!["todos", "a"]]
    );
    assert_eq!(
        rows(
            &db,
            "SELECT value FROM ps_kv WHERE key = 'target_checkpoint_request_id'"
        )
        .await,
        vec![vec!["9223372036854775807"]],
        "the gate stays closed until a write checkpoint is known"
    );
    assert!(
        rows(&db, "SELECT * FROM ps_kv WHERE key IN ('last_seen_checkpoint_request_id', 'last_applied_checkpoint_request_id')")
            .await
            .is_empty(),
        "checkpoints seen before the upload no longer count"
    );
}

#[tokio::test]
async fn ignored_empty_updates_and_rolled_back_savepoints_consume_ids_consistently() {
    let db = Database::in_memory(common::tv12_schema()).await.unwrap();
    db.execute("INSERT INTO my_todos(id, done) VALUES ('a', 1)", ())
        .await
        .unwrap(); // tx 1
    db.execute("UPDATE my_todos SET done = 1", ())
        .await
        .unwrap(); // tx 2, ignored
    db.transaction(|tx| {
        // tx 3: the savepoint's write (and its id allocation) is undone, then redone.
        tx.execute_batch(
            "SAVEPOINT s; UPDATE my_todos SET done = 5; ROLLBACK TO s; RELEASE s;
             UPDATE my_todos SET done = 6; UPDATE my_todos SET done = 7;",
        )?;
        Ok(())
    })
    .await
    .unwrap();
    db.execute("UPDATE my_todos SET done = 8", ())
        .await
        .unwrap(); // tx 4
    let ids = rows(
        &db,
        "SELECT tx_id, json_extract(data, '$.data.done') FROM ps_crud ORDER BY id",
    )
    .await;
    assert_eq!(
        ids,
        vec![
            vec!["1", "1"],
            vec!["3", "6"],
            vec!["3", "7"],
            vec!["4", "8"]
        ]
    );
}

#[tokio::test]
async fn batches_respect_the_limit_and_complete_removes_everything_before() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    for i in 0..5 {
        db.execute(
            "INSERT INTO todos(id, done) VALUES (?1, ?2)",
            (i.to_string(), i),
        )
        .await
        .unwrap();
    }
    let batch = db.get_crud_batch(3).await.unwrap().unwrap();
    assert_eq!(batch.crud.len(), 3);
    assert!(batch.have_more);
    assert_eq!(
        batch
            .crud
            .iter()
            .map(|e| e.transaction_id.unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    batch.complete().await.unwrap();
    let rest = db.get_crud_batch(10).await.unwrap().unwrap();
    assert_eq!(rest.crud.len(), 2);
    assert!(!rest.have_more);
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 2);

    // Completing a later transaction also removes the earlier ones.
    let mut all: Vec<_> = db.crud_transactions().map(Result::unwrap).collect().await;
    let last = all.pop().unwrap();
    last.complete_with_checkpoint(42).await.unwrap();
    assert!(db.get_crud_batch(10).await.unwrap().is_none());
    assert_eq!(
        rows(
            &db,
            "SELECT value FROM ps_kv WHERE key = 'target_checkpoint_request_id'"
        )
        .await,
        vec![vec!["42"]],
        "a custom write checkpoint becomes the gate target once the queue is empty"
    );
}

#[tokio::test]
async fn previous_values_and_metadata_reach_the_entry() {
    use livesync::{Column, Schema, Table, TrackPreviousValues};
    let schema = Schema::new([
        Table::new("items", [Column::text("name"), Column::real("price")])
            .track_previous_values(TrackPreviousValues::all())
            .track_metadata(),
    ]);
    let db = Database::in_memory(schema).await.unwrap();
    db.execute(
        "INSERT INTO items(id, name, price) VALUES ('i', 'pen', 1.5)",
        (),
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE items SET price = NULL, _metadata = 'm' WHERE id = 'i'",
        (),
    )
    .await
    .unwrap();
    db.execute("DELETE FROM items WHERE id = 'i'", ())
        .await
        .unwrap();
    let entries: Vec<_> = db
        .crud_transactions()
        .map(|t| t.unwrap().crud.remove(0))
        .collect()
        .await;
    assert_eq!(json!(entries[1].data), json!({"price": null}));
    assert_eq!(
        json!(entries[1].previous_values),
        json!({"name": "pen", "price": 1.5})
    );
    assert_eq!(entries[1].metadata.as_deref(), Some("m"));
    assert_eq!(entries[2].op, UpdateType::Delete);
    assert_eq!(
        json!(entries[2].previous_values),
        json!({"name": "pen", "price": null})
    );
    assert_eq!(entries[2].metadata, None);
}

#[tokio::test]
async fn entries_stay_valid_json_for_any_text_and_number() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} unicode é✓";
    db.execute(
        "INSERT INTO todos(id, description, done) VALUES (?1, ?2, ?3)",
        (tricky.to_string(), tricky.to_string(), i64::MIN),
    )
    .await
    .unwrap();
    db.execute("UPDATE todos SET done = 2.5", ()).await.unwrap();
    let entries: Vec<_> = db
        .crud_transactions()
        .map(|t| t.unwrap().crud.remove(0))
        .collect()
        .await;
    assert_eq!(entries[0].id, tricky);
    assert_eq!(
        json!(entries[0].data),
        json!({"description": tricky, "done": i64::MIN})
    );
    assert_eq!(json!(entries[1].data), json!({"done": 2.5}));
    // Blobs cannot be represented in JSON: a clear error, nothing recorded.
    let err = db
        .execute(
            "INSERT INTO todos(id, description) VALUES ('b', x'00ff')",
            (),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("BLOB"), "{err}");
    assert_eq!(
        rows(&db, "SELECT count(*) FROM ps_crud").await,
        vec![vec!["2"]]
    );
}

#[tokio::test]
async fn a_savepoint_rolled_back_mid_transaction_keeps_one_upload_transaction() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.transaction(|tx| {
        tx.execute_batch(
            "INSERT INTO todos(id) VALUES ('a');
             SAVEPOINT s; INSERT INTO todos(id) VALUES ('b'); ROLLBACK TO s; RELEASE s;
             INSERT INTO todos(id) VALUES ('c');",
        )?;
        Ok(())
    })
    .await
    .unwrap();
    let tx = db.get_next_crud_transaction().await.unwrap().unwrap();
    assert_eq!(
        tx.crud.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["a", "c"]
    );
    tx.complete().await.unwrap();
    assert!(db.get_next_crud_transaction().await.unwrap().is_none());
}

#[tokio::test]
async fn writes_that_change_nothing_locally_queue_nothing() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.execute("INSERT INTO todos(id, description) VALUES ('a', 'x')", ())
        .await
        .unwrap();
    db.execute(
        "INSERT OR IGNORE INTO todos(id, description) VALUES ('a', 'y')",
        (),
    )
    .await
    .unwrap();
    db.execute("UPDATE todos SET done = 1 WHERE id = 'missing'", ())
        .await
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT count(*) FROM ps_crud").await,
        vec![vec!["1"]]
    );
    assert_eq!(
        rows(&db, "SELECT description FROM todos").await,
        vec![vec!["x"]]
    );
    let err = db
        .execute("UPDATE todos SET id = NULL", ())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Cannot update id"), "{err}");
    let err = db
        .execute("UPDATE todos SET done = 1e999", ())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("finite"), "{err}");
    assert_eq!(
        rows(&db, "SELECT count(*) FROM ps_crud").await,
        vec![vec!["1"]]
    );
}

#[tokio::test]
async fn two_handles_on_one_file_never_reuse_queue_ids() {
    let (first, dir) = common::file_db(todo_schema()).await;
    let second = Database::open(dir.path().join("test.db"), todo_schema())
        .await
        .unwrap();
    for i in 0..5 {
        first
            .execute("INSERT INTO todos(id) VALUES (?1)", [format!("a{i}")])
            .await
            .unwrap();
        second
            .execute("INSERT INTO todos(id) VALUES (?1)", [format!("b{i}")])
            .await
            .unwrap();
    }
    let ids = rows(&first, "SELECT id, tx_id FROM ps_crud ORDER BY id").await;
    assert_eq!(ids.len(), 10);
    let tx_ids: std::collections::HashSet<_> = ids.iter().map(|r| r[1].clone()).collect();
    assert_eq!(
        tx_ids.len(),
        10,
        "every write transaction got its own id: {ids:?}"
    );
}
