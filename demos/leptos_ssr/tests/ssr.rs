//! livesync's Leptos integration under `ssr`, through the public API: this package
//! builds leptos_reactive with `ssr` (effects never run there), which the library's own
//! tests (`tests/leptos.rs`, the client side) must not see. A reactive runtime per test
//! runs inside a tokio `LocalSet`, as on a server rendering a request.

use std::future::Future;
use std::time::Duration;

use leptos::{
    SignalGet, SignalGetUntracked, SignalWith, SuspenseContext, create_isomorphic_effect,
    create_runtime, provide_context, untrack,
};
use livesync::Row;
use livesync::leptos::{create_live_query, create_live_signal, provide_database, use_sync_status};
use livesync::testing::{BucketRule, TestSyncService};
use livesync::{Column, Database, Schema, SyncOptions, Table};
use serde::{Deserialize, Serialize};

/// Upper bound for anything a test waits for (bounded loops, never a hang).
const WAIT: Duration = Duration::from_secs(10);

#[derive(Row, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Todo {
    id: String,
    description: String,
}

const TODOS: &str = "SELECT id, description FROM todos ORDER BY id";

/// A service that sends every `todos(description, owner_id)` row to every user.
async fn service() -> TestSyncService {
    TestSyncService::builder()
        .rule(BucketRule::global("todos", ["todos"]))
        .start()
        .await
        .expect("service starts")
}

/// An in-memory client connected as `user`, synced once.
async fn client(service: &TestSyncService, user: &str) -> Database {
    let schema = Schema::new([Table::new(
        "todos",
        [Column::text("description"), Column::text("owner_id")],
    )]);
    let db = Database::in_memory(schema).await.expect("open database");
    let options = SyncOptions::default()
        .retry_delay(Duration::from_millis(50))
        .crud_upload_throttle(Duration::from_millis(5));
    db.connect(service.connector(user), options)
        .await
        .expect("connect");
    tokio::time::timeout(WAIT, db.wait_for_first_sync())
        .await
        .expect("first sync in time")
        .expect("first sync");
    db
}

/// Polls `check` until it holds (every 5 ms, bounded by `WAIT`); the pauses let tasks
/// on the current `LocalSet` run.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `body` with a fresh reactive runtime on a `LocalSet`, disposing it afterwards.
async fn in_runtime<F: Future<Output = ()>>(body: impl FnOnce() -> F) {
    tokio::task::LocalSet::new()
        .run_until(async move {
            let runtime = create_runtime();
            body().await;
            runtime.dispose();
        })
        .await;
}

/// The ids a live resource holds now, if it holds rows (read without subscribing).
fn current(resource: livesync::leptos::LiveResource<Todo>) -> Option<Vec<String>> {
    untrack(|| resource.get())
        .and_then(Result::ok)
        .map(|rows| rows.into_iter().map(|t| t.id).collect())
}

#[tokio::test]
async fn under_ssr_the_resource_resolves_once_from_a_snapshot() {
    let service = service().await;
    let b = client(&service, "u2").await;
    in_runtime(|| async move {
        let baseline = b.active_watchers();
        let suspense = SuspenseContext::new();
        provide_context(suspense);
        let db = b.clone();
        let todos = create_live_query(move || db.query::<Todo>(TODOS));
        // Server rendering reads resources in isomorphic code (effects never run).
        create_isomorphic_effect(move |_| todos.with(|_| ()));
        let ready = suspense.ready();
        assert!(
            todos.loading().get_untracked(),
            "loading on the request's LocalSet"
        );
        assert!(!ready.get_untracked(), "<Suspense> waits for it");

        until("resolved", || current(todos).is_some()).await;
        assert_eq!(current(todos), Some(vec![]));
        assert!(ready.get_untracked(), "<Suspense> renders its children");
        assert_eq!(
            b.active_watchers(),
            baseline,
            "nothing subscribed on the server"
        );

        b.execute(
            "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'later', 'u2')",
            (),
        )
        .await
        .unwrap();
        assert_eq!(current(todos), Some(vec![]), "a snapshot");
    })
    .await;
}

#[tokio::test]
async fn under_ssr_live_signals_stay_empty_and_the_status_is_a_snapshot() {
    let service = service().await;
    let b = client(&service, "u2").await;
    in_runtime(|| async move {
        let baseline = b.active_watchers();
        provide_database(b.clone());
        let db = b.clone();
        let titles =
            create_live_signal(move || db.query::<String>("SELECT description FROM todos"));
        let status = use_sync_status();
        tokio::task::yield_now().await;
        assert!(
            titles.get_untracked().is_none(),
            "client-only, like a local resource"
        );
        assert!(
            status.get_untracked().has_synced,
            "the status at render time"
        );
        assert_eq!(
            b.active_watchers(),
            baseline,
            "nothing subscribed on the server"
        );
    })
    .await;
}
