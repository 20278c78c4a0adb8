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

/// Live values backed by sync streams: `use_live_query_with` and its siblings.
mod streams {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use livesync::Database;
    use livesync::leptos08::{
        LiveResult, provide_database, use_live_query_one_with, use_live_query_with,
        use_live_signal_with,
    };
    use reactive_graph::computed::AsyncDerived;
    use reactive_graph::effect::Effect;
    use reactive_graph::signal::RwSignal;
    use reactive_graph::traits::{Get, GetUntracked, Set, WithUntracked};
    use serde_json::json;

    use super::{TODOS, Todo, ids, in_owner};
    use crate::common::streams::{
        OWNED, is_held, owned, owned_service, refused, stream_status, until_released,
    };
    use crate::common::sync::{fast, schema};
    use crate::common::wait::until;

    /// What a stream-backed value holds: `None` (loading), the ids, or the error.
    type Shown = Option<Result<Vec<String>, String>>;

    fn shown(value: Option<LiveResult<Vec<Todo>>>) -> Shown {
        value.map(|result| result.map(|rows| ids(&rows)).map_err(|e| e.to_string()))
    }

    fn ok(ids: &[&str]) -> Shown {
        Some(Ok(ids.iter().map(|id| (*id).to_owned()).collect()))
    }

    /// What a resource holds now, read without Suspense warnings.
    fn peek<O: Clone + Send + Sync + 'static>(
        resource: leptos_server::Resource<LiveResult<O>>,
    ) -> Option<LiveResult<O>> {
        let derived: &AsyncDerived<_> = &resource;
        derived.with_untracked(Clone::clone)
    }

    /// Every value (`None` included) an effect reading `value` saw, in order.
    fn record_all<V: 'static>(value: impl Fn() -> V + 'static) -> Rc<RefCell<Vec<V>>> {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = Rc::clone(&seen);
        Effect::new(move || log.borrow_mut().push(value()));
        seen
    }

    #[tokio::test]
    async fn a_stream_backed_value_keeps_loading_until_its_stream_has_synced() {
        let service = owned_service().await;
        let db = Database::in_memory(schema()).await.unwrap();
        in_owner(|_| async move {
            provide_database(db.clone());
            let (q1, q2, q3) = (db.clone(), db.clone(), db.clone());
            let todos =
                use_live_query_with(move || q1.query::<Todo>(OWNED).bind("x"), || owned("x"));
            let count = use_live_query_one_with(
                move || q2.query::<i64>("SELECT count(*) FROM todos WHERE owner_id = 'x'"),
                || owned("x"),
            );
            let signal =
                use_live_signal_with(move || q3.query::<Todo>(OWNED).bind("x"), || owned("x"));
            let seen = record_all(move || shown(todos.get()));
            let seen_signal = record_all(move || shown(signal.get()));
            let counts = record_all(move || count.get().map(|c| c.ok().flatten()));

            // Offline: the stream cannot sync, and the empty local table must not show
            // as "no todos".
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(shown(peek(todos)), None, "still loading");
            assert_eq!(shown(signal.get_untracked()), None);
            assert!(peek(count).is_none());
            let status = stream_status(&db, "x").expect("subscribed");
            assert!(status.has_explicit_subscription && !status.has_synced());

            db.connect(service.connector("u1"), fast()).await.unwrap();
            let rows = crate::common::wait::in_time("the synced rows", todos)
                .await
                .unwrap();
            assert_eq!(ids(&rows), ["x1"], "the load ends with the synced rows");
            until("the signal's rows", || {
                shown(signal.get_untracked()) == ok(&["x1"])
            })
            .await;
            until("the count", || matches!(peek(count), Some(Ok(Some(1))))).await;
            for (name, seen) in [("resource", &seen), ("signal", &seen_signal)] {
                assert!(
                    seen.borrow()
                        .iter()
                        .all(|v| v.is_none() || *v == ok(&["x1"])),
                    "the {name} showed something before the synced rows: {:?}",
                    seen.borrow()
                );
            }
            assert!(
                counts
                    .borrow()
                    .iter()
                    .all(|c| c.is_none() || *c == Some(Some(1))),
                "the count showed 0 before the sync: {:?}",
                counts.borrow()
            );

            // A later sync of the stream updates the rows without loading again.
            let before = seen.borrow().len();
            service.upsert_row(
                "todos",
                "x2",
                json!({"description": "more of x", "owner_id": "x"}),
            );
            service.commit();
            until("the second row", || shown(peek(todos)) == ok(&["x1", "x2"])).await;
            until("the signal's second row", || {
                shown(signal.get_untracked()) == ok(&["x1", "x2"])
            })
            .await;
            assert!(
                seen.borrow()[before..].iter().all(Option::is_some),
                "a later sync unresolved the resource: {:?}",
                seen.borrow()
            );
            db.close().await;
        })
        .await;
    }

    #[tokio::test]
    async fn cleaning_up_the_owner_releases_the_stream_subscription() {
        let service = owned_service().await;
        let db = Database::in_memory(schema()).await.unwrap();
        db.connect(service.connector("u1"), fast()).await.unwrap();
        in_owner(|owner| async move {
            provide_database(db.clone());
            let child = owner.child();
            let (q1, q2) = (db.clone(), db.clone());
            let (resource, signal) = child.with(|| {
                (
                    use_live_query_with(move || q1.query::<Todo>(OWNED).bind("x"), || owned("x")),
                    use_live_signal_with(move || q2.query::<Todo>(OWNED).bind("x"), || owned("x")),
                )
            });
            until("both synced", || {
                shown(peek(resource)) == ok(&["x1"]) && shown(signal.get_untracked()) == ok(&["x1"])
            })
            .await;
            db.disconnect().await;
            let watching = db.active_watchers();
            let mut probes = Vec::new();
            assert!(
                is_held(&db, "x", &mut probes).await,
                "held while the owner lives"
            );

            child.cleanup(); // the component unmounts
            let expiry = stream_status(&db, "x").unwrap().expires_at.unwrap();
            until_released(&db, "x", expiry).await;
            assert!(
                !is_held(&db, "x", &mut probes).await,
                "no handle left after cleanup"
            );
            until("the live queries were released too", || {
                db.active_watchers() == watching - 2
            })
            .await;
            db.close().await;
        })
        .await;
    }

    #[tokio::test]
    async fn a_stream_the_service_refuses_makes_the_value_an_error() {
        let service = owned_service().await;
        let db = Database::in_memory(schema()).await.unwrap();
        db.connect(service.connector("u1"), fast()).await.unwrap();
        in_owner(|_| async move {
            provide_database(db.clone());
            let (q1, q2) = (db.clone(), db.clone());
            // `who` instead of `owner`: the service cannot resolve this subscription.
            let todos = use_live_query_with(move || q1.query::<Todo>(TODOS), refused);
            let signal = use_live_signal_with(move || q2.query::<Todo>(TODOS), refused);
            let seen = record_all(move || shown(todos.get()));
            let loaded = crate::common::wait::in_time("the load ends", todos).await;
            let Err(error) = loaded else {
                panic!("the load ended with rows: {loaded:?}")
            };
            let message = error.to_string();
            assert!(
                message.contains("owned") && message.contains("\"owner\" is missing"),
                "names the stream and the problem: {message}"
            );
            until("the signal's error", || {
                matches!(signal.get_untracked(), Some(Err(_)))
            })
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                matches!(shown(peek(todos)), Some(Err(_))),
                "it stays an error"
            );
            assert!(
                !seen.borrow().iter().any(|v| matches!(v, Some(Ok(_)))),
                "never rows: {:?}",
                seen.borrow()
            );
            db.close().await;
        })
        .await;
    }

    #[tokio::test]
    async fn without_a_provided_database_a_stream_backed_value_says_so() {
        let db = Database::in_memory(schema()).await.unwrap();
        in_owner(|_| async move {
            let (q1, q2) = (db.clone(), db.clone());
            let todos = use_live_query_with(move || q1.query::<Todo>(OWNED).bind("x"), || owned("x"));
            let signal =
                use_live_signal_with(move || q2.query::<Todo>(OWNED).bind("x"), || owned("x"));
            let loaded = crate::common::wait::in_time("the load ends", todos).await;
            let message = loaded.expect_err("no database to subscribe with").to_string();
            assert!(message.contains("provide_database"), "{message}");
            until("the signal's error", || {
                matches!(&signal.get_untracked(), Some(Err(e)) if e.to_string().contains("provide_database"))
            })
            .await;
            db.close().await;
        })
        .await;
    }

    /// The server does not wait for streams it would never see sync: the resource
    /// resolves at once with the server's rows, and nothing is subscribed.
    #[tokio::test]
    async fn on_the_server_a_stream_backed_resource_resolves_at_once() {
        let db = Database::in_memory(schema()).await.unwrap();
        db.execute(
            "INSERT INTO todos(id, description, owner_id) VALUES ('x1', 'served', 'x')",
            (),
        )
        .await
        .unwrap();
        let _ = any_spawner::Executor::init_tokio();
        tokio::task::LocalSet::new()
            .run_until(async move {
                let server = std::sync::Arc::new(hydration_context::SsrSharedContext::new());
                let owner = reactive_graph::owner::Owner::new_root(Some(server));
                owner.set();
                provide_database(db.clone());
                let query = db.clone();
                let todos = use_live_query_with(
                    move || query.query::<Todo>(OWNED).bind("x"),
                    || owned("x"),
                );
                let rows = crate::common::wait::in_time("the snapshot", todos)
                    .await
                    .unwrap();
                assert_eq!(ids(&rows), ["x1"]);
                assert!(
                    stream_status(&db, "x").is_none(),
                    "the server subscribed nothing"
                );
                owner.cleanup();
            })
            .await;
    }

    #[tokio::test]
    async fn changing_the_stream_parameters_moves_the_subscription() {
        let service = owned_service().await;
        let db = Database::in_memory(schema()).await.unwrap();
        db.connect(service.connector("u1"), fast()).await.unwrap();
        in_owner(|_| async move {
            provide_database(db.clone());
            let owner = RwSignal::new("x".to_owned());
            let (q1, q2) = (db.clone(), db.clone());
            let todos = use_live_query_with(
                move || q1.query::<Todo>(OWNED).bind(owner.get()),
                move || owned(&owner.get()),
            );
            let signal = use_live_signal_with(
                move || q2.query::<Todo>(OWNED).bind(owner.get()),
                move || owned(&owner.get()),
            );
            let seen = record_all(move || shown(todos.get()));
            let seen_signal = record_all(move || shown(signal.get()));
            until("x's rows", || {
                shown(peek(todos)) == ok(&["x1"]) && shown(signal.get_untracked()) == ok(&["x1"])
            })
            .await;
            let x_expiry = stream_status(&db, "x").unwrap().expires_at.unwrap();

            // Offline, so y cannot sync: both keep x's rows meanwhile (as `<Transition>`
            // shows them), never y's empty local result.
            db.disconnect().await;
            owner.set("y".to_owned());
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(shown(peek(todos)), ok(&["x1"]));
            assert_eq!(shown(signal.get_untracked()), ok(&["x1"]));
            until_released(&db, "x", x_expiry).await;
            let y = stream_status(&db, "y").expect("y subscribed after the re-key");
            assert!(y.has_explicit_subscription && !y.has_synced());
            let mut probes = Vec::new();
            assert!(!is_held(&db, "x", &mut probes).await, "x released");
            assert!(is_held(&db, "y", &mut probes).await, "y held");
            drop(probes);

            db.connect(service.connector("u1"), fast()).await.unwrap();
            until("y's rows", || {
                shown(peek(todos)) == ok(&["y1"]) && shown(signal.get_untracked()) == ok(&["y1"])
            })
            .await;
            for (name, seen) in [("resource", &seen), ("signal", &seen_signal)] {
                assert!(
                    !seen.borrow().contains(&ok(&[])),
                    "the {name} showed an empty list: {:?}",
                    seen.borrow()
                );
            }
            db.close().await;
        })
        .await;
    }
}
