//! Figures for the README's browser section, printed, never asserted: write costs of a
//! database on the page's main thread, where `Database::open` keeps an in-memory image
//! saved to OPFS after each commit (`src/store/page_storage_wasm.rs`), beside an
//! in-memory database on the same thread. (The worker's OPFS pool: `browser_figures.rs`.)
//!
//! Measure a release build: `scripts/test-browser --release --test browser_page_figures -- --nocapture`.
#![cfg(target_arch = "wasm32")]

mod browser_common;

use browser_common::{measure_writes, schema};
use livesync::Database;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn write_costs_on_the_page() {
    let db = Database::in_memory(schema()).await.unwrap();
    measure_writes("warm-up, memory (page)", &db).await;
    db.close().await;
    let db = Database::in_memory(schema()).await.unwrap();
    measure_writes("memory (page)", &db).await;
    db.close().await;
    let db = Database::open("page-figures.db", schema()).await.unwrap();
    measure_writes("OPFS saved image (page)", &db).await;
    db.close().await;
}
