//! Clients of the in-process sync service (feature `testing`).

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use livesync::testing::{BucketRule, TestSyncService};
use livesync::{Column, Database, Schema, SyncOptions, SyncStatus, Table};

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
