//! The Dioxus hooks in a headless `VirtualDom`, rendered to HTML with `dioxus-ssr`:
//! loading → data → live updates synced from another client, no re-render for unrelated
//! tables, bursts, unmount, re-keying, Suspense (client and server style), sync status
//! and sync streams.
#![cfg(all(feature = "dioxus", feature = "testing"))]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use dioxus::prelude::*;
use livesync::dioxus::{
    LiveState, provide_database, use_database, use_live_query, use_live_query_one, use_sync_status,
    use_sync_stream,
};
use livesync::testing::{BucketRule, TestStream, TestSyncService};
use livesync::{Column, Database, Schema, SyncOptions, Table};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn schema() -> Schema {
    Schema::new([
        Table::new(
            "todos",
            [Column::text("description"), Column::text("list_id")],
        ),
        Table::new("notes", [Column::text("body")]),
    ])
}

#[derive(livesync::Row, Clone, PartialEq, Debug)]
struct Todo {
    id: String,
    description: String,
}

/// Counts renders of the component under test (not reactive, so counting changes nothing).
#[derive(Clone, Default)]
struct Renders(Rc<Cell<u32>>);

impl Renders {
    fn bump(&self) {
        self.0.set(self.0.get() + 1);
    }
    fn get(&self) -> u32 {
        self.0.get()
    }
}

/// Hands a signal created inside the dom to the test.
#[derive(Clone, Default)]
struct Handle<T: 'static>(Rc<Cell<Option<Signal<T>>>>);

impl<T> Handle<T> {
    fn get(&self) -> Signal<T> {
        self.0.get().expect("the component ran")
    }
}

fn dom_with(app: fn() -> Element, db: &Database) -> (VirtualDom, Renders) {
    let renders = Renders::default();
    let dom = VirtualDom::new(app)
        .with_root_context(db.clone())
        .with_root_context(renders.clone());
    (dom, renders)
}

/// Lets the dom's tasks run until a scope is dirty, then re-renders it.
async fn drive(dom: &mut VirtualDom) {
    tokio::time::timeout(WAIT, dom.wait_for_work())
        .await
        .expect("the component never became dirty");
    dom.render_immediate(&mut dioxus::dioxus_core::NoOpMutations);
}

/// Drives the dom until its HTML is `expected` (bounded).
async fn drive_until(dom: &mut VirtualDom, expected: &str) {
    for _ in 0..200 {
        if dioxus_ssr::render(dom) == expected {
            return;
        }
        drive(dom).await;
    }
    assert_eq!(dioxus_ssr::render(dom), expected);
}

/// Nothing makes the dom dirty for `quiet`.
async fn stays_clean(dom: &mut VirtualDom, quiet: Duration) -> bool {
    tokio::time::timeout(quiet, dom.wait_for_work())
        .await
        .is_err()
}

#[component]
fn TodoList() -> Element {
    use_context::<Renders>().bump();
    let db = use_database();
    let todos =
        use_live_query(move || db.query::<Todo>("SELECT id, description FROM todos ORDER BY id"));
    match todos.value() {
        LiveState::Loading => rsx! { p { "loading" } },
        LiveState::Error(error) => rsx! { p { "error: {error}" } },
        LiveState::Ready(rows) => rsx! {
            ul { for todo in rows.iter() { li { key: "{todo.id}", "{todo.description}" } } }
        },
    }
}

fn todo_app() -> Element {
    rsx! { TodoList {} }
}

async fn synced_pair(service: &TestSyncService) -> (Database, Database) {
    let options = SyncOptions::default()
        .retry_delay(Duration::from_millis(50))
        .crud_upload_throttle(Duration::from_millis(5));
    let a = Database::in_memory(schema()).await.unwrap();
    let b = Database::in_memory(schema()).await.unwrap();
    for db in [&a, &b] {
        db.connect(service.connector("u1"), options.clone())
            .await
            .unwrap();
        tokio::time::timeout(WAIT, db.wait_for_first_sync())
            .await
            .unwrap()
            .unwrap();
    }
    (a, b)
}

async fn todo_service() -> TestSyncService {
    TestSyncService::builder()
        .rule(BucketRule::global("all", ["todos"]))
        .keepalive_interval(Duration::from_millis(200))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_row_synced_from_another_client_re_renders_once_and_unrelated_tables_do_not() {
    let service = todo_service().await;
    service.upsert_row("todos", "t1", json!({"description": "milk"}));
    service.commit();
    let (a, b) = synced_pair(&service).await;

    let (mut dom, renders) = dom_with(todo_app, &b);
    dom.rebuild_in_place();
    assert_eq!(dioxus_ssr::render(&dom), "<p>loading</p>");
    drive_until(&mut dom, "<ul><li>milk</li></ul>").await;
    // Settle the initial snapshot + first live result.
    while !stays_clean(&mut dom, Duration::from_millis(150)).await {
        dom.render_immediate(&mut dioxus::dioxus_core::NoOpMutations);
    }
    let before = renders.get();

    // Written on A, uploaded, synced down to B.
    a.execute(
        "INSERT INTO todos(id, description) VALUES ('t2', 'bread')",
        (),
    )
    .await
    .unwrap();
    drive_until(&mut dom, "<ul><li>milk</li><li>bread</li></ul>").await;
    assert_eq!(renders.get(), before + 1, "exactly one re-render");

    // A table the query does not read changes: no wake-up at all.
    b.execute("INSERT INTO notes(id, body) VALUES ('n1', 'x')", ())
        .await
        .unwrap();
    assert!(
        stays_clean(&mut dom, Duration::from_millis(300)).await,
        "an unrelated table woke the component"
    );
    assert_eq!(renders.get(), before + 1);
    drop(dom);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_burst_of_writes_re_renders_a_handful_of_times_and_ends_on_the_final_state() {
    let db = Database::in_memory(schema()).await.unwrap();
    let (mut dom, renders) = dom_with(todo_app, &db);
    dom.rebuild_in_place();
    drive_until(&mut dom, "<ul></ul>").await;
    let before = renders.get();
    let writer = db.clone();
    let burst = tokio::spawn(async move {
        for i in 0..1000 {
            writer
                .execute(
                    "INSERT OR REPLACE INTO todos(id, description) VALUES ('t', ?)",
                    (format!("v{i}"),),
                )
                .await
                .unwrap();
        }
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while dioxus_ssr::render(&dom) != "<ul><li>v999</li></ul>" {
        assert!(tokio::time::Instant::now() < deadline, "never reached v999");
        if tokio::time::timeout(Duration::from_millis(100), dom.wait_for_work())
            .await
            .is_ok()
        {
            dom.render_immediate(&mut dioxus::dioxus_core::NoOpMutations);
        }
    }
    burst.await.unwrap();
    let rerenders = renders.get() - before;
    assert!(
        (1..=100).contains(&rerenders),
        "1,000 writes caused {rerenders} re-renders (throttled live query expected)"
    );
    db.close().await;
}

fn toggled_app() -> Element {
    let show = use_signal(|| true);
    use_context::<Handle<bool>>().0.set(Some(show));
    rsx! {
        if show() { TodoList {} } else { p { "hidden" } }
    }
}

#[tokio::test]
async fn unmounting_releases_the_subscription() {
    let db = Database::in_memory(schema()).await.unwrap();
    let baseline = db.active_watchers();
    let handle = Handle::<bool>::default();
    let (dom, _) = dom_with(toggled_app, &db);
    let mut dom = dom.with_root_context(handle.clone());
    dom.rebuild_in_place();
    drive_until(&mut dom, "<ul></ul>").await;
    assert_eq!(db.active_watchers(), baseline + 1, "one live subscription");

    let show = handle.get();
    dom.in_runtime(|| {
        let mut show = show;
        show.set(false);
    });
    drive_until(&mut dom, "<p>hidden</p>").await;
    assert_eq!(
        db.active_watchers(),
        baseline,
        "unmount dropped the task and its subscription"
    );
    db.close().await;
}

#[component]
fn FilteredTodos(list: Signal<String>) -> Element {
    let db = use_database();
    let db_one = db.clone();
    let todos = use_live_query(move || {
        db.query::<Todo>("SELECT id, description FROM todos WHERE list_id = ? ORDER BY id")
            .bind(list())
    });
    let first = use_live_query_one(move || {
        let db = &db_one;
        db.query::<Todo>("SELECT id, description FROM todos WHERE list_id = ? ORDER BY id LIMIT 1")
            .bind(list())
    });
    let rows = todos.rows().unwrap_or_default();
    let first = first.row().map(|t| t.description).unwrap_or_default();
    rsx! {
        p { "{first}" }
        ul { for todo in rows.iter() { li { key: "{todo.id}", "{todo.description}" } } }
    }
}

fn filtered_app() -> Element {
    let list = use_signal(|| "l1".to_owned());
    use_context::<Handle<String>>().0.set(Some(list));
    rsx! { FilteredTodos { list } }
}

#[tokio::test]
async fn changing_a_signal_read_by_the_query_re_keys_it() {
    let db = Database::in_memory(schema()).await.unwrap();
    db.execute_batch(
        "INSERT INTO todos(id, description, list_id) VALUES ('a', 'one', 'l1'), ('b', 'two', 'l2'), ('c', 'three', 'l2')",
    )
    .await
    .unwrap();
    let baseline = db.active_watchers();
    let handle = Handle::<String>::default();
    let (dom, _) = dom_with(filtered_app, &db);
    let mut dom = dom.with_root_context(handle.clone());
    dom.rebuild_in_place();
    drive_until(&mut dom, "<p>one</p><ul><li>one</li></ul>").await;
    assert_eq!(db.active_watchers(), baseline + 2);

    let list = handle.get();
    dom.in_runtime(|| {
        let mut list = list;
        list.set("l2".to_owned());
    });
    drive_until(&mut dom, "<p>two</p><ul><li>two</li><li>three</li></ul>").await;
    // Let the old tasks' drops and the new subscriptions settle.
    let _ = stays_clean(&mut dom, Duration::from_millis(100)).await;
    assert_eq!(
        db.active_watchers(),
        baseline + 2,
        "the old subscriptions were released"
    );
    // Live for the new key.
    db.execute(
        "INSERT INTO todos(id, description, list_id) VALUES ('d', 'four', 'l2')",
        (),
    )
    .await
    .unwrap();
    drive_until(
        &mut dom,
        "<p>two</p><ul><li>two</li><li>three</li><li>four</li></ul>",
    )
    .await;
    db.close().await;
}

/// While a new key loads, the screen keeps the latest rows it had; the one-shot snapshot
/// taken at mount (older than those rows) never comes back.
#[tokio::test]
async fn a_re_key_never_shows_an_older_result_than_the_screen_had() {
    let db = Database::in_memory(schema()).await.unwrap();
    db.execute_batch(
        "INSERT INTO todos(id, description, list_id) VALUES ('a', 'one', 'l1'), ('z', 'last', 'l2')",
    )
    .await
    .unwrap();
    let handle = Handle::<String>::default();
    let (dom, _) = dom_with(filtered_app, &db);
    let mut dom = dom.with_root_context(handle.clone());
    dom.rebuild_in_place();
    drive_until(&mut dom, "<p>one</p><ul><li>one</li></ul>").await;
    db.execute(
        "INSERT INTO todos(id, description, list_id) VALUES ('b', 'two', 'l1')",
        (),
    )
    .await
    .unwrap();
    drive_until(&mut dom, "<p>one</p><ul><li>one</li><li>two</li></ul>").await;

    let list = handle.get();
    dom.in_runtime(|| {
        let mut list = list;
        list.set("l2".to_owned());
    });
    let target = "<p>last</p><ul><li>last</li></ul>";
    let mut seen = Vec::new();
    for _ in 0..200 {
        let html = dioxus_ssr::render(&dom);
        seen.push(html.clone());
        if html == target {
            break;
        }
        drive(&mut dom).await;
    }
    assert_eq!(seen.last().map(String::as_str), Some(target));
    assert!(
        !seen
            .iter()
            .any(|html| html.contains("<ul><li>one</li></ul>")),
        "the mount-time snapshot came back during the re-key: {seen:?}"
    );
    db.close().await;
}

#[component]
fn SuspendedTodos() -> Element {
    let db = use_database();
    let todos =
        use_live_query(move || db.query::<Todo>("SELECT id, description FROM todos ORDER BY id"));
    let rows = todos.suspend()?;
    rsx! { ul { for todo in rows.iter() { li { key: "{todo.id}", "{todo.description}" } } } }
}

fn suspense_app() -> Element {
    rsx! {
        SuspenseBoundary { fallback: |_| rsx! { p { "fallback" } },
            SuspendedTodos {}
        }
    }
}

#[tokio::test]
async fn suspense_shows_the_fallback_then_data_then_live_updates() {
    let db = Database::in_memory(schema()).await.unwrap();
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('t1', 'milk')",
        (),
    )
    .await
    .unwrap();
    let (mut dom, _) = dom_with(suspense_app, &db);
    dom.rebuild_in_place();
    assert!(dioxus_ssr::render(&dom).contains("fallback"));
    drive_until(&mut dom, "<ul><li>milk</li></ul>").await;
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('t2', 'bread')",
        (),
    )
    .await
    .unwrap();
    drive_until(&mut dom, "<ul><li>milk</li><li>bread</li></ul>").await;
    db.close().await;
}

#[tokio::test]
async fn a_server_render_takes_one_snapshot_and_starts_no_live_task() {
    let db = Database::in_memory(schema()).await.unwrap();
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('t1', 'milk')",
        (),
    )
    .await
    .unwrap();
    let baseline = db.active_watchers();
    let (mut dom, _) = dom_with(suspense_app, &db);
    dom.rebuild_in_place();
    tokio::time::timeout(WAIT, dom.wait_for_suspense())
        .await
        .expect("suspense resolves");
    assert_eq!(dioxus_ssr::render(&dom), "<ul><li>milk</li></ul>");
    assert_eq!(
        db.active_watchers(),
        baseline,
        "no live subscription during a server render"
    );
    db.close().await;
}

#[component]
fn StreamedList(list_id: String) -> Element {
    let db = use_database();
    let stream = use_sync_stream("list_todos", Some(json!({"list_id": list_id.clone()})));
    let status = use_sync_status();
    let todos = use_live_query(move || {
        db.query::<Todo>("SELECT id, description FROM todos WHERE list_id = ? ORDER BY id")
            .bind(list_id.clone())
    });
    let connected = if status.read().connected {
        "online"
    } else {
        "offline"
    };
    let synced = if stream.has_synced() {
        "synced"
    } else {
        "syncing"
    };
    let rows = todos.rows().unwrap_or_default();
    rsx! {
        p { "{connected} {synced}" }
        ul { for todo in rows.iter() { li { key: "{todo.id}", "{todo.description}" } } }
    }
}

fn streamed_app() -> Element {
    let show = use_signal(|| true);
    use_context::<Handle<bool>>().0.set(Some(show));
    rsx! {
        if show() { StreamedList { list_id: "l1" } } else { p { "closed" } }
    }
}

#[tokio::test]
async fn a_mounted_component_keeps_its_sync_stream_subscribed() {
    let service = TestSyncService::builder()
        .stream(TestStream::per_parameter(
            "list_todos",
            "todos",
            "list_id",
            "list_id",
        ))
        .keepalive_interval(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    service.upsert_row(
        "todos",
        "t1",
        json!({"description": "milk", "list_id": "l1"}),
    );
    service.upsert_row(
        "todos",
        "t2",
        json!({"description": "other list", "list_id": "l2"}),
    );
    service.commit();
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(
        service.connector("u1"),
        SyncOptions::default().retry_delay(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    let handle = Handle::<bool>::default();
    let (dom, _) = dom_with(streamed_app, &db);
    let mut dom = dom.with_root_context(handle.clone());
    dom.rebuild_in_place();
    drive_until(&mut dom, "<p>online synced</p><ul><li>milk</li></ul>").await;
    let status = db
        .status()
        .for_stream("list_todos", json!({"list_id": "l1"}))
        .cloned()
        .unwrap();
    assert!(status.has_explicit_subscription);
    let expires_while_mounted = status.expires_at.unwrap();

    // Unmounting releases the subscription: its TTL starts now (the expiry moves).
    let show = handle.get();
    dom.in_runtime(|| {
        let mut show = show;
        show.set(false);
    });
    drive_until(&mut dom, "<p>closed</p>").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let expires = db
            .status()
            .for_stream("list_todos", json!({"list_id": "l1"}))
            .and_then(|s| s.expires_at);
        if expires.is_some_and(|e| e > expires_while_mounted) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the TTL never restarted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    db.close().await;
}

#[component]
fn Root(db: Database) -> Element {
    provide_database(db);
    rsx! { CountChild {} }
}

#[component]
fn CountChild() -> Element {
    let db = use_database();
    let count = use_live_query(move || db.query::<i64>("SELECT count(*) FROM todos"));
    let n = count.rows().and_then(|r| r.first().copied()).unwrap_or(-1);
    rsx! { p { "{n}" } }
}

#[tokio::test]
async fn provide_database_makes_the_store_available_to_children() {
    let db = Database::in_memory(schema()).await.unwrap();
    let mut dom = VirtualDom::new_with_props(Root, RootProps { db: db.clone() });
    dom.rebuild_in_place();
    drive_until(&mut dom, "<p>0</p>").await;
    db.execute("INSERT INTO todos(id, description) VALUES ('t1', 'x')", ())
        .await
        .unwrap();
    drive_until(&mut dom, "<p>1</p>").await;
    db.close().await;
}

#[test]
fn live_states_compare_by_rows() {
    let rows: std::sync::Arc<[i64]> = vec![1, 2].into();
    assert_eq!(LiveState::Ready(rows.clone()), LiveState::Ready(rows));
    assert_eq!(
        LiveState::Ready(vec![1].into()),
        LiveState::<i64>::Ready(vec![1].into())
    );
    assert_ne!(LiveState::Ready(vec![1].into()), LiveState::<i64>::Loading);
}
