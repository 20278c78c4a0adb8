//! Under `ssr`, a stream-backed live resource resolves at once from the server's local
//! rows: it neither subscribes nor waits for a stream the server cannot sync.

use std::time::Duration;

use leptos::{SignalGet, create_runtime, untrack};
use livesync::Row;
use livesync::leptos::{LiveQueryOptions, create_live_query_with, provide_database};
use livesync::{Column, Database, Schema, Table};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Row, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Todo {
    id: String,
    description: String,
}

#[tokio::test]
async fn a_stream_backed_resource_renders_local_rows_on_the_server_without_subscribing() {
    let schema = Schema::new([Table::new(
        "todos",
        [Column::text("description"), Column::text("list_id")],
    )]);
    let db = Database::in_memory(schema).await.unwrap();
    db.execute(
        "INSERT INTO todos(id, description, list_id) VALUES ('t1', 'local', 'l1')",
        (),
    )
    .await
    .unwrap();
    tokio::task::LocalSet::new()
        .run_until(async move {
            let runtime = create_runtime();
            provide_database(db.clone());
            let query = db.clone();
            let todos = create_live_query_with(
                move || {
                    query.query::<Todo>("SELECT id, description FROM todos WHERE list_id = 'l1'")
                },
                || LiveQueryOptions::new().stream("list_todos", json!({"list_id": "l1"})),
            );
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while untrack(|| todos.get()).is_none() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the server waited for the stream"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let rows = untrack(|| todos.get()).unwrap().unwrap();
            assert_eq!(rows[0].description, "local");
            assert!(
                db.status()
                    .for_stream("list_todos", json!({"list_id": "l1"}))
                    .is_none(),
                "a server render subscribes nothing"
            );
            runtime.dispose();
        })
        .await;
}
