//! The Leptos 0.8 integration (`livesync::leptos08`), through the public API: a
//! reactive_graph owner per test inside a tokio `LocalSet`, Leptos' executor
//! (`any_spawner`) on tokio, and reactive_graph's `effects` on (as under `csr` /
//! `hydrate`). The server side (an owner whose hydration context is not a browser) is
//! covered here too; the full SSR + hydrate page is `demos/leptos08_ssr`.
#![cfg(all(feature = "leptos08", feature = "testing"))]

mod common;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use common::sync::{client, service};
use common::wait::until;
use livesync::Row;
use livesync::leptos08::{
    LiveResource, provide_database, use_database, use_live_local_query, use_live_query,
    use_live_query_one, use_live_signal, use_sync_status, use_sync_stream,
};
use reactive_graph::computed::AsyncDerived;
use reactive_graph::effect::Effect;
use reactive_graph::owner::Owner;
use reactive_graph::signal::RwSignal;
use reactive_graph::traits::{Get, GetUntracked, Set, With, WithUntracked};
use serde::{Deserialize, Serialize};

#[derive(Row, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Todo {
    id: String,
    description: String,
}

const TODOS: &str = "SELECT id, description FROM todos ORDER BY id";

fn ids(rows: &[Todo]) -> Vec<String> {
    rows.iter().map(|t| t.id.clone()).collect()
}

/// Runs `body` under a fresh owner on a `LocalSet`, cleaning the owner up afterwards.
async fn in_owner<F: Future<Output = ()>>(body: impl FnOnce(Owner) -> F) {
    // Once per process; later calls report that it is set already.
    let _ = any_spawner::Executor::init_tokio();
    tokio::task::LocalSet::new()
        .run_until(async move {
            let owner = Owner::new();
            owner.set();
            body(owner.clone()).await;
            owner.cleanup();
        })
        .await;
}

/// The ids a live resource holds now, if it holds rows (read without Suspense warnings).
fn current(resource: LiveResource<Vec<Todo>>) -> Option<Vec<String>> {
    let derived: &AsyncDerived<_> = &resource;
    derived.with_untracked(|value| {
        value
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|rows| ids(rows))
    })
}

/// Every value an effect reading `value` saw, in order.
fn record<V: 'static>(value: impl Fn() -> Option<V> + 'static) -> Rc<RefCell<Vec<V>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = Rc::clone(&seen);
    Effect::new(move || {
        if let Some(v) = value() {
            log.borrow_mut().push(v);
        }
    });
    seen
}

fn rows_of(resource: LiveResource<Vec<Todo>>) -> impl Fn() -> Option<Vec<String>> {
    move || resource.get().and_then(Result::ok).map(|rows| ids(&rows))
}

#[tokio::test]
async fn an_effect_reruns_once_when_a_row_written_by_another_client_arrives() {
    let service = service().await;
    let (a, b) = (client(&service, "u1").await, client(&service, "u2").await);
    in_owner(|_| async move {
        let db = b.clone();
        let todos = use_live_query(move || db.query::<Todo>(TODOS));
        let seen = record(rows_of(todos));
        until("the first load", || seen.borrow().len() == 1).await;
        assert_eq!(*seen.borrow(), [Vec::<String>::new()], "first run: no rows");

        a.execute(
            "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'written on A', 'u1')",
            (),
        )
        .await
        .unwrap();
        until("B's effect sees A's row", || seen.borrow().len() >= 2).await;
        // Let any extra run show before checking there was exactly one.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(*seen.borrow(), [vec![], vec!["t1".to_owned()]]);
        let rows = todos.get_untracked().unwrap().unwrap();
        assert_eq!(rows[0].description, "written on A");
    })
    .await;
}

#[tokio::test]
async fn writes_to_unrelated_tables_do_not_rerun_the_effect() {
    let service = service().await;
    let (a, b) = (client(&service, "u1").await, client(&service, "u2").await);
    in_owner(|_| async move {
        let db = b.clone();
        let todos = use_live_query(move || db.query::<Todo>(TODOS));
        let seen = record(rows_of(todos));
        until("the first load", || seen.borrow().len() == 1).await;

        // Unrelated: a synced row in `lists` and a local one.
        a.execute("INSERT INTO lists(id, name) VALUES ('l1', 'groceries')", ())
            .await
            .unwrap();
        b.execute("INSERT INTO lists(id, name) VALUES ('l2', 'chores')", ())
            .await
            .unwrap();
        let db = b.clone();
        let lists = use_live_query_one(move || db.query::<i64>("SELECT count(*) FROM lists"));
        until("B has both lists", || {
            let derived: &AsyncDerived<_> = &lists;
            derived.with_untracked(|v| matches!(v, Some(Ok(Some(2)))))
        })
        .await;
        // Then a related write: the effect's next run must be the one for it.
        b.execute(
            "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'milk', 'u2')",
            (),
        )
        .await
        .unwrap();
        until("the todo shows", || seen.borrow().len() >= 2).await;
        assert_eq!(*seen.borrow(), [vec![], vec!["t1".to_owned()]]);
    })
    .await;
}

#[tokio::test]
async fn a_burst_of_writes_ends_on_the_final_state() {
    let service = service().await;
    let b = client(&service, "u2").await;
    in_owner(|_| async move {
        let db = b.clone();
        let todos = use_live_query(move || db.query::<Todo>(TODOS));
        let seen = record(rows_of(todos));
        until("the first load", || seen.borrow().len() == 1).await;
        let writes = 40;
        for i in 0..writes {
            b.execute(
                "INSERT INTO todos(id, description, owner_id) VALUES (?1, 'burst', 'u2')",
                [format!("t{i:02}")],
            )
            .await
            .unwrap();
        }
        until("the last write shows", || {
            seen.borrow()
                .last()
                .is_some_and(|rows| rows.len() == writes)
        })
        .await;
        let seen = seen.borrow();
        let expected: Vec<String> = (0..writes).map(|i| format!("t{i:02}")).collect();
        assert_eq!(seen.last().unwrap(), &expected, "ends on the final state");
        assert!(
            seen.len() < writes,
            "the throttle coalesced the burst: {} runs for {writes} writes",
            seen.len()
        );
        for rows in seen.iter() {
            assert_eq!(
                rows[..],
                expected[..rows.len()],
                "a state the table really had"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn cleaning_up_the_owner_releases_every_subscription() {
    let service = service().await;
    let b = client(&service, "u2").await;
    in_owner(|owner| async move {
        let baseline = b.active_watchers();
        let child = owner.child();
        let db = b.clone();
        let (resource, local, signal) = child.with(move || {
            let (r, l, s) = (db.clone(), db.clone(), db.clone());
            (
                use_live_query(move || r.query::<Todo>(TODOS)),
                use_live_local_query(move || l.query::<Todo>(TODOS)),
                use_live_signal(move || s.query::<Todo>(TODOS)),
            )
        });
        until("the three values subscribed and filled", || {
            b.active_watchers() == baseline + 3
                && current(resource).is_some()
                && signal.get_untracked().is_some()
                && {
                    let derived: &AsyncDerived<_> = &local;
                    derived.with_untracked(Option::is_some)
                }
        })
        .await;

        child.cleanup(); // the component unmounts
        until("cleanup released the three subscriptions", || {
            b.active_watchers() == baseline
        })
        .await;
        // Later writes find nobody listening and break nothing.
        b.execute(
            "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'late', 'u2')",
            (),
        )
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(b.active_watchers(), baseline);
    })
    .await;
}

#[tokio::test]
async fn changing_a_signal_read_by_the_query_rekeys_the_subscription() {
    let service = service().await;
    let b = client(&service, "u2").await;
    b.execute_batch(
        "INSERT INTO todos(id, description, owner_id) VALUES ('a1', 'x', 'u2');
         INSERT INTO todos(id, description, owner_id) VALUES ('b1', 'y', 'u2');",
    )
    .await
    .unwrap();
    in_owner(|_| async move {
        let baseline = b.active_watchers();
        let prefix = RwSignal::new("a".to_owned());
        let db = b.clone();
        let todos = use_live_query(move || {
            db.query::<Todo>(
                "SELECT id, description FROM todos WHERE substr(id, 1, 1) = ? ORDER BY id",
            )
            .bind(prefix.get())
        });
        // What <Transition> shows: every value the resource held once loaded.
        let seen = record(move || Some(current(todos)));
        until("a1", || current(todos) == Some(vec!["a1".to_owned()])).await;

        prefix.set("b".to_owned());
        until("b1", || current(todos) == Some(vec!["b1".to_owned()])).await;
        until("one subscription, for the new key", || {
            b.active_watchers() == baseline + 1
        })
        .await;
        // Live updates follow the new key, not the old one.
        b.execute_batch(
            "INSERT INTO todos(id, description, owner_id) VALUES ('a2', 'x', 'u2');
             INSERT INTO todos(id, description, owner_id) VALUES ('b2', 'y', 'u2');",
        )
        .await
        .unwrap();
        until("b2 shows", || {
            current(todos) == Some(vec!["b1".to_owned(), "b2".to_owned()])
        })
        .await;
        assert_eq!(b.active_watchers(), baseline + 1);
        let seen = seen.borrow();
        let loaded: Vec<_> = seen.iter().skip_while(|v| v.is_none()).collect();
        assert!(
            loaded.iter().all(|v| v.is_some()),
            "the old rows stay until the new key's rows are there: {seen:?}"
        );
        assert!(
            !loaded
                .iter()
                .any(|v| v.as_deref() == Some(&["a1".to_owned(), "a2".to_owned()][..]))
        );
    })
    .await;
}

#[tokio::test]
async fn suspense_waits_for_the_first_load_only_not_for_live_updates() {
    use reactive_graph::computed::suspense::SuspenseContext;
    use reactive_graph::signal::ArcRwSignal;

    let service = service().await;
    let (a, b) = (client(&service, "u1").await, client(&service, "u2").await);
    in_owner(|_| async move {
        provide_database(b.clone());
        // What <Suspense> does: a SuspenseContext in context; reads under it register
        // a pending task while the resource is loading.
        let tasks = ArcRwSignal::new(slotmap::SlotMap::new());
        reactive_graph::owner::provide_context(SuspenseContext {
            tasks: tasks.clone(),
        });
        let db = use_database().expect("provided above");
        let todos = use_live_query(move || db.query::<Todo>(TODOS));
        let pending = {
            let tasks = tasks.clone();
            record(move || Some(tasks.with(|t| t.len())))
        };
        let seen = record(rows_of(todos));
        assert!(todos.get_untracked().is_none(), "not loaded yet");
        assert_eq!(tasks.with_untracked(|t| t.len()), 1, "the read suspends");
        until("loaded", || seen.borrow().len() == 1).await;
        until("nothing pending", || tasks.with_untracked(|t| t.is_empty())).await;
        let pending_after_load = pending.borrow().len();

        a.execute(
            "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'live', 'u1')",
            (),
        )
        .await
        .unwrap();
        until("the live update arrives", || seen.borrow().len() == 2).await;
        assert_eq!(seen.borrow()[1], ["t1"]);
        assert!(
            pending.borrow()[pending_after_load - 1..]
                .iter()
                .all(|n| *n == 0),
            "a live update never suspends: {:?}",
            pending.borrow()
        );
    })
    .await;
}

#[tokio::test]
async fn a_local_resource_a_live_signal_and_the_sync_status_follow_the_database() {
    let service = service().await;
    let (a, b) = (client(&service, "u1").await, client(&service, "u2").await);
    in_owner(|_| async move {
        provide_database(b.clone());
        let status = use_sync_status();
        assert!(status.get_untracked().connected && status.get_untracked().has_synced);
        let (l, s) = (b.clone(), b.clone());
        let local =
            use_live_local_query(move || l.query::<String>("SELECT description FROM todos"));
        let titles = use_live_signal(move || s.query::<String>("SELECT description FROM todos"));
        a.execute(
            "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'tea', 'u1')",
            (),
        )
        .await
        .unwrap();
        until("the signal and the local resource show A's row", || {
            let derived: &AsyncDerived<_> = &local;
            matches!(titles.get_untracked(), Some(Ok(rows)) if rows == ["tea"])
                && derived.with_untracked(|v| matches!(v, Some(Ok(rows)) if rows == &["tea"]))
        })
        .await;

        let statuses = record(move || Some(status.get().connected));
        until("the status effect ran", || !statuses.borrow().is_empty()).await;
        b.disconnect().await;
        until("the status signal shows the disconnect", || {
            statuses.borrow().last() == Some(&false)
        })
        .await;
        assert_eq!(statuses.borrow().first(), Some(&true));
    })
    .await;
}

#[tokio::test]
async fn without_a_provided_database_the_status_is_the_default() {
    in_owner(|_| async {
        assert_eq!(
            use_sync_status().get_untracked(),
            livesync::SyncStatus::default()
        );
        assert_eq!(use_sync_stream("any", None).get_untracked(), None);
    })
    .await;
}

#[tokio::test]
async fn a_sync_stream_is_subscribed_while_its_owner_lives() {
    use livesync::testing::{TestStream, TestSyncService};
    let service = TestSyncService::builder()
        .stream(TestStream::per_parameter(
            "owned", "todos", "owner_id", "owner",
        ))
        .start()
        .await
        .unwrap();
    service.upsert_row(
        "todos",
        "t9",
        serde_json::json!({"description": "streamed", "owner_id": "x"}),
    );
    service.commit();
    let db = client(&service, "u1").await;
    in_owner(|owner| async move {
        provide_database(db.clone());
        let child = owner.child();
        let stream =
            child.with(|| use_sync_stream("owned", Some(serde_json::json!({"owner": "x"}))));
        until("the stream synced", || {
            stream.get_untracked().is_some_and(|s| s.has_synced())
        })
        .await;
        let todos: Vec<Todo> = db.query(TODOS).fetch_all().await.unwrap();
        assert_eq!(ids(&todos), ["t9"]);
        let held = stream.get_untracked().unwrap();
        assert!(held.has_explicit_subscription);
        let expiry = held.expires_at.unwrap();

        child.cleanup(); // unmount: the subscription is released, its TTL starts
        until("the TTL restarted", || {
            db.status()
                .for_stream("owned", serde_json::json!({"owner": "x"}))
                .and_then(|s| s.expires_at)
                .is_some_and(|e| e > expiry)
        })
        .await;
    })
    .await;
}

/// On the server (an owner whose hydration context is not a browser, as leptos_axum
/// sets up) a live resource resolves once from a snapshot, and nothing subscribes.
#[tokio::test]
async fn on_the_server_a_resource_resolves_once_from_a_snapshot() {
    let service = service().await;
    let b = client(&service, "u2").await;
    b.execute(
        "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'served', 'u2')",
        (),
    )
    .await
    .unwrap();
    let _ = any_spawner::Executor::init_tokio();
    tokio::task::LocalSet::new()
        .run_until(async move {
            let baseline = b.active_watchers();
            let server = Arc::new(hydration_context::SsrSharedContext::new());
            let owner = Owner::new_root(Some(server));
            owner.set();
            let db = b.clone();
            let todos = use_live_query(move || db.query::<Todo>(TODOS));
            let rows = common::wait::in_time("the snapshot", todos).await.unwrap();
            assert_eq!(ids(&rows), ["t1"]);
            b.execute(
                "INSERT INTO todos(id, description, owner_id) VALUES ('t2', 'later', 'u2')",
                (),
            )
            .await
            .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            assert_eq!(
                current(todos),
                Some(vec!["t1".to_owned()]),
                "not live on the server"
            );
            assert_eq!(b.active_watchers(), baseline, "nothing subscribed");
            owner.cleanup();
        })
        .await;
}
