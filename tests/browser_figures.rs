//! Figures for the README's browser section, printed, never asserted: the cost of one
//! single-row write transaction in the browser, in memory and on OPFS, and of one
//! transaction of 10,000 rows. Runs in a dedicated worker (the OPFS pool needs one);
//! the page's storage is measured by `browser_page_figures.rs`.
//!
//! Measure a release build (debug builds of SQLite are several times slower):
//! `scripts/test-browser --release --test browser_figures -- --nocapture` (the script
//! runs the three functional test files; extra arguments go to `cargo test`).
#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{measure_writes as measure, schema};
use livesync::Database;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

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
