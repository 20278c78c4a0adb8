//! A persistent database on a page's main thread (headless Chromium), where a Dioxus web
//! or Leptos CSR app renders and OPFS sync access handles do not exist: the database is
//! an in-memory image saved to OPFS after each commit. Rows and queued local writes
//! survive closing and reopening; an awaited write is already in the saved file; a bad
//! saved file is reported as such; a second tab is refused naming the Web Lock; a full
//! quota and refused storage are clear errors and lose nothing.
//!
//! Run with `bash scripts/test-browser` (it runs every `tests/browser_*.rs`). Each run
//! starts from a fresh browser profile; each test uses its own database name.
#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{hold_lock_elsewhere, schema};
use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use livesync::{Database, Error};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn rows_and_queued_writes_survive_reopening_on_the_page() {
    browser_common::reopen_keeps_rows_and_the_upload_queue("page-reopen.db").await;
    // What happened after the reopen (completions, one more write) was saved too.
    let db = Database::open("page-reopen.db", schema()).await.unwrap();
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 1);
    let todos = db
        .query::<String>("SELECT description FROM todos ORDER BY id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(todos, ["one", "two", "three"]);
    db.close().await;
}

/// The page can be closed the moment a write's future has resolved: the saved file
/// already holds it (read here straight from OPFS, with the database still open).
#[wasm_bindgen_test]
async fn an_awaited_write_is_already_in_the_saved_file() {
    let db = Database::open("page-durable.db", schema()).await.unwrap();
    let marker = "marker-5f2c1e9a";
    db.execute(
        "INSERT INTO lists(id, name) VALUES ('l1', ?1)",
        (marker.to_owned(),),
    )
    .await
    .unwrap();
    let saved = read_saved("page-durable.db").await.expect("a saved file");
    assert!(
        saved.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the saved image ({} bytes) holds the row",
        saved.len()
    );
    // It is an SQLite database file.
    assert!(saved.starts_with(b"SQLite format 3\0"));
    db.close().await;
}

#[wasm_bindgen_test]
async fn a_saved_file_that_is_not_a_database_is_reported_and_left_alone() {
    write_saved(
        "page-garbage.db",
        b"this is not an sqlite database, just text",
    )
    .await;
    let error = Database::open("page-garbage.db", schema())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotADatabase { .. }), "{error:?}");
    // Nothing was overwritten: the bytes are still there for the app to deal with.
    let kept = read_saved("page-garbage.db").await.unwrap();
    assert!(kept.starts_with(b"this is not"));
    // And the storage is not left locked: another database opens.
    let db = Database::open("page-after-garbage.db", schema())
        .await
        .unwrap();
    db.close().await;
}

#[wasm_bindgen_test]
async fn a_second_tab_is_refused_on_the_page_too() {
    let release = hold_lock_elsewhere("livesync:livesync-opfs").await;
    let error = Database::open("page-tabs.db", schema()).await.unwrap_err();
    assert!(matches!(error, Error::OpenInAnotherTab { .. }), "{error:?}");
    assert!(error.to_string().contains("Web Lock"), "{error}");
    release.call0(&JsValue::UNDEFINED).unwrap();
    browser_common::next_tick().await;
    let db = Database::open("page-tabs.db", schema()).await.unwrap();
    db.execute("INSERT INTO lists(id, name) VALUES ('l1', 'after')", ())
        .await
        .unwrap();
    db.close().await;
}

/// A full quota (the browser's `QuotaExceededError`, injected here by replacing the
/// OPFS writer's `write`): the write reports `Error::StorageFull`, the data stays
/// readable and writable in memory, and the next save, once there is room, keeps all of it.
#[wasm_bindgen_test]
async fn a_full_quota_is_storage_full_and_nothing_is_lost_once_there_is_room() {
    let db = Database::open("page-quota.db", schema()).await.unwrap();
    db.execute("INSERT INTO lists(id, name) VALUES ('l1', 'before')", ())
        .await
        .unwrap();
    js_sys::eval(
        "globalThis.__livesyncWrite = FileSystemWritableFileStream.prototype.write; \
         FileSystemWritableFileStream.prototype.write = function () { \
           return Promise.reject(new DOMException('injected by the test', 'QuotaExceededError')); };",
    )
    .unwrap();
    let error = db
        .execute(
            "INSERT INTO lists(id, name) VALUES ('l2', 'while full')",
            (),
        )
        .await
        .unwrap_err();
    js_sys::eval("FileSystemWritableFileStream.prototype.write = globalThis.__livesyncWrite;")
        .unwrap();
    assert!(matches!(error, Error::StorageFull { .. }), "{error:?}");
    assert!(error.to_string().contains("quota"), "{error}");
    // The app keeps working on what it has.
    let names = db
        .query::<String>("SELECT name FROM lists ORDER BY id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(names, ["before", "while full"]);
    db.execute("INSERT INTO lists(id, name) VALUES ('l3', 'after')", ())
        .await
        .unwrap();
    db.close().await;
    let db = Database::open("page-quota.db", schema()).await.unwrap();
    let names = db
        .query::<String>("SELECT name FROM lists ORDER BY id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        names,
        ["before", "while full", "after"],
        "all saved once there was room"
    );
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 3);
    db.close().await;
}

/// No origin private file system (storage disabled, some private modes: injected here
/// by making `getDirectory` refuse): opening says so and points to `Database::in_memory`,
/// which still works; the storage is not left locked.
#[wasm_bindgen_test]
async fn storage_that_the_browser_refuses_is_storage_unavailable() {
    js_sys::eval(
        "globalThis.__livesyncGetDirectory = StorageManager.prototype.getDirectory; \
         StorageManager.prototype.getDirectory = function () { \
           return Promise.reject(new DOMException('injected by the test', 'SecurityError')); };",
    )
    .unwrap();
    let error = Database::open("page-refused.db", schema())
        .await
        .unwrap_err();
    js_sys::eval("StorageManager.prototype.getDirectory = globalThis.__livesyncGetDirectory;")
        .unwrap();
    assert!(
        matches!(error, Error::StorageUnavailable { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("SecurityError"), "{message}");
    assert!(message.contains("Database::in_memory"), "{message}");
    let memory = Database::in_memory(schema()).await.unwrap();
    memory.close().await;
    let db = Database::open("page-refused.db", schema()).await.unwrap();
    db.close().await;
}

/// The page storage's directory in OPFS (see src/store/page_storage_wasm.rs).
async fn page_directory() -> JsValue {
    let storage = Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| Reflect::get(&n, &"storage".into()))
        .unwrap();
    let root = call(&storage, "getDirectory", &[]).await.unwrap();
    let create = Object::new();
    Reflect::set(&create, &"create".into(), &JsValue::TRUE).unwrap();
    call(
        &root,
        "getDirectoryHandle",
        &[".livesync-page".into(), create.into()],
    )
    .await
    .unwrap()
}

async fn read_saved(name: &str) -> Option<Vec<u8>> {
    let handle = call(&page_directory().await, "getFileHandle", &[name.into()])
        .await
        .ok()?;
    let file = call(&handle, "getFile", &[]).await.unwrap();
    let buffer = call(&file, "arrayBuffer", &[]).await.unwrap();
    Some(Uint8Array::new(&buffer).to_vec())
}

async fn write_saved(name: &str, bytes: &[u8]) {
    let create = Object::new();
    Reflect::set(&create, &"create".into(), &JsValue::TRUE).unwrap();
    let handle = call(
        &page_directory().await,
        "getFileHandle",
        &[name.into(), create.into()],
    )
    .await
    .unwrap();
    let writable = call(&handle, "createWritable", &[]).await.unwrap();
    call(&writable, "write", &[Uint8Array::from(bytes).into()])
        .await
        .unwrap();
    call(&writable, "close", &[]).await.unwrap();
}

async fn call(target: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let function: Function = Reflect::get(target, &method.into())?.dyn_into()?;
    let returned = function.apply(target, &args.iter().collect())?;
    match returned.dyn_into::<Promise>() {
        Ok(promise) => JsFuture::from(promise).await,
        Err(value) => Ok(value),
    }
}
