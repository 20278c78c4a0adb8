//! Schemas: validation before SQLite is touched, the PowerSync JSON form, idempotent
//! application and migrations that keep data (docs/sync-protocol.md §9, TV13).

mod common;

use common::{file_db, rows, todo_schema};
use livesync::{Column, Database, Error, Index, IndexColumn, Schema, Table};

#[tokio::test]
async fn an_invalid_schema_is_rejected_before_any_file_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("never.db");
    let bad = Schema::new([Table::new("todos; DROP TABLE x", [Column::text("a")])]);
    let err = Database::open(&path, bad).await.unwrap_err();
    match &err {
        Error::InvalidIdentifier { kind, name, .. } => {
            assert_eq!(*kind, "table");
            assert_eq!(name, "todos; DROP TABLE x");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        !path.exists(),
        "validation must happen before SQLite opens the file"
    );

    for (schema, needle) in [
        (
            Schema::new([Table::new("t", [Column::text("id")])]),
            "\"id\"",
        ),
        (
            Schema::new([Table::new("ps_t", [Column::text("a")])]),
            "ps_",
        ),
        (
            Schema::new([Table::new("t", [Column::text("a"), Column::text("a")])]),
            "twice",
        ),
        (Schema::new([Table::new("t", [Column::text("x y")])]), "x y"),
    ] {
        let message = Database::in_memory(schema).await.unwrap_err().to_string();
        assert!(message.contains(needle), "{message}");
    }
}

#[tokio::test]
async fn powersync_schema_json_loads_unchanged_and_round_trips() {
    // As exported by the PowerSync JS SDK's `schema.toJSON()`.
    let exported = r#"{"tables":[
        {"name":"todos","view_name":null,"local_only":false,"insert_only":false,
         "include_old":["description"],"include_old_only_when_changed":true,
         "include_metadata":true,"ignore_empty_update":true,
         "columns":[{"name":"description","type":"TEXT"},{"name":"done","type":"INTEGER"},{"name":"score","type":"REAL"}],
         "indexes":[{"name":"by_desc","columns":[{"name":"description","ascending":false,"type":"TEXT"}]}]},
        {"name":"drafts","local_only":true,"columns":[{"name":"body","type":"text"}],"indexes":[]}
    ],"raw_tables":[]}"#;
    let schema = Schema::from_json(exported).unwrap();
    let todos = &schema.tables[0];
    assert!(todos.track_metadata && todos.ignore_empty_update);
    let previous = todos.track_previous_values.as_ref().unwrap();
    assert_eq!(
        previous.columns.as_deref(),
        Some(&["description".to_owned()][..])
    );
    assert!(previous.only_when_changed);
    assert!(!todos.indexes[0].columns[0].ascending);
    assert!(schema.tables[1].local_only);
    assert_eq!(Schema::from_json(&schema.to_json()).unwrap(), schema);

    let db = Database::in_memory(schema).await.unwrap();
    db.execute("INSERT INTO todos(id, description) VALUES ('1', 'x')", ())
        .await
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT description FROM todos").await,
        vec![vec!["x"]]
    );

    let err =
        Schema::from_json(r#"{"tables":[{"name":"t","columns":[{"name":"a","type":"BLOB"}]}]}"#)
            .unwrap_err();
    assert!(err.to_string().contains("BLOB"), "{err}");
    assert!(matches!(Schema::from_json("{"), Err(Error::Json { .. })));
}

#[tokio::test]
async fn applying_the_same_schema_again_changes_nothing() {
    let (db, dir) = file_db(common::tv12_schema()).await;
    db.execute(
        "INSERT INTO my_todos(id, description) VALUES ('a', 'x')",
        (),
    )
    .await
    .unwrap();
    let before = rows(
        &db,
        "SELECT type, name, sql FROM sqlite_schema ORDER BY name",
    )
    .await;
    db.update_schema(common::tv12_schema()).await.unwrap();
    db.close().await;
    let db = Database::open(dir.path().join("test.db"), common::tv12_schema())
        .await
        .unwrap();
    let after = rows(
        &db,
        "SELECT type, name, sql FROM sqlite_schema ORDER BY name",
    )
    .await;
    assert_eq!(before, after);
    assert_eq!(
        rows(&db, "SELECT id, description FROM my_todos").await,
        vec![vec!["a", "x"]]
    );
    assert_eq!(
        rows(&db, "SELECT count(*) FROM ps_crud").await,
        vec![vec!["1"]]
    );
}

#[tokio::test]
async fn schema_migration_keeps_data_tv13() {
    let db = Database::in_memory(Schema::new([Table::new(
        "todos",
        [Column::text("description")],
    )]))
    .await
    .unwrap();
    // What the sync engine stores: a known table gets the row, an unknown type is parked.
    db.execute_batch(
        r#"INSERT INTO ps_data__todos(id, data) VALUES ('t1', '{"description":"a","extra":42}');
           INSERT INTO ps_untyped(type, id, data) VALUES ('notes', 'n1', '{"text":"hi"}');"#,
    )
    .await
    .unwrap();

    // 1. Add a column and a table: the unknown key shows up, the parked row moves in.
    db.update_schema(Schema::new([
        Table::new(
            "todos",
            [Column::text("description"), Column::integer("extra")],
        ),
        Table::new("notes", [Column::text("text")]),
    ]))
    .await
    .unwrap();
    assert_eq!(
        rows(&db, "SELECT id, description, extra FROM todos").await,
        vec![vec!["t1", "a", "42"]]
    );
    assert_eq!(
        rows(&db, "SELECT id, text FROM notes").await,
        vec![vec!["n1", "hi"]]
    );
    assert!(rows(&db, "SELECT * FROM ps_untyped").await.is_empty());

    // 2. Drop `todos`: its rows are parked.
    db.update_schema(Schema::new([Table::new("notes", [Column::text("text")])]))
        .await
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT type, id, data FROM ps_untyped").await,
        vec![vec!["todos", "t1", r#"{"description":"a","extra":42}"#]]
    );
    assert!(
        rows(
            &db,
            "SELECT name FROM sqlite_schema WHERE name IN ('todos', 'ps_data__todos')"
        )
        .await
        .is_empty()
    );

    // 3. `notes` becomes local-only: the local table starts empty, synced rows are parked.
    db.update_schema(Schema::new([
        Table::new("notes", [Column::text("text")]).local_only()
    ]))
    .await
    .unwrap();
    assert!(rows(&db, "SELECT * FROM notes").await.is_empty());
    assert_eq!(
        rows(&db, "SELECT type, id, data FROM ps_untyped ORDER BY type").await,
        vec![
            vec!["notes", "n1", r#"{"text":"hi"}"#],
            vec!["todos", "t1", r#"{"description":"a","extra":42}"#]
        ]
    );

    // And back: the parked rows return.
    db.update_schema(Schema::new([
        Table::new("notes", [Column::text("text")]),
        Table::new("todos", [Column::text("description")]),
    ]))
    .await
    .unwrap();
    assert_eq!(
        rows(&db, "SELECT id, text FROM notes").await,
        vec![vec!["n1", "hi"]]
    );
    assert_eq!(
        rows(&db, "SELECT id, description FROM todos").await,
        vec![vec!["t1", "a"]]
    );
}

#[tokio::test]
async fn changed_indexes_are_recreated_and_removed_ones_dropped() {
    let with_index = |ascending: bool| {
        let column = if ascending {
            IndexColumn::ascending("done")
        } else {
            IndexColumn::descending("done")
        };
        Schema::new([Table::new(
            "todos",
            [Column::text("description"), Column::integer("done")],
        )
        .index(Index::new("by_done", [column]))])
    };
    let db = Database::in_memory(with_index(true)).await.unwrap();
    let index_sql = |db: Database| async move {
        rows(&db, "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = 'ps_data__todos__by_done'").await
    };
    assert!(!index_sql(db.clone()).await[0][0].contains("DESC"));
    db.update_schema(with_index(false)).await.unwrap();
    assert!(index_sql(db.clone()).await[0][0].contains("DESC"));
    // The index is used by queries through the view.
    let plan = rows(
        &db,
        "EXPLAIN QUERY PLAN SELECT id FROM todos WHERE done = 1",
    )
    .await;
    assert!(
        plan.iter()
            .any(|r| r.join(" ").contains("ps_data__todos__by_done")),
        "{plan:?}"
    );
    db.update_schema(todo_schema()).await.unwrap();
    assert!(index_sql(db.clone()).await.is_empty());
}

#[tokio::test]
async fn a_view_name_taken_by_an_unmanaged_table_is_a_clear_error_and_changes_nothing() {
    let db = Database::in_memory(Schema::default()).await.unwrap();
    db.execute_batch("CREATE TABLE todos(x)").await.unwrap();
    let err = db.update_schema(todo_schema()).await.unwrap_err();
    assert!(matches!(err, Error::Schema { .. }));
    assert!(err.to_string().contains("view_name"), "{err}");
    // The failed application was rolled back as a whole.
    assert!(
        rows(
            &db,
            "SELECT name FROM sqlite_schema WHERE name = 'ps_data__todos'"
        )
        .await
        .is_empty()
    );
    assert_eq!(db.schema(), Schema::default());
}

#[tokio::test]
async fn renaming_a_table_by_case_only_keeps_its_rows() {
    let db = Database::in_memory(Schema::new([Table::new(
        "Todos",
        [Column::text("description")],
    )]))
    .await
    .unwrap();
    db.execute("INSERT INTO Todos(id, description) VALUES ('1', 'x')", ())
        .await
        .unwrap();
    db.update_schema(Schema::new([Table::new(
        "todos",
        [Column::text("description")],
    )]))
    .await
    .unwrap();
    assert_eq!(
        rows(&db, "SELECT id, description FROM todos").await,
        vec![vec!["1", "x"]]
    );
}

/// Internal layouts 2 (the op log keyed by row) and 3 (stream subscriptions) migrate a
/// layout-1 database: downgrade with the recorded down-migrations, store an op the
/// layout-1 way, reopen.
#[tokio::test]
async fn the_op_log_layout_migrates_and_its_down_migration_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layout.db");
    Database::open(&path, todo_schema())
        .await
        .unwrap()
        .close()
        .await;

    let conn = rusqlite::Connection::open(&path).unwrap();
    // Down to layout 1: the recorded down-migrations, newest layout first.
    let downs: Vec<String> = conn
        .prepare("SELECT down_migrations FROM ps_migration WHERE id >= 2 ORDER BY id DESC")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(downs.len(), 2, "layouts 2 and 3 record down-migrations");
    for down in downs {
        let steps: Vec<serde_json::Value> = serde_json::from_str(&down).unwrap();
        for step in steps {
            conn.execute_batch(step["sql"].as_str().unwrap()).unwrap();
        }
    }
    let streams_table: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'ps_stream_subscriptions'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        streams_table, 0,
        "layout 3's down-migration drops its table"
    );
    conn.execute_batch(
        "INSERT INTO ps_buckets(id, name, last_applied_op) VALUES (1, 'b', 5);
         INSERT INTO ps_oplog(bucket, op_id, row_type, row_id, key, data, hash)
           VALUES (1, 7, 'todos', 't1', 'todos/t1/s', '{\"description\":\"kept\"}', -6);",
    )
    .unwrap();
    drop(conn);

    let db = Database::open(&path, todo_schema()).await.unwrap();
    assert_eq!(
        rows(
            &db,
            "SELECT row_type, row_id, bucket, subkey, op_id, data, hash FROM ps_oplog"
        )
        .await,
        [[
            "todos",
            "t1",
            "1",
            "s",
            "7",
            "{\"description\":\"kept\"}",
            "-6"
        ]]
    );
    assert_eq!(
        rows(&db, "SELECT bucket, row_type, row_id FROM ps_oplog_pending").await,
        [["1", "todos", "t1"]],
        "op 7 is newer than the bucket's last apply (5): listed for the next apply"
    );
    assert_eq!(rows(&db, "SELECT max(id) FROM ps_migration").await, [["3"]]);
    assert_eq!(
        rows(&db, "SELECT count(*) FROM ps_stream_subscriptions").await,
        [["0"]]
    );
    db.close().await;
}

/// Renaming a table only by case keeps its rows and gives the data table the new
/// spelling, which is what synced rows are routed by.
#[tokio::test]
async fn a_table_renamed_only_by_case_keeps_rows_under_the_new_name() {
    let (db, _dir) = file_db(Schema::new([Table::new("Todos", [Column::text("title")])])).await;
    db.execute("INSERT INTO Todos(id, title) VALUES ('1', 'kept')", ())
        .await
        .unwrap();
    db.update_schema(Schema::new([Table::new("todos", [Column::text("title")])]))
        .await
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT id, title FROM todos").await,
        [["1", "kept"]]
    );
    assert_eq!(
        rows(
            &db,
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'ps_data__%'"
        )
        .await,
        [["ps_data__todos"]]
    );
    db.close().await;
}

#[tokio::test]
async fn names_reserved_by_sqlite_are_refused_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    for schema in [
        Schema::new([Table::new("sqlite_foo", [Column::text("a")])]),
        Schema::new([Table::new("SQLite_Stat1", [Column::text("a")])]),
        Schema::new([Table::new("t", [Column::text("a")]).view_name("SQLITE_view")]),
    ] {
        let path = dir.path().join("never.db");
        let err = Database::open(&path, schema).await.unwrap_err();
        match &err {
            Error::InvalidIdentifier { name, reason, .. } => {
                assert!(name.to_ascii_lowercase().starts_with("sqlite_"), "{name}");
                assert!(reason.contains("sqlite_"), "{reason}");
            }
            other => panic!("expected InvalidIdentifier, got {other:?}"),
        }
        assert!(err.to_string().contains("sqlite_"), "{err}");
        assert!(!path.exists(), "refused before SQLite opens the file");
    }
    // Merely containing "sqlite" is fine.
    Database::in_memory(Schema::new([Table::new(
        "my_sqlite_notes",
        [Column::text("a")],
    )]))
    .await
    .unwrap();
}
