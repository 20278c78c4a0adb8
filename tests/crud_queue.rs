//! The upload queue: CRUD entries written by the view triggers (spec §4.4, TV12).

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
        ("1", json!({"op":"PUT","id":"a","type":"todos","data":{"description":"x","done":0,"score":1.5},"metadata":"created-by-test"})),
        ("3", json!({"op":"PATCH","id":"a","type":"todos","data":{"description":"y","done":1},"old":{"description":"x"},"metadata":"meta2"})),
        ("4", json!({"op":"PATCH","id":"a","type":"todos","data":{"done":2},"old":{}})),
        ("5", json!({"op":"DELETE","id":"a","type":"todos","old":{"description":"y"},"metadata":"bye"})),
        ("6", json!({"op":"PUT","type":"logs","id":"l1","data":{"msg":"hello"}})),
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
    assert_eq!(rows(&db, "SELECT id, body FROM drafts").await, vec![vec!["d1", "secret"]]);
    let objects = rows(&db, "SELECT name FROM sqlite_schema WHERE name IN ('ps_data__todos__by_desc','ps_data__logs','ps_data_local__drafts','my_todos') ORDER BY name").await;
    assert_eq!(objects.len(), 4, "{objects:?}");
    let columns = rows(&db, "SELECT name FROM pragma_table_info('my_todos')").await;
    assert_eq!(columns.concat(), ["id", "description", "done", "score", "_metadata", "_deleted"]);
}

#[tokio::test]
async fn entries_of_one_transaction_form_one_crud_transaction() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.transaction(|tx| {
        tx.execute("INSERT INTO todos(id, description, done) VALUES ('a', 'one', 0)", [])?;
        tx.execute("INSERT INTO todos(id, description) VALUES ('b', NULL)", [])?;
        tx.execute("UPDATE todos SET done = 1 WHERE id = 'a'", [])?;
        Ok(())
    })
    .await
    .unwrap();
    db.execute("DELETE FROM todos WHERE id = 'b'", ()).await.unwrap();

    let first = db.get_next_crud_transaction().await.unwrap().unwrap();
    assert_eq!(first.transaction_id, Some(1));
    let ops: Vec<_> = first.crud.iter().map(|e| (e.op, e.id.as_str())).collect();
    assert_eq!(ops, [(UpdateType::Put, "a"), (UpdateType::Put, "b"), (UpdateType::Patch, "a")]);
    assert_eq!(first.crud[1].data.as_ref().unwrap().len(), 0, "NULL columns are omitted from PUT data");
    assert_eq!(json!(first.crud[2].data), json!({"done": 1}));

    let all: Vec<_> = db.crud_transactions().map(|t| t.unwrap().crud.len()).collect().await;
    assert_eq!(all, [3, 1]);

    first.complete().await.unwrap();
    let second = db.get_next_crud_transaction().await.unwrap().unwrap();
    assert_eq!(second.transaction_id, Some(2));
    assert_eq!(second.crud[0].op, UpdateType::Delete);
    second.complete().await.unwrap();
    assert!(db.get_next_crud_transaction().await.unwrap().is_none());
}
