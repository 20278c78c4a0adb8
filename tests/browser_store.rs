//! The store in the browser's main thread (headless Chromium, `wasm-bindgen-test`):
//! an in-memory database with writes, reads, transactions, table watchers, a throttled
//! live query and the CRUD queue, exactly as a Dioxus web or Leptos CSR app uses them.
//! (A persistent database on the page: `browser_page_storage.rs`.)
//!
//! Run with `cargo test --target wasm32-unknown-unknown --no-default-features --test browser_store`
//! (see `scripts/test`).
#![cfg(target_arch = "wasm32")]

mod browser_common;

use std::time::Duration;

use browser_common::{in_time, schema};
use futures::StreamExt;
use livesync::{Database, Error, UpdateType};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn writes_reads_and_transactions_run_on_the_page() {
    let db = Database::in_memory(schema()).await.unwrap();
    db.execute("INSERT INTO lists(id, name) VALUES ('l1', 'groceries')", ())
        .await
        .unwrap();
    db.transaction(|tx| {
        tx.execute(
            "INSERT INTO todos(id, description, list_id) VALUES ('t1', 'milk', 'l1')",
            [],
        )?;
        tx.execute(
            "INSERT INTO todos(id, description, list_id) VALUES ('t2', 'eggs', 'l1')",
            [],
        )?;
        Ok(())
    })
    .await
    .unwrap();
    let failed = db
        .transaction(|tx| {
            tx.execute(
                "INSERT INTO todos(id, description) VALUES ('t3', 'lost')",
                [],
            )?;
            tx.execute("INSERT INTO nowhere VALUES (1)", [])?;
            Ok(())
        })
        .await;
    assert!(matches!(failed, Err(Error::Sqlite { .. })), "{failed:?}");
    let todos = db
        .query::<String>("SELECT description FROM todos ORDER BY id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        todos,
        ["milk", "eggs"],
        "the failed transaction left nothing"
    );
    let client_id = db.client_id().await.unwrap();
    assert_eq!(
        client_id.len(),
        36,
        "a UUID from the browser's crypto: {client_id}"
    );
    db.close().await;
    assert!(matches!(
        db.execute("SELECT 1", ()).await,
        Err(Error::Closed)
    ));
}

#[wasm_bindgen_test]
async fn a_watcher_hears_each_committed_write_and_not_a_rolled_back_one() {
    let db = Database::in_memory(schema()).await.unwrap();
    let mut changes = db.watch_tables(["todos"]);
    let _ = db
        .transaction(|tx| {
            tx.execute(
                "INSERT INTO todos(id, description) VALUES ('x', 'rolled back')",
                [],
            )?;
            Err::<(), _>(Error::UnexpectedData("give up".into()))
        })
        .await;
    db.execute(
        "INSERT INTO lists(id, name) VALUES ('l1', 'not watched')",
        (),
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('t1', 'watched')",
        (),
    )
    .await
    .unwrap();
    let change = in_time("the todo write", changes.next()).await.unwrap();
    assert!(change.contains("todos"));
    assert_eq!(
        db.query::<i64>("SELECT count(*) FROM todos")
            .fetch_one()
            .await
            .unwrap(),
        1
    );
    db.close().await;
    assert!(
        in_time("the end of the watcher", changes.next())
            .await
            .is_none()
    );
}

#[wasm_bindgen_test]
async fn a_throttled_live_query_ends_on_the_final_state_of_a_burst() {
    let db = Database::in_memory(schema()).await.unwrap();
    let mut count = db
        .query::<i64>("SELECT count(*) FROM todos")
        .throttle(Duration::from_millis(20))
        .watch();
    assert_eq!(
        in_time("the first result", count.next())
            .await
            .unwrap()
            .unwrap(),
        [0]
    );
    const BURST: i64 = 50;
    for i in 0..BURST {
        db.execute(
            "INSERT INTO todos(id, description) VALUES (?1, 'burst')",
            [format!("t{i:02}")],
        )
        .await
        .unwrap();
    }
    let mut emissions = 0;
    let mut last = 0;
    while last < BURST {
        last = in_time("the burst's final state", count.next())
            .await
            .unwrap()
            .unwrap()[0];
        emissions += 1;
    }
    assert_eq!(last, BURST, "ends exactly on the final state");
    assert!(emissions <= BURST, "never more emissions than writes");
    db.close().await;
    assert!(
        in_time("the end of the live query", count.next())
            .await
            .is_none()
    );
}

#[wasm_bindgen_test]
async fn local_writes_wait_in_the_crud_queue_until_completed() {
    let db = Database::in_memory(schema()).await.unwrap();
    db.execute("INSERT INTO lists(id, name) VALUES ('l1', 'a')", ())
        .await
        .unwrap();
    db.execute("UPDATE lists SET name = 'b' WHERE id = 'l1'", ())
        .await
        .unwrap();
    db.execute("DELETE FROM lists WHERE id = 'l1'", ())
        .await
        .unwrap();
    let mut ops = Vec::new();
    while let Some(tx) = db.get_next_crud_transaction().await.unwrap() {
        ops.extend(tx.crud.iter().map(|entry| (entry.op, entry.id.clone())));
        tx.complete().await.unwrap();
    }
    assert_eq!(
        ops,
        [
            (UpdateType::Put, "l1".to_owned()),
            (UpdateType::Patch, "l1".to_owned()),
            (UpdateType::Delete, "l1".to_owned()),
        ]
    );
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 0);
    db.close().await;
}
