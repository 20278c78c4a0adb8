//! Raw tables (`RawTable`, docs/sync-protocol.md §9.5) against the in-process
//! `TestSyncService`, through the public API only: synced rows land in the app's own
//! table with real column types, local writes are queued through the generated
//! triggers, and sync's own writes are not.
#![cfg(feature = "testing")]

use futures::StreamExt;
use livesync::testing::{BucketRule, TestSyncService};
use livesync::{
    Column, Database, Error, PendingStatement, PendingStatementValue as V, RawTable, Schema, Table,
    UpdateType,
};
use serde_json::json;

mod common;

use common::strings;
use common::sync::{fast, synced};
use common::wait::{eventually, in_time, until};

const CREATE_TODOS: &str = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL, \
     done INTEGER NOT NULL DEFAULT 0, weight REAL, note TEXT)";
const TODOS: &str = "SELECT id || ':' || title || ':' || done || ':' || typeof(done) || ':' || \
     ifnull(weight, '-') || ':' || ifnull(note, '-') FROM todos ORDER BY id";

/// `todos` as a raw table whose `note` column is this device's own.
fn raw_todos() -> RawTable {
    RawTable::new("todos").synced_columns(["title", "done", "weight"])
}

async fn service() -> TestSyncService {
    TestSyncService::builder()
        .rule(BucketRule::global("todos", ["todos"]))
        .start()
        .await
        .expect("service starts")
}

async fn open(schema: Schema) -> Database {
    let db = Database::in_memory(schema).await.unwrap();
    db.execute_batch(CREATE_TODOS).await.unwrap();
    db.prepare_raw_tables().await.unwrap();
    db
}

async fn queued(db: &Database) -> u64 {
    db.upload_queue_stats().await.unwrap().count
}

#[tokio::test]
async fn synced_rows_land_typed_and_leave_the_apps_own_columns_alone() {
    let service = service().await;
    service.upsert_row(
        "todos",
        "t1",
        json!({"title": "milk", "done": true, "weight": 1.5, "unknown": "ignored"}),
    );
    service.upsert_row("todos", "t2", json!({"title": "bread", "done": 0}));
    service.commit();
    let db = open(Schema::default().raw_table(raw_todos())).await;
    let mut changes = db.watch_tables(["todos"]);
    let mut live = db
        .query::<String>(
            "SELECT group_concat(title, ',') FROM (SELECT title FROM todos ORDER BY id)",
        )
        .watch();
    db.connect(service.connector("u1"), fast()).await.unwrap();
    synced(&db).await;
    assert_eq!(
        strings(&db, TODOS).await,
        ["t1:milk:1:integer:1.5:-", "t2:bread:0:integer:-:-"]
    );
    assert_eq!(queued(&db).await, 0, "sync's own writes are not uploaded");
    in_time("a table change for the synced rows", changes.next())
        .await
        .unwrap();

    // The app's own column: written locally, not queued (it is not synced), kept by
    // later synced updates of the row.
    db.execute("UPDATE todos SET note = 'mine' WHERE id = 't1'", ())
        .await
        .unwrap();
    assert_eq!(queued(&db).await, 0);
    service.upsert_row("todos", "t1", json!({"title": "oat milk", "done": false}));
    service.delete_row("todos", "t2");
    service.commit();
    eventually(&db, TODOS, &["t1:oat milk:0:integer:-:mine"]).await;
    // The live query followed: its last emission is the final state.
    let mut last = None;
    while last.as_deref() != Some(&["oat milk".to_owned()][..]) {
        last = Some(
            in_time("the live query's emission", live.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(queued(&db).await, 0);
}

#[tokio::test]
async fn local_writes_are_queued_with_synced_columns_only_and_reach_the_service() {
    let service = service().await;
    let db = open(Schema::default().raw_table(raw_todos())).await;
    db.execute(
        "INSERT INTO todos(id, title, weight, note) VALUES ('a', 'tea', 2, 'private')",
        (),
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE todos SET done = 1, note = 'still private' WHERE id = 'a'",
        (),
    )
    .await
    .unwrap();
    db.execute("UPDATE todos SET note = 'only mine' WHERE id = 'a'", ())
        .await
        .unwrap();
    db.execute("INSERT INTO todos(id, title) VALUES ('b', 'gone soon')", ())
        .await
        .unwrap();
    db.execute("DELETE FROM todos WHERE id = 'b'", ())
        .await
        .unwrap();
    let err = db
        .execute("UPDATE todos SET id = 'c' WHERE id = 'a'", ())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Cannot update id"), "{err}");

    let batch = db.get_crud_batch(100).await.unwrap().unwrap();
    let entries: Vec<(UpdateType, String, Option<serde_json::Value>)> = batch
        .crud
        .iter()
        .map(|e| {
            (
                e.op,
                e.id.clone(),
                e.data.clone().map(serde_json::Value::Object),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (
                UpdateType::Put,
                "a".into(),
                Some(json!({"title": "tea", "done": 0, "weight": 2.0}))
            ),
            (UpdateType::Patch, "a".into(), Some(json!({"done": 1}))),
            (
                UpdateType::Put,
                "b".into(),
                Some(json!({"title": "gone soon", "done": 0}))
            ),
            (UpdateType::Delete, "b".into(), None),
        ]
    );
    assert!(batch.crud.iter().all(|e| e.table == "todos"));
    drop(batch);

    db.connect(service.connector("u1"), fast()).await.unwrap();
    let deadline = std::time::Instant::now() + common::wait::WAIT;
    while queued(&db).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "uploads never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let rows = service.rows("todos");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["title"], "tea");
    assert!(rows[0].get("note").is_none(), "{rows:?}");
    // The round trip settles: the row is still there with its own column, once the
    // checkpoint that includes the upload has applied.
    eventually(&db, TODOS, &["a:tea:1:integer:2.0:only mine"]).await;
    assert_eq!(queued(&db).await, 0);
}

#[tokio::test]
async fn statements_of_the_apps_own_bind_columns_and_the_rest() {
    let service = service().await;
    service.upsert_row(
        "todos",
        "t1",
        json!({"title": "milk", "tags": ["a", "b"], "prio": 3}),
    );
    service.commit();
    let table = RawTable::with_statements(
        "todos",
        PendingStatement::new(
            "INSERT INTO my_todos(id, label, extra) VALUES (?, ?, ?) \
             ON CONFLICT(id) DO UPDATE SET label = excluded.label, extra = excluded.extra",
            [V::Id, V::Column("title".into()), V::Rest],
        ),
        PendingStatement::new("DELETE FROM my_todos WHERE id = ?", [V::Id]),
    )
    .table_name("my_todos")
    .without_write_capture()
    .clear("DELETE FROM my_todos");
    let db = Database::in_memory(Schema::default().raw_table(table))
        .await
        .unwrap();
    db.execute_batch("CREATE TABLE my_todos(id TEXT PRIMARY KEY, label TEXT, extra TEXT)")
        .await
        .unwrap();
    db.prepare_raw_tables().await.unwrap();
    db.connect(service.connector("u1"), fast()).await.unwrap();
    synced(&db).await;
    let rows = strings(
        &db,
        "SELECT id || '|' || label || '|' || extra FROM my_todos",
    )
    .await;
    assert_eq!(rows, [r#"t1|milk|{"prio":3,"tags":["a","b"]}"#]);

    // Without write capture, local writes are the app's business.
    db.execute("INSERT INTO my_todos(id, label) VALUES ('x', 'local')", ())
        .await
        .unwrap();
    assert_eq!(queued(&db).await, 0);

    service.delete_row("todos", "t1");
    service.commit();
    eventually(&db, "SELECT id FROM my_todos ORDER BY id", &["x"]).await;

    // Signing out runs the clear statement.
    db.disconnect_and_clear(false).await.unwrap();
    assert!(strings(&db, "SELECT id FROM my_todos").await.is_empty());
}

#[tokio::test]
async fn a_missing_table_is_reported_and_its_rows_arrive_once_it_exists() {
    let service = service().await;
    service.upsert_row("todos", "t1", json!({"title": "milk", "done": 1}));
    service.commit();
    let db = Database::in_memory(Schema::default().raw_table(raw_todos()))
        .await
        .unwrap();
    let err = db.prepare_raw_tables().await.unwrap_err();
    assert!(
        matches!(&err, Error::RawTable { table, .. } if table == "todos"),
        "{err:?}"
    );
    db.connect(service.connector("u1"), fast()).await.unwrap();
    until("the download error names the raw table", || {
        db.status()
            .download_error
            .is_some_and(|e| e.to_string().contains("raw table \"todos\""))
    })
    .await;
    assert!(!db.status().has_synced);

    db.execute_batch(CREATE_TODOS).await.unwrap();
    db.prepare_raw_tables().await.unwrap();
    // The next attempt (the client reconnects after the failed apply) applies the rows.
    synced(&db).await;
    assert_eq!(strings(&db, TODOS).await, ["t1:milk:1:integer:-:-"]);
    assert!(db.status().download_error.is_none());
}

#[tokio::test]
async fn a_json_table_turned_raw_keeps_its_synced_rows() {
    let service = service().await;
    service.upsert_row("todos", "t1", json!({"title": "milk", "done": 1}));
    service.commit();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let json_schema = Schema::new([Table::new(
            "todos",
            [Column::text("title"), Column::integer("done")],
        )]);
        let db = Database::open(&path, json_schema).await.unwrap();
        db.connect(service.connector("u1"), fast()).await.unwrap();
        synced(&db).await;
        db.close().await;
    }
    // The new version of the app: todos is its own table now.
    let db = Database::open(&path, Schema::default().raw_table(raw_todos()))
        .await
        .unwrap();
    db.execute_batch(CREATE_TODOS).await.unwrap();
    db.prepare_raw_tables().await.unwrap();
    assert_eq!(strings(&db, TODOS).await, ["t1:milk:1:integer:-:-"]);
    assert_eq!(
        queued(&db).await,
        0,
        "moving parked rows is not a local write"
    );
    db.close().await;

    // Reopening with the table in place changes nothing, and later syncs update it.
    let db = Database::open(&path, Schema::default().raw_table(raw_todos()))
        .await
        .unwrap();
    assert_eq!(strings(&db, TODOS).await, ["t1:milk:1:integer:-:-"]);
    db.connect(service.connector("u1"), fast()).await.unwrap();
    service.upsert_row("todos", "t1", json!({"title": "oat milk", "done": 0}));
    service.commit();
    eventually(&db, TODOS, &["t1:oat milk:0:integer:-:-"]).await;
}

#[tokio::test]
async fn bad_statements_and_tables_are_errors_that_name_the_raw_table() {
    let no_id = Database::in_memory(Schema::default().raw_table(RawTable::new("t")))
        .await
        .unwrap();
    no_id.execute_batch("CREATE TABLE t(a TEXT)").await.unwrap();
    let err = no_id.prepare_raw_tables().await.unwrap_err().to_string();
    assert!(
        err.contains("raw table \"t\"") && err.contains("id"),
        "{err}"
    );

    let missing_column = Database::in_memory(
        Schema::default().raw_table(RawTable::new("t").synced_columns(["nope"])),
    )
    .await
    .unwrap();
    missing_column
        .execute_batch("CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT)")
        .await
        .unwrap();
    let err = missing_column
        .prepare_raw_tables()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"nope\""), "{err}");

    // A put statement with the wrong number of values fails the apply, naming it.
    let service = service().await;
    service.upsert_row("todos", "t1", json!({"title": "milk"}));
    service.commit();
    let wrong = RawTable::with_statements(
        "todos",
        PendingStatement::new("INSERT INTO todos(id, title) VALUES (?, ?)", [V::Id]),
        PendingStatement::new("DELETE FROM todos WHERE id = ?", [V::Id]),
    );
    let db = open(Schema::default().raw_table(wrong)).await;
    db.connect(service.connector("u1"), fast()).await.unwrap();
    until("the download error names the put statement", || {
        db.status().download_error.is_some_and(|e| {
            let text = e.to_string();
            text.contains("raw table \"todos\"") && text.contains("2 parameters but 1")
        })
    })
    .await;
}

#[tokio::test]
async fn insert_only_raw_tables_upload_inserts_and_refuse_the_rest() {
    let db = open(Schema::default().raw_table(raw_todos().insert_only())).await;
    db.execute("INSERT INTO todos(id, title) VALUES ('a', 'log line')", ())
        .await
        .unwrap();
    let err = db
        .execute("UPDATE todos SET title = 'x'", ())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("insert-only"), "{err}");
    let tx = db.get_next_crud_transaction().await.unwrap().unwrap();
    assert_eq!(tx.crud.len(), 1);
    assert_eq!(tx.crud[0].op, UpdateType::Put);
}

#[tokio::test]
async fn the_schema_json_carries_raw_tables_in_the_official_shape() {
    let official = r#"{"tables":[],"raw_tables":[
        {"name":"todos","table_name":"todos","synced_columns":["title"],"local_only":false,
         "insert_only":false,"ignore_empty_update":true,"include_metadata":false,
         "include_old":false,"include_old_only_when_changed":false,"put":null,"delete":null,"clear":"DELETE FROM todos"},
        {"name":"lists","put":{"sql":"INSERT INTO lists(id, name, rest) VALUES (?, ?, ?)","params":["Id",{"Column":"name"},"Rest"]},
         "delete":{"sql":"DELETE FROM lists WHERE id = ?","params":["Id"]}}]}"#;
    let schema = Schema::from_json(official).unwrap();
    assert_eq!(
        schema.raw_tables[0],
        RawTable::new("todos")
            .synced_columns(["title"])
            .ignore_empty_update()
            .clear("DELETE FROM todos")
    );
    assert_eq!(
        schema.raw_tables[1].put.as_ref().unwrap().params,
        [V::Id, V::Column("name".into()), V::Rest]
    );
    assert_eq!(Schema::from_json(&schema.to_json()).unwrap(), schema);
    assert!(schema.validate().is_ok());
}

#[tokio::test]
async fn previous_values_empty_updates_and_schema_updates_follow_the_options() {
    let table = RawTable::new("todos")
        .synced_columns(["title", "done"])
        .track_previous_values(livesync::TrackPreviousValues::all())
        .ignore_empty_update();
    let db = open(Schema::default().raw_table(table)).await;
    db.execute("INSERT INTO todos(id, title) VALUES ('a', 'tea')", ())
        .await
        .unwrap();
    db.execute("UPDATE todos SET title = 'tea' WHERE id = 'a'", ())
        .await
        .unwrap();
    db.execute("UPDATE todos SET title = 'green tea' WHERE id = 'a'", ())
        .await
        .unwrap();
    db.execute("DELETE FROM todos WHERE id = 'a'", ())
        .await
        .unwrap();
    let batch = db.get_crud_batch(100).await.unwrap().unwrap();
    let entries: Vec<(UpdateType, Option<serde_json::Value>)> = batch
        .crud
        .iter()
        .map(|e| {
            (
                e.op,
                e.previous_values.clone().map(serde_json::Value::Object),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (UpdateType::Put, None),
            // The update that changed nothing was skipped.
            (UpdateType::Patch, Some(json!({"title": "tea", "done": 0}))),
            (
                UpdateType::Delete,
                Some(json!({"title": "green tea", "done": 0}))
            ),
        ]
    );
    batch.complete().await.unwrap();

    // Out of the schema, the table is the app's alone: its triggers are gone.
    db.update_schema(Schema::default()).await.unwrap();
    db.execute(
        "INSERT INTO todos(id, title) VALUES ('b', 'not uploaded')",
        (),
    )
    .await
    .unwrap();
    assert_eq!(queued(&db).await, 0);
    let triggers = strings(
        &db,
        "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'todos'",
    )
    .await;
    assert!(triggers.is_empty(), "{triggers:?}");
    // Back in the schema, with the table in place: captured again at once.
    db.update_schema(Schema::default().raw_table(raw_todos()))
        .await
        .unwrap();
    db.execute("UPDATE todos SET done = 1 WHERE id = 'b'", ())
        .await
        .unwrap();
    assert_eq!(queued(&db).await, 1);
}
