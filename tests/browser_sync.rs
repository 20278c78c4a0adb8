//! Sync from the browser (headless Chromium, the page's main thread): `connect` over
//! `fetch` to the embedded test service running natively on 127.0.0.1, the NDJSON body
//! parsed as it arrives, local writes uploaded through the app's backend and synced
//! back down, and `disconnect` leaving no task behind.
//!
//! The service is `examples/test_service.rs`, started by `scripts/test-browser` (see
//! `browser_common/sync.rs`). The page is served from another port than the service, so
//! every request crosses origins (CORS, with the `Authorization` preflight).
#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::sync::{BrowserConnector, options, schema};
use browser_common::{in_time, next_tick};
use livesync::{BackendConnector, Credentials, Database, Result};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

async fn strings(db: &Database, sql: &str) -> Vec<String> {
    db.query::<String>(sql).fetch_all().await.unwrap()
}

#[wasm_bindgen_test]
async fn a_page_syncs_uploads_and_gets_its_write_back_over_fetch() {
    let db = Database::in_memory(schema()).await.unwrap();
    assert_eq!(db.background_tasks(), 0);
    db.connect(BrowserConnector::new(), options())
        .await
        .unwrap();
    assert_eq!(db.background_tasks(), 2, "the download and upload loops");
    in_time("the first sync", db.wait_for_first_sync())
        .await
        .unwrap();
    // The sync stream never ends on its own: the first sync completed from lines
    // parsed while the response was still open.
    assert!(db.status().connected, "{:?}", db.status());
    assert_eq!(
        strings(
            &db,
            "SELECT name FROM lists WHERE id IN ('l1', 'l2') ORDER BY id"
        )
        .await,
        ["Groceries", "Chores"]
    );
    assert_eq!(
        strings(
            &db,
            "SELECT description FROM todos WHERE id IN ('t1', 't2', 't3') ORDER BY id"
        )
        .await,
        ["milk", "dishes"],
        "only u1's todos (t3 belongs to u2)"
    );

    // A local write is uploaded through the connector.
    let list_id = format!("b-{}", db.client_id().await.unwrap());
    db.execute(
        "INSERT INTO lists(id, name, owner_id) VALUES (?1, 'from the browser', 'u1')",
        [list_id.clone()],
    )
    .await
    .unwrap();
    in_time("the upload queue to drain", async {
        while db.upload_queue_stats().await.unwrap().count > 0 {
            next_tick().await;
        }
    })
    .await;

    // Proof that it reached the service: forget everything local, sync again, and
    // the row comes back down.
    db.disconnect_and_clear(true).await.unwrap();
    assert!(strings(&db, "SELECT id FROM lists").await.is_empty());
    db.connect(BrowserConnector::new(), options())
        .await
        .unwrap();
    in_time("the second first sync", db.wait_for_first_sync())
        .await
        .unwrap();
    assert_eq!(
        strings(
            &db,
            &format!("SELECT name FROM lists WHERE id = '{list_id}'")
        )
        .await,
        ["from the browser"]
    );

    db.disconnect().await;
    assert_eq!(
        db.background_tasks(),
        0,
        "disconnect leaves no task running"
    );
    assert!(!db.status().connected);
    db.close().await;
}

#[wasm_bindgen_test]
async fn an_unreachable_service_is_a_download_error_and_local_work_goes_on() {
    struct Nowhere;
    impl BackendConnector for Nowhere {
        async fn fetch_credentials(&self) -> Result<Credentials> {
            // Port 9 (discard) on this machine: nothing listens there.
            Ok(Credentials::new("http://127.0.0.1:9", "token"))
        }
        async fn upload_data(&self, _db: &Database) -> Result<()> {
            Ok(())
        }
    }
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(Nowhere, options()).await.unwrap();
    let error = in_time("a download error", async {
        loop {
            if let Some(error) = db.status().download_error {
                return error;
            }
            next_tick().await;
        }
    })
    .await;
    assert!(!error.to_string().is_empty());
    db.execute("INSERT INTO lists(id, name) VALUES ('l', 'offline')", ())
        .await
        .unwrap();
    assert_eq!(strings(&db, "SELECT name FROM lists").await, ["offline"]);
    db.disconnect().await;
    assert_eq!(db.background_tasks(), 0);
    db.close().await;
}

#[wasm_bindgen_test]
async fn a_raw_table_syncs_typed_rows_and_queues_local_writes_on_the_page() {
    // `todos` is the app's own table here, with a column sync never touches.
    let schema = livesync::Schema::new([livesync::Table::new(
        "lists",
        [livesync::Column::text("name")],
    )])
    .raw_table(livesync::RawTable::new("todos").synced_columns([
        "description",
        "done",
        "list_id",
        "owner_id",
    ]));
    let db = Database::in_memory(schema).await.unwrap();
    db.execute_batch(
        "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, description TEXT, done INTEGER, \
         list_id TEXT, owner_id TEXT, pinned INTEGER NOT NULL DEFAULT 0)",
    )
    .await
    .unwrap();
    db.prepare_raw_tables().await.unwrap();
    db.connect(BrowserConnector::new(), options())
        .await
        .unwrap();
    in_time("the first sync", db.wait_for_first_sync())
        .await
        .unwrap();
    assert_eq!(
        strings(
            &db,
            "SELECT id || ':' || description || ':' || typeof(done) || done FROM todos \
             WHERE id IN ('t1', 't2', 't3') ORDER BY id"
        )
        .await,
        ["t1:milk:integer0", "t2:dishes:integer1"]
    );
    // The app's own column is not uploaded; a synced one is.
    db.execute("UPDATE todos SET pinned = 1 WHERE id = 't1'", ())
        .await
        .unwrap();
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 0);
    db.disconnect().await;
    db.execute("UPDATE todos SET done = 1 WHERE id = 't1'", ())
        .await
        .unwrap();
    let tx = db.get_next_crud_transaction().await.unwrap().unwrap();
    assert_eq!(tx.crud.len(), 1);
    assert_eq!(tx.crud[0].table, "todos");
    assert_eq!(
        tx.crud[0].data.as_ref().unwrap().get("done"),
        Some(&serde_json::json!(1))
    );
    db.close().await;
}
