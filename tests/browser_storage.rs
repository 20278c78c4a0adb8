//! Persistent storage in the browser (headless Chromium, in a dedicated worker, where
//! OPFS sync access handles exist): data and queued local writes survive closing and
//! reopening the database, and a second holder of the database is refused naming the
//! Web Lock.
//!
//! Run with `cargo test --target wasm32-unknown-unknown --no-default-features --test browser_storage`
//! (see `scripts/test`). Each run starts from a fresh browser profile, so the database
//! names below start empty; within a run each test uses its own name.
#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{hold_lock_elsewhere, schema};
use livesync::{Database, Error};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[wasm_bindgen_test]
async fn rows_and_queued_writes_survive_reopening() {
    let db = Database::open("reopen.db", schema()).await.unwrap();
    let client_id = db.client_id().await.unwrap();
    db.execute("INSERT INTO lists(id, name) VALUES ('l1', 'kept')", ())
        .await
        .unwrap();
    db.transaction(|tx| {
        tx.execute(
            "INSERT INTO todos(id, description, list_id) VALUES ('t1', 'one', 'l1')",
            [],
        )?;
        tx.execute(
            "INSERT INTO todos(id, description, list_id) VALUES ('t2', 'two', 'l1')",
            [],
        )?;
        Ok(())
    })
    .await
    .unwrap();
    db.close().await;

    let db = Database::open("reopen.db", schema()).await.unwrap();
    assert_eq!(
        db.client_id().await.unwrap(),
        client_id,
        "the same database"
    );
    let todos = db
        .query::<String>("SELECT description FROM todos ORDER BY id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(todos, ["one", "two"]);
    let queued = db
        .get_next_crud_transaction()
        .await
        .unwrap()
        .expect("queued writes");
    assert_eq!(queued.crud.len(), 1, "the first transaction: the list");
    assert_eq!(queued.crud[0].id, "l1");
    queued.complete().await.unwrap();
    let queued = db
        .get_next_crud_transaction()
        .await
        .unwrap()
        .expect("the second one");
    assert_eq!(queued.crud.len(), 2, "the two todos, still one transaction");
    queued.complete().await.unwrap();
    assert!(db.get_next_crud_transaction().await.unwrap().is_none());
    // The next local write continues the upload ids after a reopen (none collide).
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('t3', 'three')",
        (),
    )
    .await
    .unwrap();
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 1);
    db.close().await;
}

#[wasm_bindgen_test]
async fn opening_the_same_name_twice_in_one_context_shares_the_handle() {
    let a = Database::open("shared.db", schema()).await.unwrap();
    let b = Database::open("shared.db", schema()).await.unwrap();
    assert!(a == b);
    a.close().await;
}

/// Another tab of the app holds livesync's Web Lock (here: this worker takes it through
/// the Web Locks API directly, as a second tab's livesync would): opening is refused at
/// once, naming the cause; once the other holder lets go, the database opens.
#[wasm_bindgen_test]
async fn a_database_held_by_another_tab_is_refused_naming_the_web_lock() {
    let release = hold_lock_elsewhere("livesync:livesync-opfs").await;
    let error = Database::open("tabs.db", schema()).await.unwrap_err();
    assert!(matches!(error, Error::OpenInAnotherTab { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("another tab"), "{message}");
    assert!(message.contains("Web Lock"), "{message}");

    release.call0(&JsValue::UNDEFINED).unwrap();
    browser_common::next_tick().await;
    let db = Database::open("tabs.db", schema()).await.unwrap();
    db.execute("INSERT INTO lists(id, name) VALUES ('l1', 'after')", ())
        .await
        .unwrap();
    db.close().await;
}
