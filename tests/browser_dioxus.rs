//! The Dioxus hooks in the browser (a `VirtualDom` on the page's event loop, no
//! renderer): `use_live_query` follows rows synced over `fetch` and a local write.
//!
//! Needs feature `dioxus`; run by `scripts/test-browser` with the test service.
#![cfg(all(target_arch = "wasm32", feature = "dioxus"))]

mod browser_common;

use std::cell::RefCell;
use std::rc::Rc;

use browser_common::in_time;
use browser_common::sync::{BrowserConnector, options, schema};
use dioxus::dioxus_core::NoOpMutations;
use dioxus::prelude::*;
use livesync::Database;
use livesync::dioxus::{LiveState, use_database, use_live_query};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[derive(livesync::Row, Clone, PartialEq, Debug)]
struct Todo {
    id: String,
    description: String,
}

/// The ids each render of the list saw once the query was ready.
#[derive(Clone, Default)]
struct Seen(Rc<RefCell<Vec<Vec<String>>>>);

impl Seen {
    fn last_is(&self, ids: &[&str]) -> bool {
        self.0.borrow().last().is_some_and(|last| last == ids)
    }

    fn last_has(&self, ids: &[&str]) -> bool {
        self.0
            .borrow()
            .last()
            .is_some_and(|last| ids.iter().all(|id| last.iter().any(|seen| seen == id)))
    }
}

#[component]
fn TodoList() -> Element {
    let seen = use_context::<Seen>();
    let db = use_database();
    let todos =
        use_live_query(move || db.query::<Todo>("SELECT id, description FROM todos ORDER BY id"));
    match todos.value() {
        LiveState::Ready(rows) => {
            seen.0
                .borrow_mut()
                .push(rows.iter().map(|t| t.id.clone()).collect());
            rsx! { ul { for todo in rows.iter() { li { key: "{todo.id}", "{todo.description}" } } } }
        }
        LiveState::Loading => rsx! { p { "loading" } },
        LiveState::Error(error) => rsx! { p { "error: {error}" } },
    }
}

fn app() -> Element {
    rsx! { TodoList {} }
}

/// Runs the dom's tasks and re-renders until `done` holds.
async fn drive_until(dom: &mut VirtualDom, what: &str, done: impl Fn() -> bool) {
    in_time(what, async {
        while !done() {
            dom.wait_for_work().await;
            dom.render_immediate(&mut NoOpMutations);
        }
    })
    .await;
}

#[wasm_bindgen_test]
async fn use_live_query_follows_synced_rows_and_local_writes() {
    let db = Database::in_memory(schema()).await.unwrap();
    let seen = Seen::default();
    let mut dom = VirtualDom::new(app)
        .with_root_context(db.clone())
        .with_root_context(seen.clone());
    dom.rebuild_in_place();
    drive_until(&mut dom, "the first (empty) result", || seen.last_is(&[])).await;

    db.connect(BrowserConnector::new(), options())
        .await
        .unwrap();
    // The service's seeded todos of u1 (the other browser tests share the service and
    // may have uploaded more of u1's).
    drive_until(&mut dom, "u1's synced todos rendered", || {
        seen.last_has(&["t1", "t2"])
    })
    .await;

    db.execute(
        "INSERT INTO todos(id, description, owner_id) VALUES ('t6', 'from the page', 'u1')",
        (),
    )
    .await
    .unwrap();
    drive_until(&mut dom, "the local write rendered", || {
        seen.last_has(&["t6"])
    })
    .await;

    drop(dom);
    db.disconnect().await;
    db.close().await;
}
