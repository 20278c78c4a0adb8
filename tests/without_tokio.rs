//! A live query and a sync with no tokio runtime anywhere in the process except the test
//! service's own thread (issue 17): under smol, and under an executor livesync knows
//! nothing about (a thread per task, driven by `futures::executor::block_on`).
//!
//! This test binary starts no tokio runtime of its own: the service runs on a
//! [`ServiceThread`], whose threads are all named with [`SERVICE_THREAD_PREFIX`]. So
//! once a sync has run, the list of the process's threads (`/proc/self/task/*/comm`)
//! shows whether livesync started a tokio runtime somewhere (tokio's workers are named
//! `tokio-runtime-worker`, livesync's former HTTP reactor `livesync-http-io`). Besides,
//! every poll of the connector's futures and of the sync tasks checks that no tokio
//! runtime is current.
#![cfg(all(feature = "testing", feature = "smol"))]

mod common;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::SERVICE_THREAD_PREFIX;
use common::sync::{ServiceThread, fast};
use common::wait::anywhere::{in_time, until, until_async};
use common::{file_db_with, strings};
use futures::StreamExt;
use livesync::testing::{BucketRule, TestSyncService};
use livesync::{
    BackendConnector, Column, Credentials, Database, HttpConnector, OpenOptions, Runtime, Schema,
    Table, Task,
};
use serde_json::json;

fn schema() -> Schema {
    Schema::new([Table::new("lists", [Column::text("name")])])
}

fn service() -> ServiceThread {
    let service = ServiceThread::start(
        TestSyncService::builder().rule(BucketRule::global("lists", ["lists"])),
    );
    service
        .service
        .upsert_row("lists", "l1", json!({"name": "from the server"}));
    service.service.commit();
    service
}

/// How many polls found a tokio runtime current.
#[derive(Clone, Default)]
struct TokioSightings(Arc<AtomicUsize>);

impl TokioSightings {
    /// `future`, checking at every poll that no tokio runtime is current.
    async fn watch<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        poll_fn(|cx| {
            if tokio::runtime::Handle::try_current().is_ok() {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
            future.as_mut().poll(cx)
        })
        .await
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// A connector checking every poll of its futures.
struct Watched<C> {
    inner: C,
    sightings: TokioSightings,
}

impl<C: BackendConnector> BackendConnector for Watched<C> {
    async fn fetch_credentials(&self) -> livesync::Result<Credentials> {
        self.sightings.watch(self.inner.fetch_credentials()).await
    }

    async fn upload_data(&self, db: &Database) -> livesync::Result<()> {
        self.sightings.watch(self.inner.upload_data(db)).await
    }
}

/// The names of the process's threads that look like tokio's (or like livesync's former
/// tokio reactor for HTTP) and are not the test service's.
fn tokio_threads_outside_the_service() -> Vec<String> {
    // Unnamed threads carry the process's name, which is this binary's (`without_tokio-…`).
    let process = std::fs::read_to_string("/proc/self/comm").expect("/proc/self/comm");
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task lists the threads");
    let mut names: Vec<String> = tasks
        .filter_map(|task| {
            let path = task.ok()?.path().join("comm");
            Some(std::fs::read_to_string(path).ok()?.trim().to_owned())
        })
        .filter(|name| name.contains("tokio") || name.starts_with("livesync-http"))
        .filter(|name| !name.starts_with(SERVICE_THREAD_PREFIX) && name != process.trim())
        .collect();
    names.sort();
    names
}

/// Opens a file database on `runtime`, runs a throttled live query, connects, syncs,
/// uploads a local write that comes back from the service, and then checks that no tokio
/// runtime exists outside the service's thread.
async fn live_query_and_sync(
    runtime: Runtime,
    service: &TestSyncService,
    connector: impl BackendConnector,
    sightings: &TokioSightings,
) {
    let options = OpenOptions::default().runtime(runtime);
    let (db, _dir) = file_db_with(schema(), options).await;
    let mut lists = db
        .query::<String>("SELECT name FROM lists ORDER BY id")
        .throttle(Duration::from_millis(20))
        .watch();
    assert_eq!(
        in_time("the first result", lists.next())
            .await
            .unwrap()
            .unwrap(),
        Vec::<String>::new()
    );

    let connector = Watched {
        inner: connector,
        sightings: sightings.clone(),
    };
    db.connect(connector, fast()).await.unwrap();
    in_time("the first sync", db.wait_for_first_sync())
        .await
        .unwrap();
    in_time("the server's row in the live query", async {
        while lists.next().await.unwrap().unwrap() != ["from the server"] {}
    })
    .await;

    // A local write is uploaded, and the service sends it back down.
    db.execute("INSERT INTO lists(id, name) VALUES ('m1', 'mine')", ())
        .await
        .unwrap();
    until("the upload reached the backend", || {
        service.rows("lists").len() == 2
    })
    .await;
    until_async("the upload queue drained and the echo arrived", || async {
        db.get_next_crud_transaction().await.unwrap().is_none()
            && service.ops_sent() >= 2
            && db.status().has_synced
    })
    .await;
    in_time("the echoed row in the live query", async {
        while lists.next().await.unwrap().unwrap() != ["from the server", "mine"] {}
    })
    .await;
    assert_eq!(
        strings(&db, "SELECT name FROM lists WHERE id = 'm1'").await,
        ["mine"]
    );
    assert!(db.status().download_error.is_none(), "{:?}", db.status());
    assert!(db.status().upload_error.is_none(), "{:?}", db.status());

    // The point of the test: everything above ran with no tokio runtime of its own.
    assert_eq!(
        tokio_threads_outside_the_service(),
        Vec::<String>::new(),
        "tokio threads outside the test service"
    );
    assert!(tokio::runtime::Handle::try_current().is_err());
    assert_eq!(
        sightings.count(),
        0,
        "polls that found a tokio runtime current"
    );

    db.disconnect().await;
    assert_eq!(db.background_tasks(), 0);
    db.close().await;
    assert_eq!(tokio_threads_outside_the_service(), Vec::<String>::new());
}

#[test]
fn a_smol_app_syncs_with_no_tokio_runtime_outside_the_service() {
    let service = service();
    let sightings = TokioSightings::default();
    let executor = Arc::new(async_executor::Executor::new());
    let runtime = Runtime::smol(Arc::clone(&executor));
    async_io::block_on(executor.run(sightings.watch(live_query_and_sync(
        runtime,
        &service.service,
        service.service.connector("u1"),
        &sightings,
    ))));
    assert_eq!(sightings.count(), 0);
}

/// The same with `HttpConnector`: tokens from the service's token endpoint, uploads
/// posted to its upload endpoint, through the backend that needs no tokio.
#[test]
fn an_http_connector_on_smol_syncs_with_no_tokio_runtime_outside_the_service() {
    let service = service();
    let url = service.service.url();
    let connector = HttpConnector::builder(&url)
        .token_endpoint(format!("{url}/token?user_id=u1"))
        .upload_url(format!("{url}/upload"))
        .build()
        .unwrap();
    let sightings = TokioSightings::default();
    let executor = Arc::new(async_executor::Executor::new());
    let runtime = Runtime::smol(Arc::clone(&executor));
    async_io::block_on(executor.run(sightings.watch(live_query_and_sync(
        runtime,
        &service.service,
        connector,
        &sightings,
    ))));
    assert_eq!(service.service.uploads().len(), 1);
    assert_eq!(sightings.count(), 0);
}

#[test]
fn a_custom_executor_app_syncs_with_no_tokio_runtime_outside_the_service() {
    let service = service();
    let sightings = TokioSightings::default();
    let spawned = Arc::new(AtomicUsize::new(0));
    let (counter, watcher) = (Arc::clone(&spawned), sightings.clone());
    let runtime = Runtime::custom(move |task: Task| {
        counter.fetch_add(1, Ordering::Relaxed);
        let watcher = watcher.clone();
        std::thread::spawn(move || futures::executor::block_on(watcher.watch(task)));
    });
    futures::executor::block_on(sightings.watch(live_query_and_sync(
        runtime,
        &service.service,
        service.service.connector("u1"),
        &sightings,
    )));
    assert!(
        spawned.load(Ordering::Relaxed) >= 2,
        "the sync loops ran on the app's spawner"
    );
    assert_eq!(sightings.count(), 0);
}
