//! Shared set-up of the browser tests (`tests/browser_*.rs`, run by
//! `cargo test --target wasm32-unknown-unknown` in headless Chromium): the schema and a
//! guard that turns a wait that never ends into a failure naming what was awaited.
#![allow(dead_code, unreachable_pub)]

pub mod sync;

use std::future::Future;
use std::time::Duration;

use futures::future::Either;
use livesync::{Column, Schema, Table};

/// Two synced tables, as the todo app has them.
pub fn schema() -> Schema {
    Schema::new([
        Table::new("lists", [Column::text("name")]),
        Table::new(
            "todos",
            [Column::text("description"), Column::text("list_id")],
        ),
    ])
}

/// `future`'s output; panics naming `what` if it has not finished after a generous
/// limit (a hang would otherwise only show as the runner's timeout). Never used to
/// assert on speed: the limit is far above any expected duration.
pub async fn in_time<T>(what: &str, future: impl Future<Output = T>) -> T {
    let limit = futures_timer::Delay::new(Duration::from_secs(60));
    match futures::future::select(std::pin::pin!(future), limit).await {
        Either::Left((output, _)) => output,
        Either::Right(((), _)) => panic!("timed out waiting for {what}"),
    }
}

/// Lets the event loop run once (timers, fetch callbacks) before going on.
pub async fn next_tick() {
    futures_timer::Delay::new(Duration::from_millis(1)).await;
}

/// Takes the Web Lock `name` and holds it until the returned function is called.
pub async fn hold_lock_elsewhere(name: &str) -> js_sys::Function {
    let locks = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| js_sys::Reflect::get(&n, &"locks".into()))
        .unwrap();
    let request: js_sys::Function = js_sys::Reflect::get(&locks, &"request".into())
        .unwrap()
        .into();
    let mut release = None;
    let held = js_sys::Promise::new(&mut |resolve, _| release = Some(resolve));
    let (granted_tx, granted) = futures::channel::oneshot::channel::<()>();
    let callback = wasm_bindgen::closure::Closure::once_into_js(
        move |_lock: wasm_bindgen::JsValue| -> wasm_bindgen::JsValue {
            let _ = granted_tx.send(());
            held.into()
        },
    );
    request
        .call3(&locks, &name.into(), &js_sys::Object::new(), &callback)
        .unwrap();
    granted.await.unwrap();
    release.unwrap()
}

pub const WRITES: usize = 1_000;
pub const BULK: usize = 10_000;

/// Prints the cost of 1,000 single-row write transactions, then of one transaction of
/// 10,000 rows, then of 100 single-row writes more (now on a database of 11,000 rows).
pub async fn measure_writes(label: &str, db: &livesync::Database) {
    let started = web_time::Instant::now();
    for i in 0..WRITES {
        db.execute(
            "INSERT INTO todos(id, description) VALUES (?1, 'one row')",
            [format!("w{i}")],
        )
        .await
        .unwrap();
    }
    let per_write = started.elapsed().as_secs_f64() * 1000.0 / WRITES as f64;
    let started = web_time::Instant::now();
    db.transaction(|tx| {
        let mut insert =
            tx.prepare("INSERT INTO todos(id, description) VALUES (?1, 'bulk row')")?;
        for i in 0..BULK {
            insert.execute([format!("b{i}")])?;
        }
        Ok(())
    })
    .await
    .unwrap();
    let bulk = started.elapsed().as_secs_f64() * 1000.0;
    let rows = db
        .query::<i64>("SELECT count(*) FROM todos")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, (WRITES + BULK) as i64);
    let started = web_time::Instant::now();
    for i in 0..100 {
        db.execute(
            "INSERT INTO todos(id, description) VALUES (?1, 'one more row')",
            [format!("m{i}")],
        )
        .await
        .unwrap();
    }
    let per_write_after = started.elapsed().as_secs_f64() * 1000.0 / 100.0;
    wasm_bindgen_test::console_log!(
        "{label}: {WRITES} single-row write transactions: {per_write:.3} ms each; {BULK} rows in one transaction: {bulk:.1} ms; then 100 single-row writes: {per_write_after:.3} ms each"
    );
}

/// Writes rows (two transactions), closes, reopens `name`: the rows, the client id and
/// the queued uploads are there, completing them empties the queue, and a later write
/// continues the upload ids. Ends with one write queued and the database closed.
pub async fn reopen_keeps_rows_and_the_upload_queue(name: &str) {
    let db = livesync::Database::open(name, schema()).await.unwrap();
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

    let db = livesync::Database::open(name, schema()).await.unwrap();
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
