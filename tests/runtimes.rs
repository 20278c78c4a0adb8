//! One scenario, the life of an app with a file database, run on every executor
//! livesync supports: tokio (current-thread and multi-thread), smol, and an executor
//! livesync knows nothing about (plain threads driven by `futures::executor::block_on`)
//! with no tokio runtime on the app's side at all.
//!
//! The test service is a tokio server; it runs on a thread of its own in every case
//! ([`ServiceThread`]), as a smol app would run it. Waits use a timer that needs no
//! runtime (`common::wait::anywhere`), so the scenario itself is executor-neutral.
#![cfg(all(feature = "testing", feature = "smol", feature = "tokio"))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::sync::{ServiceThread, fast};
use common::wait::anywhere::{in_time, until, until_async};
use common::{file_db_with, strings};
use futures::StreamExt;
use livesync::testing::{BucketRule, TestStream, TestSyncService};
use livesync::{Column, OpenOptions, Runtime, Schema, Table, Task};
use serde_json::json;

fn schema() -> Schema {
    Schema::new([
        Table::new(
            "todos",
            [Column::text("description"), Column::text("owner_id")],
        ),
        Table::new("lists", [Column::text("name")]),
    ])
}

/// Every list goes to every user; todos only through the stream `owned` (by owner).
/// One list and one todo (owned by x) are on the service from the start.
fn service() -> ServiceThread {
    let service = ServiceThread::start(
        TestSyncService::builder()
            .rule(BucketRule::global("lists", ["lists"]))
            .stream(TestStream::per_parameter(
                "owned", "todos", "owner_id", "owner",
            )),
    );
    service
        .service
        .upsert_row("lists", "l1", json!({"name": "from the server"}));
    service.service.upsert_row(
        "todos",
        "t9",
        json!({"description": "streamed", "owner_id": "x"}),
    );
    service.service.commit();
    service
}

const LOCAL_LISTS: i64 = 30;

/// The scenario: local writes, a watcher, a throttled live query, then sync (first
/// sync, upload and echo, a stream subscription), disconnect with no task left, close.
async fn scenario(runtime: Runtime, service: &TestSyncService) {
    let options = OpenOptions::default().runtime(runtime);
    let (db, _dir) = file_db_with(schema(), options).await;

    // Local writes, a watcher and a throttled live query that ends on the final state.
    let mut changes = db.watch_tables(["lists"]);
    db.execute("INSERT INTO lists(id, name) VALUES ('mine', 'local')", ())
        .await
        .unwrap();
    let change = in_time("the watcher hears the write", changes.next()).await;
    assert!(change.unwrap().contains("lists"));
    let mut count = db
        .query::<i64>("SELECT count(*) FROM lists")
        .throttle(Duration::from_millis(20))
        .watch();
    let first = in_time("the first result", count.next()).await;
    assert_eq!(first.unwrap().unwrap(), [1]);
    for i in 1..LOCAL_LISTS {
        db.execute(
            "INSERT INTO lists(id, name) VALUES (?1, 'burst')",
            [format!("b{i:02}")],
        )
        .await
        .unwrap();
    }
    let mut last = 1;
    while last < LOCAL_LISTS {
        last = in_time("the burst's final state", count.next())
            .await
            .unwrap()
            .unwrap()[0];
    }
    assert_eq!(last, LOCAL_LISTS, "ends exactly on the final state");

    // Connect: the two loops run on the runtime under test.
    assert_eq!(db.background_tasks(), 0);
    db.connect(service.connector("u1"), fast()).await.unwrap();
    assert_eq!(db.background_tasks(), 2);
    in_time("the first sync", db.wait_for_first_sync())
        .await
        .unwrap();
    let all = in_time("the server's list in the live query", async {
        loop {
            let now = count.next().await.unwrap().unwrap()[0];
            if now == LOCAL_LISTS + 1 {
                return now;
            }
        }
    })
    .await;
    assert_eq!(all, LOCAL_LISTS + 1);

    // The local writes are uploaded, and come back down from the service.
    until("the uploads reached the backend", || {
        service.rows("lists").len() == LOCAL_LISTS as usize + 1
    })
    .await;
    until("every uploaded list was echoed back", || {
        service.ops_sent() > LOCAL_LISTS as u64
    })
    .await;
    until_async("the upload queue drained", || async {
        db.get_next_crud_transaction().await.unwrap().is_none()
    })
    .await;
    assert!(
        strings(&db, "SELECT name FROM lists WHERE id = 'mine'").await == ["local"],
        "the echoed row is the uploaded one"
    );

    // A sync stream subscription brings its rows.
    let owned = db
        .sync_stream("owned", json!({"owner": "x"}))
        .subscribe()
        .await
        .unwrap();
    in_time("the stream syncs", owned.wait_for_first_sync())
        .await
        .unwrap();
    assert_eq!(strings(&db, "SELECT id FROM todos").await, ["t9"]);

    // Disconnect: no task is left, the service sees the stream close.
    db.disconnect().await;
    assert_eq!(
        db.background_tasks(),
        0,
        "disconnect leaves no task running"
    );
    until("the service saw the stream close", || {
        service.open_streams() == 0
    })
    .await;
    assert!(!db.status().connected);

    drop(owned);
    db.close().await;
    assert_eq!(db.background_tasks(), 0);
    assert!(
        in_time("the live query ends with the database", count.next())
            .await
            .is_none()
    );
}

#[test]
fn the_scenario_runs_on_tokio_current_thread() {
    let service = service();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario(Runtime::tokio(), &service.service));
}

#[test]
fn the_scenario_runs_on_tokio_multi_thread() {
    let service = service();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario(Runtime::tokio(), &service.service));
}

#[test]
fn the_scenario_runs_on_smol() {
    let service = service();
    let executor = Arc::new(async_executor::Executor::new());
    let runtime = Runtime::smol(Arc::clone(&executor));
    async_io::block_on(executor.run(scenario(runtime, &service.service)));
}

/// The app side has no tokio runtime: the test body runs under
/// `futures::executor::block_on`, the sync loops on threads of their own under the same
/// minimal executor, and each checks that no tokio runtime is current. (That no tokio
/// runtime exists anywhere outside the service is `tests/without_tokio.rs`: this binary
/// runs tokio scenarios beside this one.)
#[test]
fn a_live_query_and_a_sync_run_with_no_tokio_runtime_on_the_app_side() {
    let service = service();
    let spawned = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&spawned);
    let runtime = Runtime::custom(move |task: Task| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::thread::spawn(move || {
            futures::executor::block_on(async move {
                assert!(tokio::runtime::Handle::try_current().is_err());
                task.await;
            });
        });
    });
    futures::executor::block_on(async {
        assert!(tokio::runtime::Handle::try_current().is_err());
        scenario(runtime, &service.service).await;
    });
    // The two sync loops, and the job that stores a released stream subscription.
    assert!(
        spawned.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "the sync loops ran on the app's spawner"
    );
}

/// A database opened with no executor still has live queries; connecting says what
/// is missing instead of panicking.
#[test]
fn without_an_executor_live_queries_work_and_connect_explains() {
    futures::executor::block_on(async {
        let options = OpenOptions::default().runtime(Runtime::none());
        let (db, _dir) = file_db_with(schema(), options).await;
        let mut count = db
            .query::<i64>("SELECT count(*) FROM lists")
            .throttle(Duration::from_millis(10))
            .watch();
        assert_eq!(in_time("first", count.next()).await.unwrap().unwrap(), [0]);
        db.execute("INSERT INTO lists(id, name) VALUES ('a', 'x')", ())
            .await
            .unwrap();
        assert_eq!(in_time("second", count.next()).await.unwrap().unwrap(), [1]);
        let service = service();
        let error = db
            .connect(service.service.connector("u1"), fast())
            .await
            .unwrap_err();
        assert!(matches!(error, livesync::Error::NoExecutor(_)), "{error}");
        assert!(
            error.to_string().contains("OpenOptions::runtime"),
            "{error}"
        );
        assert_eq!(db.background_tasks(), 0);
        db.close().await;
    });
}

/// The tokio glue outside any tokio runtime: `connect` fails with a message naming the
/// way out, not a panic.
#[test]
fn connect_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    futures::executor::block_on(async {
        let (db, _dir) = file_db_with(schema(), OpenOptions::default()).await;
        let service = service();
        let error = db
            .connect(service.service.connector("u1"), fast())
            .await
            .unwrap_err();
        assert!(matches!(error, livesync::Error::NoExecutor(_)), "{error}");
        assert!(error.to_string().contains("tokio runtime"), "{error}");
        db.close().await;
    });
}
