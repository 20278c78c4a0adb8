//! The Dioxus hooks in a headless `VirtualDom`, rendered to HTML with `dioxus-ssr`:
//! loading → data → live updates synced from another client, no re-render for unrelated
//! tables, bursts, unmount, re-keying, Suspense (client and server style), sync status
//! and sync streams, and live queries backed by sync streams (loading until synced,
//! released on unmount, service errors, re-keyed parameters, server renders).
#![cfg(all(feature = "dioxus", feature = "testing"))]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use dioxus::prelude::*;
use livesync::dioxus::{
    LiveQueryOptions, LiveState, provide_database, use_database, use_live_query,
    use_live_query_one, use_live_query_with, use_sync_status, use_sync_stream,
};
use livesync::testing::{BucketRule, TestStream, TestSyncService};
use livesync::{Column, Database, Schema, SyncStreamSubscription, Table};
use serde_json::json;

mod common;

use common::sync::{connected, fast, synced};
use common::wait::{WAIT, in_time, until};

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
    in_time("the component to become dirty", dom.wait_for_work()).await;
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

/// Two clients of `service`, both signed in as `u1` and synced once.
async fn synced_pair(service: &TestSyncService) -> (Database, Database) {
    let a = connected(schema(), service, "u1").await;
    let b = connected(schema(), service, "u1").await;
    for db in [&a, &b] {
        synced(db).await;
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
    in_time("suspense resolves", dom.wait_for_suspense()).await;
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
    let service = list_stream_service().await;
    let db = connected(schema(), &service, "u1").await;
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
    until("the TTL restarted", || {
        db.status()
            .for_stream("list_todos", json!({"list_id": "l1"}))
            .and_then(|s| s.expires_at)
            .is_some_and(|e| e > expires_while_mounted)
    })
    .await;
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

// ---- Live queries backed by sync streams -------------------------------------------

/// The `list_todos` stream (a list's todos, by `list_id`), with one todo in l1 and one
/// in l2 on the service.
async fn list_stream_service() -> TestSyncService {
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
        json!({"description": "bread", "list_id": "l2"}),
    );
    service.commit();
    service
}

fn list_params(list: &str) -> serde_json::Value {
    json!({"list_id": list})
}

fn stream_status(db: &Database, list: &str) -> Option<livesync::SyncStreamStatus> {
    db.status()
        .for_stream("list_todos", list_params(list))
        .cloned()
}

/// A list's todos, from the `list_todos` stream of that list (query and stream re-keyed
/// by the `list` signal).
#[component]
fn GatedTodos(list: Signal<String>) -> Element {
    let db = use_database();
    let todos = use_live_query_with(
        move || {
            db.query::<Todo>("SELECT id, description FROM todos WHERE list_id = ? ORDER BY id")
                .bind(list())
        },
        move || LiveQueryOptions::new().stream("list_todos", json!({"list_id": list()})),
    );
    let note = if todos.is_syncing() {
        "syncing"
    } else {
        "synced"
    };
    match todos.value() {
        LiveState::Loading => rsx! { p { "loading" } },
        LiveState::Error(error) => rsx! { p { "error: {error}" } },
        LiveState::Ready(rows) => rsx! {
            p { "{note}" }
            ul { for todo in rows.iter() { li { key: "{todo.id}", "{todo.description}" } } }
        },
    }
}

fn gated_app() -> Element {
    let list = use_signal(|| "l1".to_owned());
    let show = use_signal(|| true);
    use_context::<Handle<String>>().0.set(Some(list));
    use_context::<Handle<bool>>().0.set(Some(show));
    rsx! {
        if show() { GatedTodos { list } } else { p { "closed" } }
    }
}

struct GatedDom {
    dom: VirtualDom,
    list: Handle<String>,
    show: Handle<bool>,
    /// Every HTML the dom rendered, in order.
    seen: Vec<String>,
}

impl GatedDom {
    fn mount(app: fn() -> Element, db: &Database) -> Self {
        let (list, show) = (Handle::<String>::default(), Handle::<bool>::default());
        let (dom, _) = dom_with(app, db);
        let mut dom = dom
            .with_root_context(list.clone())
            .with_root_context(show.clone());
        dom.rebuild_in_place();
        let seen = vec![dioxus_ssr::render(&dom)];
        Self {
            dom,
            list,
            show,
            seen,
        }
    }

    fn html(&self) -> String {
        dioxus_ssr::render(&self.dom)
    }

    /// Drives the dom until it renders `expected` (bounded), recording every render.
    async fn until(&mut self, expected: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.html() != expected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never rendered {expected:?}; renders so far: {:?}",
                self.seen
            );
            if tokio::time::timeout(Duration::from_millis(50), self.dom.wait_for_work())
                .await
                .is_ok()
            {
                self.dom
                    .render_immediate(&mut dioxus::dioxus_core::NoOpMutations);
                self.seen.push(self.html());
            }
        }
    }

    /// Lets the dom run for `period`, recording every render.
    async fn run_for(&mut self, period: Duration) {
        let deadline = tokio::time::Instant::now() + period;
        while let Ok(Ok(())) = tokio::time::timeout_at(deadline, self.dom.wait_for_work())
            .await
            .map(Ok::<_, ()>)
        {
            self.dom
                .render_immediate(&mut dioxus::dioxus_core::NoOpMutations);
            self.seen.push(self.html());
        }
    }

    fn set_list(&mut self, list: &str) {
        let signal = self.list.get();
        let list = list.to_owned();
        self.dom.in_runtime(|| {
            let mut signal = signal;
            signal.set(list);
        });
    }

    fn hide(&mut self) {
        let signal = self.show.get();
        self.dom.in_runtime(|| {
            let mut signal = signal;
            signal.set(false);
        });
    }

    fn assert_never_rendered(&self, html: &str) {
        assert!(
            !self.seen.iter().any(|seen| seen.contains(html)),
            "rendered {html:?}: {:?}",
            self.seen
        );
    }
}

/// Waits until the `list_todos` subscription of `list` expires later than `before`: its
/// last handle was dropped and its TTL restarted.
async fn until_released(db: &Database, list: &str, before: std::time::SystemTime) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while stream_status(db, list)
        .and_then(|s| s.expires_at)
        .is_none_or(|expires| expires <= before)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription of {list} was never released"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_stream_backed_query_shows_loading_until_its_stream_has_synced_then_the_rows() {
    let service = list_stream_service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    let mut dom = GatedDom::mount(gated_app, &db);
    assert_eq!(dom.html(), "<p>loading</p>");

    // Not connected yet: the stream cannot sync, so the query keeps loading (the local
    // table is empty, and an empty list would claim the list has no todos).
    dom.run_for(Duration::from_millis(300)).await;
    assert_eq!(dom.html(), "<p>loading</p>");
    let status = stream_status(&db, "l1").expect("subscribed while mounted");
    assert!(status.has_explicit_subscription && !status.has_synced());

    db.connect(service.connector("u1"), fast()).await.unwrap();
    dom.until("<p>synced</p><ul><li>milk</li></ul>").await;
    dom.assert_never_rendered("<ul></ul>");
    dom.assert_never_rendered("syncing");

    // Once synced, later syncs of the stream update the rows without loading again.
    service.upsert_row(
        "todos",
        "t3",
        json!({"description": "eggs", "list_id": "l1"}),
    );
    service.commit();
    let first_sync = dom.seen.len();
    dom.until("<p>synced</p><ul><li>milk</li><li>eggs</li></ul>")
        .await;
    assert!(
        !dom.seen[first_sync..]
            .iter()
            .any(|html| html.contains("loading")),
        "a later sync brought loading back: {:?}",
        dom.seen
    );
    drop(dom);
    db.close().await;
}

/// Whether a handle holds the `list_todos` subscription of `list`. Refreshing the
/// subscriptions (here: by subscribing to another stream) renews the expiry of held
/// subscriptions only. Offline only: then the status shows the refresh at once.
async fn is_held(db: &Database, list: &str, probes: &mut Vec<SyncStreamSubscription>) -> bool {
    let before = stream_status(db, list).and_then(|s| s.expires_at);
    tokio::time::sleep(Duration::from_millis(20)).await;
    probes.push(db.sync_stream("probe", None).subscribe().await.unwrap());
    let after = stream_status(db, list).and_then(|s| s.expires_at);
    after > before
}

#[tokio::test]
async fn unmounting_a_stream_backed_query_releases_its_stream_subscription() {
    let service = list_stream_service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(service.connector("u1"), fast()).await.unwrap();
    let mut dom = GatedDom::mount(gated_app, &db);
    dom.until("<p>synced</p><ul><li>milk</li></ul>").await;
    db.disconnect().await;
    let mounted = db.active_watchers();
    let held = stream_status(&db, "l1").unwrap();
    assert!(held.has_explicit_subscription);
    let mut probes = Vec::new();
    assert!(is_held(&db, "l1", &mut probes).await, "held while mounted");

    dom.hide();
    dom.until("<p>closed</p>").await;
    let expires_while_mounted = stream_status(&db, "l1").unwrap().expires_at.unwrap();
    until_released(&db, "l1", expires_while_mounted).await;
    assert!(
        !is_held(&db, "l1", &mut probes).await,
        "no handle left after unmount"
    );
    assert_eq!(
        db.active_watchers(),
        mounted - 1,
        "the live query was released too"
    );
    drop(dom);
    db.close().await;
}

#[component]
fn RefusedTodos() -> Element {
    let db = use_database();
    // `list` instead of `list_id`: the service cannot resolve this subscription.
    let todos = use_live_query_with(
        move || db.query::<Todo>("SELECT id, description FROM todos ORDER BY id"),
        || LiveQueryOptions::new().stream("list_todos", json!({"list": "l1"})),
    );
    match todos.value() {
        LiveState::Loading => rsx! { p { "loading" } },
        LiveState::Error(error) => rsx! { p { "error: {error}" } },
        LiveState::Ready(rows) => rsx! { p { "{rows.len()} rows" } },
    }
}

fn refused_app() -> Element {
    rsx! { RefusedTodos {} }
}

#[tokio::test]
async fn a_stream_the_service_refuses_shows_its_error_instead_of_loading_or_rows() {
    let service = list_stream_service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(service.connector("u1"), fast()).await.unwrap();
    let mut dom = GatedDom::mount(refused_app, &db);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !dom.html().starts_with("<p>error:") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no error shown: {:?}",
            dom.seen
        );
        dom.run_for(Duration::from_millis(50)).await;
    }
    let html = dom.html();
    assert!(
        html.contains("list_todos") && html.contains("list_id") && html.contains("is missing"),
        "the service's message names the stream and the problem: {html}"
    );
    // It stays an error (the refusal lasts), never falling back to an empty result.
    dom.run_for(Duration::from_millis(300)).await;
    assert!(dom.html().starts_with("<p>error:"));
    dom.assert_never_rendered("rows");
    drop(dom);
    db.close().await;
}

#[tokio::test]
async fn changing_the_stream_parameters_moves_the_subscription_and_waits_for_the_new_stream() {
    let service = list_stream_service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(service.connector("u1"), fast()).await.unwrap();
    let mut dom = GatedDom::mount(gated_app, &db);
    dom.until("<p>synced</p><ul><li>milk</li></ul>").await;
    let l1_expiry = stream_status(&db, "l1").unwrap().expires_at.unwrap();
    assert!(stream_status(&db, "l2").is_none(), "l2 not subscribed yet");

    // Offline, so list l2 cannot sync: the screen keeps l1's rows, marked as syncing,
    // and never shows l2's (empty, unsynced) local result.
    db.disconnect().await;
    let before_rekey = dom.seen.len();
    dom.set_list("l2");
    dom.until("<p>syncing</p><ul><li>milk</li></ul>").await;
    dom.run_for(Duration::from_millis(300)).await;
    assert_eq!(dom.html(), "<p>syncing</p><ul><li>milk</li></ul>");
    until_released(&db, "l1", l1_expiry).await;
    let l2 = stream_status(&db, "l2").expect("l2 subscribed after the re-key");
    assert!(l2.has_explicit_subscription && !l2.has_synced());
    let mut probes = Vec::new();
    assert!(!is_held(&db, "l1", &mut probes).await, "l1 released");
    assert!(is_held(&db, "l2", &mut probes).await, "l2 held");
    drop(probes);

    db.connect(service.connector("u1"), fast()).await.unwrap();
    dom.until("<p>synced</p><ul><li>bread</li></ul>").await;
    let after: Vec<&String> = dom.seen[before_rekey..].iter().collect();
    assert!(
        !after
            .iter()
            .any(|html| html.contains("<ul></ul>") || html.contains("loading")),
        "the re-key showed an empty or loading list: {after:?}"
    );
    drop(dom);
    db.close().await;
}

#[component]
fn SuspendedGatedTodos() -> Element {
    let db = use_database();
    let todos = use_live_query_with(
        move || {
            db.query::<Todo>("SELECT id, description FROM todos WHERE list_id = 'l1' ORDER BY id")
        },
        || LiveQueryOptions::new().stream("list_todos", json!({"list_id": "l1"})),
    );
    let rows = todos.suspend()?;
    let note = if todos.is_syncing() {
        "incomplete"
    } else {
        "complete"
    };
    rsx! {
        p { "{note}" }
        ul { for todo in rows.iter() { li { key: "{todo.id}", "{todo.description}" } } }
    }
}

fn gated_suspense_app() -> Element {
    rsx! {
        SuspenseBoundary { fallback: |_| rsx! { p { "fallback" } },
            SuspendedGatedTodos {}
        }
    }
}

/// A server render resolves at once from what the server's database holds (it has no
/// sync connection, so waiting for the stream would never end), subscribes nothing, and
/// says whether the rows are complete.
#[tokio::test]
async fn a_server_render_of_a_stream_backed_query_renders_local_rows_without_waiting() {
    let db = Database::in_memory(schema()).await.unwrap();
    db.execute(
        "INSERT INTO todos(id, description, list_id) VALUES ('t0', 'local', 'l1')",
        (),
    )
    .await
    .unwrap();
    let baseline = db.active_watchers();
    let (mut dom, _) = dom_with(gated_suspense_app, &db);
    dom.rebuild_in_place();
    tokio::time::timeout(WAIT, dom.wait_for_suspense())
        .await
        .expect("a server render does not wait for a stream that cannot sync");
    assert_eq!(
        dioxus_ssr::render(&dom),
        "<p>incomplete</p><ul><li>local</li></ul>"
    );
    assert!(
        stream_status(&db, "l1").is_none(),
        "a server render subscribes nothing"
    );
    assert_eq!(db.active_watchers(), baseline, "and starts no live task");
    drop(dom);
    db.close().await;

    // A server whose database did sync the stream (in an earlier connection) renders
    // its rows as complete.
    let service = list_stream_service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(service.connector("u1"), fast()).await.unwrap();
    let subscription = db
        .sync_stream("list_todos", list_params("l1"))
        .subscribe()
        .await
        .unwrap();
    tokio::time::timeout(WAIT, subscription.wait_for_first_sync())
        .await
        .unwrap()
        .unwrap();
    db.disconnect().await;
    let (mut dom, _) = dom_with(gated_suspense_app, &db);
    dom.rebuild_in_place();
    tokio::time::timeout(WAIT, dom.wait_for_suspense())
        .await
        .unwrap();
    assert_eq!(
        dioxus_ssr::render(&dom),
        "<p>complete</p><ul><li>milk</li></ul>"
    );
    drop((dom, subscription));
    db.close().await;
}

/// The same component rendered on a client: the Suspense fallback stays up until the
/// stream has synced (no empty list first).
#[tokio::test]
async fn on_the_client_suspense_falls_back_until_the_stream_has_synced() {
    let service = list_stream_service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    let mut dom = GatedDom::mount(gated_suspense_app, &db);
    dom.run_for(Duration::from_millis(300)).await;
    assert_eq!(dom.html(), "<p>fallback</p>");
    db.connect(service.connector("u1"), fast()).await.unwrap();
    dom.until("<p>complete</p><ul><li>milk</li></ul>").await;
    dom.assert_never_rendered("<ul></ul>");
    dom.assert_never_rendered("incomplete");
    drop(dom);
    db.close().await;
}
