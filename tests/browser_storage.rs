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
    browser_common::reopen_keeps_rows_and_the_upload_queue("reopen.db").await;
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
