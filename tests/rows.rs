//! Typed rows and one-shot queries: `#[derive(Row)]`, tuples, scalars, serde, errors.

mod common;

use common::todo_schema;
use livesync::{Column, ColumnType, Database, Error, Row, Schema, Serde, Table};

#[derive(Row, Debug, PartialEq)]
#[row(table = "items")]
struct Item {
    id: String,
    name: String,
    count: i64,
    small: i32,
    price: f64,
    active: bool,
    note: Option<String>,
    raw: Vec<u8>,
    meta: serde_json::Value,
    #[row(json)]
    tags: Vec<String>,
    #[row(rename = "label")]
    title: String,
    #[row(default)]
    missing: Option<i64>,
}

async fn item_db() -> Database {
    let db = Database::in_memory(Schema::new([Item::table()]))
        .await
        .unwrap();
    db.execute(
        r#"INSERT INTO items(id, name, count, small, price, active, note, raw, meta, tags, label)
           VALUES ('i1', 'pen', 3, -7, 1.5, 1, NULL, 'ab', '{"a":1}', '["x","y"]', 'Pen')"#,
        (),
    )
    .await
    .unwrap();
    db
}

#[tokio::test]
async fn derived_rows_decode_every_supported_field_type_by_name() {
    let db = item_db().await;
    let item: Item = db.query("SELECT * FROM items").fetch_one().await.unwrap();
    assert_eq!(
        item,
        Item {
            id: "i1".into(),
            name: "pen".into(),
            count: 3,
            small: -7,
            price: 1.5,
            active: true,
            note: None,
            raw: b"ab".to_vec(),
            meta: serde_json::json!({"a": 1}),
            tags: vec!["x".into(), "y".into()],
            title: "Pen".into(),
            missing: None,
        }
    );
    // Column order does not matter: columns are matched by name.
    let reordered: Item = db
        .query(
            "SELECT label, tags, meta, raw, note, active, price, small, count, name, id FROM items",
        )
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(reordered, item);
}

#[test]
fn the_table_is_generated_from_the_field_types() {
    let table = Item::table();
    assert_eq!(table.name, "items");
    let columns: Vec<(&str, ColumnType)> = table
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.column_type))
        .collect();
    assert_eq!(columns[0], ("name", ColumnType::Text));
    assert_eq!(columns[1], ("count", ColumnType::Integer));
    assert_eq!(columns[3], ("price", ColumnType::Real));
    assert_eq!(columns[4], ("active", ColumnType::Integer));
    assert!(
        columns.iter().all(|(name, _)| *name != "id"),
        "id is implicit"
    );
    assert!(columns.contains(&("label", ColumnType::Text)));
    assert!(columns.contains(&("tags", ColumnType::Text)));
}

#[tokio::test]
async fn decode_errors_name_the_column_the_expectation_and_the_sql() {
    let db = item_db().await;
    let err = db
        .query::<Item>("SELECT id, name, 'many' AS count FROM items")
        .fetch_all()
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Decode { .. }));
    assert!(
        message.contains("\"small\""),
        "missing column named: {message}"
    );
    let err = db
        .query::<(String, i64)>("SELECT id, name FROM items")
        .fetch_all()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("#1") && err.contains("integer") && err.contains("\"pen\""),
        "{err}"
    );
    assert!(err.contains("SELECT id, name FROM items"), "{err}");
    let err = db
        .query::<bool>("SELECT 2")
        .fetch_one()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("0 or 1"), "{err}");
}

#[tokio::test]
async fn tuples_scalars_and_serde_types_decode_too() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    for (id, done) in [("a", 0), ("b", 1), ("c", 1)] {
        db.execute(
            "INSERT INTO todos(id, description, done) VALUES (?1, ?1, ?2)",
            (id, done),
        )
        .await
        .unwrap();
    }
    let pairs: Vec<(String, bool)> = db
        .query("SELECT id, done FROM todos ORDER BY id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        pairs,
        [("a".into(), false), ("b".into(), true), ("c".into(), true)]
    );
    let done: i64 = db
        .query::<i64>("SELECT count(*) FROM todos WHERE done = :done")
        .bind_named("done", 1)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(done, 2);
    let first: Option<String> = db
        .query("SELECT id FROM todos WHERE id > ? ORDER BY id")
        .bind("a")
        .fetch_optional()
        .await
        .unwrap();
    assert_eq!(first.as_deref(), Some("b"));
    let scalar: i64 = db
        .query::<(String, i64)>("SELECT count(*), 'x' FROM todos")
        .fetch_scalar()
        .await
        .unwrap();
    assert_eq!(scalar, 3);

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Plain {
        id: String,
        done: i64,
    }
    let plain: Vec<Serde<Plain>> = db
        .query("SELECT id, done FROM todos ORDER BY id LIMIT 1")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        plain[0].0,
        Plain {
            id: "a".into(),
            done: 0
        }
    );
}

#[tokio::test]
async fn missing_rows_and_bad_parameters_are_clear_errors() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    let err = db
        .query::<String>("SELECT id FROM todos")
        .fetch_one()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(
        db.query::<String>("SELECT id FROM todos")
            .fetch_optional()
            .await
            .unwrap()
            .is_none()
    );
    let err = db
        .query::<i64>("SELECT ?")
        .bind(1)
        .bind(2)
        .fetch_one()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidParameter(_)), "{err:?}");
    let err = db
        .query::<i64>("SELECT :a")
        .bind_named("b", 1)
        .fetch_one()
        .await
        .unwrap_err();
    assert!(err.to_string().contains(":b"), "{err}");
    let err = db.query::<i64>("SELEC 1").fetch_all().await.unwrap_err();
    assert!(matches!(err, Error::Sqlite { .. }), "{err:?}");
}

#[tokio::test]
async fn a_schema_can_be_built_from_row_types() {
    #[derive(Row)]
    #[row(table = "notes")]
    #[allow(dead_code)]
    struct Note {
        id: String,
        body: Option<String>,
        stars: u8,
    }
    let db = Database::in_memory(Schema::new([
        Note::table(),
        Table::new("other", [Column::text("x")]),
    ]))
    .await
    .unwrap();
    db.execute(
        "INSERT INTO notes(id, body, stars) VALUES ('n', NULL, 5)",
        (),
    )
    .await
    .unwrap();
    let stars: u8 = db
        .query("SELECT stars FROM notes")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(stars, 5);
}

#[tokio::test]
async fn every_placeholder_needs_exactly_one_value() {
    let db = Database::in_memory(Schema::default()).await.unwrap();
    // Too few: SQLite would bind NULL to ?2 and answer NULL.
    let err = db
        .query::<Option<i64>>("SELECT ?1 + ?2")
        .bind(1)
        .fetch_all()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidParameter(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("SELECT ?1 + ?2") && message.contains('2') && message.contains('1'),
        "names the SQL and the counts: {message}"
    );
    assert!(
        message.contains("?2"),
        "names the unbound placeholder: {message}"
    );
    // None at all.
    let err = db
        .query::<Option<i64>>("SELECT ?")
        .fetch_optional()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidParameter(_)), "{err:?}");
    // Too many names the counts and the SQL too.
    let message = db
        .query::<i64>("SELECT ?")
        .bind(1)
        .bind(2)
        .fetch_one()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("SELECT ?") && message.contains("2 values") && message.contains('1'),
        "{message}"
    );
    // A named parameter left unbound.
    let err = db
        .query::<Option<i64>>("SELECT :a + :b")
        .bind_named("a", 1)
        .fetch_all()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidParameter(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(":b") && message.contains("SELECT :a + :b"),
        "{message}"
    );
    // Live queries check too.
    use futures::StreamExt;
    let mut live = db.query::<Option<i64>>("SELECT ?1 + ?2").bind(1).watch();
    assert!(matches!(
        live.next().await.unwrap(),
        Err(Error::InvalidParameter(_))
    ));
    // Complete bindings still work, positional and named, reused placeholders included.
    let sum: i64 = db
        .query("SELECT ?1 + ?2 + ?1")
        .bind(1)
        .bind(2)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(sum, 4);
    let sum: i64 = db
        .query("SELECT :a + :b + :a")
        .bind_named("b", 2)
        .bind_named(":a", 1)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(sum, 4);
    let nothing: Option<i64> = db
        .query("SELECT ?")
        .bind(None::<i64>)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(nothing, None);
}

#[tokio::test]
async fn tuples_and_scalars_on_too_few_columns_say_what_is_missing() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.execute(
        "INSERT INTO todos(id, description, done) VALUES ('a', 'milk', 0)",
        (),
    )
    .await
    .unwrap();
    let err = db
        .query::<(String, String, i64)>("SELECT id, description FROM todos")
        .fetch_all()
        .await
        .unwrap_err();
    match &err {
        Error::Decode { column, sql, .. } => {
            assert_eq!(column, "#2");
            assert_eq!(sql.as_deref(), Some("SELECT id, description FROM todos"));
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("integer") && message.contains("2 columns") && message.contains("3"),
        "position, expected type, column count: {message}"
    );
    // Even when no row comes back, the shape is checked.
    let err = db
        .query::<(String, i64)>("SELECT id FROM todos WHERE 0")
        .fetch_optional()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    // A single value from a statement that returns no column.
    let err = db
        .query::<i64>("UPDATE todos SET done = 1")
        .fetch_all()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("no column"), "{err}");
    let err = db
        .query::<String>("DELETE FROM todos WHERE 0")
        .fetch_scalar::<i64>()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    // Live queries decode kept values with the same checks.
    use futures::StreamExt;
    let mut live = db.query::<(String, String)>("SELECT id FROM todos").watch();
    let err = live.next().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("1 column"), "{err}");
}
