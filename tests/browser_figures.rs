//! Figures for the README's browser section, printed, never asserted: the cost of one
//! single-row write transaction in the browser, in memory and on OPFS, and of one
//! transaction of 10,000 rows. Runs in a dedicated worker (OPFS needs one).
//!
//! Measure a release build (debug builds of SQLite are several times slower):
//! `scripts/test-browser --release --test browser_figures -- --nocapture` (the script
//! runs the three functional test files; extra arguments go to `cargo test`).
#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::schema;
use livesync::Database;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};
use web_time::Instant;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

const WRITES: usize = 1_000;
const BULK: usize = 10_000;

async fn measure(label: &str, db: &Database) {
    let started = Instant::now();
    for i in 0..WRITES {
        db.execute(
            "INSERT INTO todos(id, description) VALUES (?1, 'one row')",
            [format!("w{i}")],
        )
        .await
        .unwrap();
    }
    let per_write = started.elapsed().as_secs_f64() * 1000.0 / WRITES as f64;
    let started = Instant::now();
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
    console_log!(
        "{label}: {WRITES} single-row write transactions: {per_write:.3} ms each; {BULK} rows in one transaction: {bulk:.1} ms"
    );
}

#[wasm_bindgen_test]
async fn write_costs_in_memory_and_on_opfs() {
    // One unreported round first: the browser compiles the module with its baseline
    // compiler and tiers up hot code only after a while.
    let db = Database::in_memory(schema()).await.unwrap();
    measure("warm-up, memory (worker)", &db).await;
    db.close().await;
    let db = Database::in_memory(schema()).await.unwrap();
    measure("memory (worker)", &db).await;
    db.close().await;
    let db = Database::open("figures.db", schema()).await.unwrap();
    measure("OPFS sync-access-handle pool (worker)", &db).await;
    db.close().await;
}
