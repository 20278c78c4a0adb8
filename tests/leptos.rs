//! The Leptos integration, through the public API, with a leptos_reactive runtime per
//! test inside a tokio `LocalSet`, named as the local spawner the live feeds run on.
//!
//! These are the client-side tests: leptos_reactive without `ssr`, so effects run. The
//! server behaviour (under `ssr`) is tested in `demos/leptos_ssr/tests/ssr.rs`, in the
//! package that enables `ssr`. The `streams` module covers live values backed by sync
//! streams (unresolved until synced, released on dispose, service errors, re-keys).
#![cfg(all(feature = "leptos", feature = "testing"))]

mod common;

use std::future::Future;

use common::sync::{client, service};
use common::wait::until;
use leptos_reactive::{Resource, SignalGet, create_runtime, untrack};
use livesync::Row;
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

/// Runs `body` with a fresh reactive runtime on a `LocalSet`, disposing it afterwards.
async fn in_runtime<F: Future<Output = ()>>(body: impl FnOnce() -> F) {
    tokio::task::LocalSet::new()
        .run_until(async move {
            let runtime = create_runtime();
            provide_tokio_spawner();
            body().await;
            runtime.dispose();
        })
        .await;
}

/// Live feeds run as tasks of the current `LocalSet`.
fn provide_tokio_spawner() {
    livesync::leptos::provide_local_spawner(|task| drop(tokio::task::spawn_local(task)));
}

/// A resource's value now, without subscribing anything.
fn peek<S: Clone + 'static, V: Clone + 'static>(resource: Resource<S, V>) -> Option<V> {
    untrack(|| resource.get())
}

/// The ids a live resource holds now, if it holds rows.
fn current(resource: livesync::leptos::LiveResource<Todo>) -> Option<Vec<String>> {
    peek(resource).and_then(Result::ok).map(|rows| ids(&rows))
}

mod client {
    use std::cell::RefCell;
    use std::rc::Rc;

    use leptos_reactive::{
        SignalGetUntracked, SignalSet, SuspenseContext, as_child_of_current_owner, create_effect,
        create_signal, provide_context,
    };
    use livesync::leptos::{
        create_live_query, create_live_query_one, create_live_signal, provide_database,
        use_database, use_sync_status,
    };

    use super::*;

    /// Every value an effect reading `value` saw, in order.
    fn record<V: 'static>(value: impl Fn() -> Option<V> + 'static) -> Rc<RefCell<Vec<V>>> {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = Rc::clone(&seen);
        create_effect(move |_| {
            if let Some(v) = value() {
                log.borrow_mut().push(v);
            }
        });
        seen
    }

    fn rows_of(resource: livesync::leptos::LiveResource<Todo>) -> impl Fn() -> Option<Vec<String>> {
        move || resource.get().and_then(Result::ok).map(|rows| ids(&rows))
    }

    #[tokio::test]
    async fn an_effect_reruns_when_a_row_written_by_another_client_arrives() {
        let service = service().await;
        let (a, b) = (client(&service, "u1").await, client(&service, "u2").await);
        in_runtime(|| async move {
            let db = b.clone();
            let todos = create_live_query(move || db.query::<Todo>(TODOS));
            let seen = record(rows_of(todos));
            assert_eq!(*seen.borrow(), [Vec::<String>::new()], "first run: no rows");

            a.execute(
                "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'written on A', 'u1')",
                (),
            )
            .await
            .unwrap();
            until("B's effect sees A's row", || seen.borrow().len() == 2).await;
            // Exactly one more run: the live query's first result equals the fetched
            // rows and is not set again.
            assert_eq!(*seen.borrow(), [vec![], vec!["t1".to_owned()]]);
            let rows = peek(todos).unwrap().unwrap();
            assert_eq!(rows[0].description, "written on A");
        })
        .await;
    }

    #[tokio::test]
    async fn writes_to_unrelated_tables_do_not_rerun_the_effect() {
        let service = service().await;
        let (a, b) = (client(&service, "u1").await, client(&service, "u2").await);
        in_runtime(|| async move {
            let db = b.clone();
            let todos = create_live_query(move || db.query::<Todo>(TODOS));
            let seen = record(rows_of(todos));

            // Unrelated: a synced row in `lists` and a local one.
            a.execute("INSERT INTO lists(id, name) VALUES ('l1', 'groceries')", ())
                .await
                .unwrap();
            b.execute("INSERT INTO lists(id, name) VALUES ('l2', 'chores')", ())
                .await
                .unwrap();
            let db = b.clone();
            let lists =
                create_live_query_one(move || db.query::<i64>("SELECT count(*) FROM lists"));
            until("B has both lists", || {
                matches!(peek(lists), Some(Ok(Some(2))))
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
        in_runtime(|| async move {
            let db = b.clone();
            let todos = create_live_query(move || db.query::<Todo>(TODOS));
            let seen = record(rows_of(todos));
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
            // Each value is a state the table really had: a prefix of the writes.
            for rows in seen.iter() {
                assert_eq!(rows[..], expected[..rows.len()]);
            }
        })
        .await;
    }

    #[tokio::test]
    async fn disposing_the_owner_releases_the_subscription() {
        let service = service().await;
        let b = client(&service, "u2").await;
        in_runtime(|| async move {
            let baseline = b.active_watchers();
            let db = b.clone();
            let (todos, disposer) = as_child_of_current_owner(move |_: ()| {
                let (for_resource, for_signal) = (db.clone(), db.clone());
                let resource = create_live_query(move || for_resource.query::<Todo>(TODOS));
                let signal = create_live_signal(move || for_signal.query::<Todo>(TODOS));
                (resource, signal)
            })(());
            until("both values subscribed and filled", || {
                b.active_watchers() == baseline + 2 && todos.1.get_untracked().is_some()
            })
            .await;
            assert!(peek(todos.0).is_some());

            drop(disposer); // the component unmounts
            until("on_cleanup released both subscriptions", || {
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
        in_runtime(|| async move {
            let baseline = b.active_watchers();
            let (prefix, set_prefix) = create_signal("a".to_owned());
            let db = b.clone();
            let todos = create_live_query(move || {
                db.query::<Todo>(
                    "SELECT id, description FROM todos WHERE substr(id, 1, 1) = ? ORDER BY id",
                )
                .bind(prefix.get())
            });
            assert_eq!(current(todos), Some(vec!["a1".to_owned()]));

            set_prefix.set("b".to_owned());
            assert_eq!(current(todos), Some(vec!["b1".to_owned()]));
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
        })
        .await;
    }

    #[tokio::test]
    async fn the_resource_works_under_suspense_and_updates_without_suspending_again() {
        let service = service().await;
        let (a, b) = (client(&service, "u1").await, client(&service, "u2").await);
        in_runtime(|| async move {
            provide_database(b.clone());
            // What <Suspense> does: provide a SuspenseContext and read the resource under it.
            let suspense = SuspenseContext::new();
            provide_context(suspense);
            let db = use_database().expect("provided above");
            let todos = create_live_query(move || db.query::<Todo>(TODOS));
            let loading = record({
                let loading = todos.loading();
                move || Some(loading.get())
            });
            let seen = record(rows_of(todos));
            let ready = suspense.ready();
            // Native leptos_reactive (no `csr`/`hydrate`/`ssr`) runs a fetcher inline, so
            // the first rows are there as soon as the resource exists.
            assert!(untrack(|| ready.get()), "ready: the first rows are there");
            assert_eq!(*seen.borrow(), [Vec::<String>::new()]);

            a.execute(
                "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'live', 'u1')",
                (),
            )
            .await
            .unwrap();
            until("the live update arrives", || seen.borrow().len() == 2).await;
            assert_eq!(seen.borrow()[1], ["t1"]);
            // (Resource::set notifies `loading` readers even though it stays false.)
            assert!(
                loading.borrow().iter().all(|loading| !loading),
                "live updates never put the resource back into loading: {:?}",
                loading.borrow()
            );
            assert!(untrack(|| ready.get()), "never pending again");
        })
        .await;
    }

    #[tokio::test]
    async fn a_live_signal_and_the_sync_status_follow_the_database() {
        let service = service().await;
        let (a, b) = (client(&service, "u1").await, client(&service, "u2").await);
        in_runtime(|| async move {
            provide_database(b.clone());
            let status = use_sync_status();
            assert!(status.get_untracked().connected && status.get_untracked().has_synced);
            let db = b.clone();
            let titles =
                create_live_signal(move || db.query::<String>("SELECT description FROM todos"));
            until("the signal has its first result", || {
                titles.get_untracked().is_some()
            })
            .await;
            a.execute(
                "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'tea', 'u1')",
                (),
            )
            .await
            .unwrap();
            until(
                "the signal shows A's row",
                || matches!(titles.get_untracked(), Some(Ok(rows)) if rows == ["tea"]),
            )
            .await;

            let statuses = record(move || Some(status.get().connected));
            b.disconnect().await;
            until("the status signal shows the disconnect", || {
                seen_last(&statuses) == Some(false)
            })
            .await;
            assert_eq!(statuses.borrow().first(), Some(&true));
        })
        .await;
    }

    fn seen_last<V: Clone>(seen: &Rc<RefCell<Vec<V>>>) -> Option<V> {
        seen.borrow().last().cloned()
    }

    #[tokio::test]
    async fn without_a_provided_database_the_status_is_the_default() {
        in_runtime(|| async {
            assert_eq!(
                use_sync_status().get_untracked(),
                livesync::SyncStatus::default()
            );
        })
        .await;
    }

    #[test]
    fn without_a_local_spawner_values_are_snapshots_not_panics() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = runtime.block_on(livesync::Database::in_memory(common::sync::schema()));
        let db = db.unwrap();
        let _guard = runtime.enter(); // a tokio runtime, but no local spawner
        let reactive = create_runtime();
        let query = db.clone();
        let todos = create_live_query(move || query.query::<Todo>(TODOS));
        assert_eq!(current(todos), Some(vec![]), "the snapshot is there");
        assert_eq!(db.active_watchers(), 0, "no feed was started");
        reactive.dispose();
    }

    /// A service with the stream `owned`: the todos whose `owner_id` is the `owner` parameter.
    async fn owned_stream_service() -> livesync::testing::TestSyncService {
        use livesync::testing::{TestStream, TestSyncService};
        TestSyncService::builder()
            .stream(TestStream::per_parameter(
                "owned", "todos", "owner_id", "owner",
            ))
            .start()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_sync_stream_is_subscribed_while_its_owner_lives() {
        let service = owned_stream_service().await;
        service.upsert_row(
            "todos",
            "t9",
            serde_json::json!({"description": "streamed", "owner_id": "x"}),
        );
        service.commit();
        let db = client(&service, "u1").await;
        in_runtime(|| async move {
            provide_database(db.clone());
            let params = Some(serde_json::json!({"owner": "x"}));
            let (stream, disposer) = as_child_of_current_owner(move |_: ()| {
                livesync::leptos::use_sync_stream("owned", params.clone())
            })(());
            until("the stream synced", || {
                stream.get_untracked().is_some_and(|s| s.has_synced())
            })
            .await;
            let todos: Vec<Todo> = db.query(TODOS).fetch_all().await.unwrap();
            assert_eq!(ids(&todos), ["t9"]);
            let held = stream.get_untracked().unwrap();
            assert!(held.has_explicit_subscription);
            let expiry = held.expires_at.unwrap();

            drop(disposer); // unmount: the subscription is released, its TTL starts
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

    /// `Runtime::dispose` drops the owners without running their `on_cleanup`s: the live
    /// tasks must still stop (the feed aborts its task when dropped) and release the
    /// table-change subscriptions and the stream subscription.
    #[tokio::test]
    async fn disposing_the_whole_runtime_stops_every_live_task() {
        let service = owned_stream_service().await;
        let db = client(&service, "u1").await;
        let params = || serde_json::json!({"owner": "x"});
        tokio::task::LocalSet::new()
            .run_until(async move {
                let baseline = db.active_watchers();
                let runtime = create_runtime();
                provide_tokio_spawner();
                provide_database(db.clone());
                let (for_resource, for_signal) = (db.clone(), db.clone());
                let resource = create_live_query(move || for_resource.query::<Todo>(TODOS));
                let signal = create_live_signal(move || for_signal.query::<Todo>(TODOS));
                let stream = livesync::leptos::use_sync_stream("owned", Some(params()));
                until("everything subscribed", || {
                    db.active_watchers() == baseline + 2
                        && signal.get_untracked().is_some()
                        && stream.get_untracked().is_some_and(|s| s.has_synced())
                })
                .await;
                assert!(peek(resource).is_some());
                let expiry = db
                    .status()
                    .for_stream("owned", params())
                    .and_then(|s| s.expires_at);

                runtime.dispose();
                until("the live queries' subscriptions were released", || {
                    db.active_watchers() == baseline
                })
                .await;
                until(
                    "the stream subscription was released (TTL restarted)",
                    || {
                        db.status()
                            .for_stream("owned", params())
                            .and_then(|s| s.expires_at)
                            > expiry
                    },
                )
                .await;
            })
            .await;
    }
}

mod streams {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use leptos_reactive::{
        SignalGetUntracked, SignalSet, as_child_of_current_owner, create_effect, create_signal,
    };
    use livesync::Database;
    use livesync::leptos::{
        create_live_query_one_with, create_live_query_with, create_live_signal_with,
        provide_database,
    };
    use serde_json::json;

    use super::*;
    use common::streams::{
        OWNED, is_held, owned, owned_service, refused, stream_status, until_released,
    };
    use common::sync::{fast, schema};

    /// Every value (`None` included) an effect reading `value` saw, in order.
    fn record_all<V: 'static>(value: impl Fn() -> V + 'static) -> Rc<RefCell<Vec<V>>> {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = Rc::clone(&seen);
        create_effect(move |_| log.borrow_mut().push(value()));
        seen
    }

    /// What a stream-backed resource holds: `None` (unresolved), the ids, or the error.
    type Shown = Option<Result<Vec<String>, String>>;

    fn shown(value: Option<livesync::leptos::LiveResult<Vec<Todo>>>) -> Shown {
        value.map(|result| result.map(|rows| ids(&rows)).map_err(|e| e.to_string()))
    }

    fn ok(ids: &[&str]) -> Shown {
        Some(Ok(ids.iter().map(|id| (*id).to_owned()).collect()))
    }

    /// Lets the local tasks run for `period`.
    async fn run_for(period: Duration) {
        tokio::time::sleep(period).await;
    }

    #[tokio::test]
    async fn a_stream_backed_value_stays_unresolved_until_its_stream_has_synced() {
        let service = owned_service().await;
        let db = Database::in_memory(schema()).await.unwrap();
        in_runtime(|| async move {
            provide_database(db.clone());
            let (q1, q2, q3) = (db.clone(), db.clone(), db.clone());
            let todos =
                create_live_query_with(move || q1.query::<Todo>(OWNED).bind("x"), || owned("x"));
            let count = create_live_query_one_with(
                move || q2.query::<i64>("SELECT count(*) FROM todos WHERE owner_id = 'x'"),
                || owned("x"),
            );
            let signal =
                create_live_signal_with(move || q3.query::<Todo>(OWNED).bind("x"), || owned("x"));
            let seen = record_all(move || shown(todos.get()));
            let seen_signal = record_all(move || shown(signal.get()));
            let counts = record_all(move || count.get().map(|c| c.ok().flatten()));

            // Offline: the stream cannot sync, and the empty local table must not show
            // as "no todos".
            run_for(Duration::from_millis(300)).await;
            assert_eq!(shown(peek(todos)), None);
            assert_eq!(shown(signal.get_untracked()), None);
            assert!(peek(count).is_none());
            let status = stream_status(&db, "x").expect("subscribed");
            assert!(status.has_explicit_subscription && !status.has_synced());

            db.connect(service.connector("u1"), fast()).await.unwrap();
            until("the rows of the synced stream", || {
                shown(peek(todos)) == ok(&["x1"]) && shown(signal.get_untracked()) == ok(&["x1"])
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

            // A later sync of the stream updates the rows without unresolving them.
            let before = seen.borrow().len();
            service.upsert_row(
                "todos",
                "x2",
                json!({"description": "more of x", "owner_id": "x"}),
            );
            service.commit();
            until("the second row", || shown(peek(todos)) == ok(&["x1", "x2"])).await;
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
    async fn disposing_the_owner_releases_the_stream_subscription() {
        let service = owned_service().await;
        let db = Database::in_memory(schema()).await.unwrap();
        db.connect(service.connector("u1"), fast()).await.unwrap();
        in_runtime(|| async move {
            provide_database(db.clone());
            let query = db.clone();
            let (todos, disposer) = as_child_of_current_owner(move |_: ()| {
                let (q1, q2) = (query.clone(), query.clone());
                let resource = create_live_query_with(
                    move || q1.query::<Todo>(OWNED).bind("x"),
                    || owned("x"),
                );
                let signal = create_live_signal_with(
                    move || q2.query::<Todo>(OWNED).bind("x"),
                    || owned("x"),
                );
                (resource, signal)
            })(());
            until("both synced", || {
                shown(peek(todos.0)) == ok(&["x1"]) && shown(todos.1.get_untracked()) == ok(&["x1"])
            })
            .await;
            db.disconnect().await;
            let watching = db.active_watchers();
            let mut probes = Vec::new();
            assert!(
                is_held(&db, "x", &mut probes).await,
                "held while the owner lives"
            );

            drop(disposer); // the component unmounts
            let expiry = stream_status(&db, "x").unwrap().expires_at.unwrap();
            until_released(&db, "x", expiry).await;
            assert!(
                !is_held(&db, "x", &mut probes).await,
                "no handle left after dispose"
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
        in_runtime(|| async move {
            provide_database(db.clone());
            let (q1, q2) = (db.clone(), db.clone());
            // `who` instead of `owner`: the service cannot resolve this subscription.
            let todos = create_live_query_with(move || q1.query::<Todo>(TODOS), refused);
            let signal = create_live_signal_with(move || q2.query::<Todo>(TODOS), refused);
            let seen = record_all(move || shown(todos.get()));
            until("the error shows", || {
                matches!(shown(peek(todos)), Some(Err(_)))
                    && matches!(signal.get_untracked(), Some(Err(_)))
            })
            .await;
            let Some(Err(message)) = shown(peek(todos)) else {
                unreachable!()
            };
            assert!(
                message.contains("owned") && message.contains("\"owner\" is missing"),
                "names the stream and the problem: {message}"
            );
            run_for(Duration::from_millis(300)).await;
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
    async fn changing_the_stream_parameters_moves_the_subscription() {
        let service = owned_service().await;
        let db = Database::in_memory(schema()).await.unwrap();
        db.connect(service.connector("u1"), fast()).await.unwrap();
        in_runtime(|| async move {
            provide_database(db.clone());
            let (owner, set_owner) = create_signal("x".to_owned());
            let (q1, q2) = (db.clone(), db.clone());
            let todos = create_live_query_with(
                move || q1.query::<Todo>(OWNED).bind(owner.get()),
                move || owned(&owner.get()),
            );
            let signal = create_live_signal_with(
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

            // Offline, so y cannot sync: both keep x's rows meanwhile, never y's empty
            // local result.
            db.disconnect().await;
            set_owner.set("y".to_owned());
            run_for(Duration::from_millis(300)).await;
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
