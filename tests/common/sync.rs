//! Clients of the in-process sync service (feature `testing`).

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use livesync::testing::{BucketRule, TestSyncService};
use livesync::{Column, Database, Schema, SyncOptions, SyncStatus, Table};

use super::SERVICE_THREAD_PREFIX;
use super::wait::in_time;

/// Sync options with short retry and upload delays, so tests do not wait for defaults.
pub fn fast() -> SyncOptions {
    SyncOptions::default()
        .retry_delay(Duration::from_millis(50))
        .crud_upload_throttle(Duration::from_millis(5))
}

/// An in-memory database of `schema`, connected to `service` as `user` with [`fast`]
/// options; not waited for (see [`synced`]).
pub async fn connected(schema: Schema, service: &TestSyncService, user: &str) -> Database {
    let db = Database::in_memory(schema).await.expect("open database");
    db.connect(service.connector(user), fast())
        .await
        .expect("connect");
    db
}

/// Waits (bounded) for the first complete sync of `db`, which must succeed.
pub async fn synced(db: &Database) {
    in_time("the first sync", db.wait_for_first_sync())
        .await
        .expect("first sync");
}

/// The statuses a `watch_status` stream delivered until it went quiet for 50 ms
/// (bounded: at most 10,000).
pub async fn delivered(statuses: &mut BoxStream<'static, SyncStatus>) -> Vec<SyncStatus> {
    let mut seen = Vec::new();
    while seen.len() < 10_000 {
        match tokio::time::timeout(Duration::from_millis(50), statuses.next()).await {
            Ok(Some(status)) => seen.push(status),
            _ => break,
        }
    }
    seen
}

/// `todos(description, owner_id)` and `lists(name)`: the schema of [`client`].
pub fn schema() -> Schema {
    Schema::new([
        Table::new(
            "todos",
            [Column::text("description"), Column::text("owner_id")],
        ),
        Table::new("lists", [Column::text("name")]),
    ])
}

/// A service that sends every `todos` and `lists` row to every user.
pub async fn service() -> TestSyncService {
    TestSyncService::builder()
        .rule(BucketRule::global("todos", ["todos"]))
        .rule(BucketRule::global("lists", ["lists"]))
        .start()
        .await
        .expect("service starts")
}

/// An in-memory client of [`schema`] connected as `user`, synced once.
pub async fn client(service: &TestSyncService, user: &str) -> Database {
    let db = connected(schema(), service, user).await;
    synced(&db).await;
    db
}

/// A [`TestSyncService`] running on a tokio runtime of its own thread, for tests whose
/// client side runs on another executor (or none). Dropping it stops the service and
/// the thread.
///
/// Every thread of that runtime (the one running it and any blocking-pool thread) is
/// named with [`SERVICE_THREAD_PREFIX`](super::SERVICE_THREAD_PREFIX), so a test can tell the service's tokio threads
/// from any other in `/proc/self/task/*/comm`.
pub struct ServiceThread {
    pub service: TestSyncService,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServiceThread {
    /// Starts the service `builder` describes on a new thread.
    pub fn start(builder: livesync::testing::TestSyncServiceBuilder) -> Self {
        let (started, service) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(SERVICE_THREAD_PREFIX.into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .thread_name(format!("{SERVICE_THREAD_PREFIX}-blocking"))
                    .enable_all()
                    .build()
                    .expect("a runtime for the service");
                runtime.block_on(async move {
                    let service = builder.start().await.expect("service starts");
                    started
                        .send(service)
                        .expect("the test waits for the service");
                    let _ = stopped.await;
                });
            })
            .expect("the service thread starts");
        let service = service
            .recv_timeout(super::wait::WAIT)
            .expect("the service started in time");
        Self {
            service,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for ServiceThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
