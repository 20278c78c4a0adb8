//! The Leptos integration in the browser (CSR: leptos_reactive on wasm, effects running,
//! live feeds on leptos_reactive's `spawn_local`, no spawner provided): a live query
//! resource updates when synced rows arrive over `fetch` and when the page writes.
//!
//! Needs feature `leptos`; run by `scripts/test-browser` with the test service.
#![cfg(all(target_arch = "wasm32", feature = "leptos"))]

mod browser_common;

use std::cell::RefCell;
use std::rc::Rc;

use browser_common::sync::{BrowserConnector, options, schema};
use browser_common::{in_time, next_tick};
use leptos_reactive::{SignalGet, create_effect, create_runtime};
use livesync::Database;
use livesync::leptos::{create_live_query, provide_database, use_database};
use serde::{Deserialize, Serialize};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[derive(livesync::Row, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Todo {
    id: String,
    description: String,
}

/// Waits until `condition` holds, letting the event loop run in between.
async fn until(what: &str, condition: impl Fn() -> bool) {
    in_time(what, async {
        while !condition() {
            next_tick().await;
        }
    })
    .await;
}

#[wasm_bindgen_test]
async fn a_live_resource_follows_synced_rows_and_local_writes() {
    let runtime = create_runtime();
    let db = Database::in_memory(schema()).await.unwrap();
    provide_database(db.clone());

    let todos = create_live_query(|| {
        use_database()
            .expect("provided above")
            .query::<Todo>("SELECT id, description FROM todos ORDER BY id")
    });
    let seen: Rc<RefCell<Vec<Vec<String>>>> = Rc::default();
    let log = Rc::clone(&seen);
    create_effect(move |_| {
        if let Some(Ok(rows)) = todos.get() {
            log.borrow_mut()
                .push(rows.iter().map(|t| t.id.clone()).collect());
        }
    });
    until("the first (empty) result", || !seen.borrow().is_empty()).await;
    assert_eq!(seen.borrow()[0], Vec::<String>::new());

    db.connect(BrowserConnector::new(), options())
        .await
        .unwrap();
    // The service's seeded todos of u1 (the other browser tests share the service and
    // may have uploaded more of u1's).
    until("u1's synced todos in the effect", || {
        seen.borrow()
            .last()
            .is_some_and(|ids| ["t1", "t2"].iter().all(|t| ids.iter().any(|id| id == t)))
    })
    .await;

    db.execute(
        "INSERT INTO todos(id, description, owner_id) VALUES ('t5', 'from the page', 'u1')",
        (),
    )
    .await
    .unwrap();
    until("the local write in the effect", || {
        seen.borrow()
            .last()
            .is_some_and(|ids| ids.contains(&"t5".to_owned()))
    })
    .await;

    db.disconnect().await;
    db.close().await;
    runtime.dispose();
}
