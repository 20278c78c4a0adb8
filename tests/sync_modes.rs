//! Download-only and upload-only connections (`SyncMode`, docs/sync-protocol.md §5.5)
//! against the in-process `TestSyncService`, through the public API only.
#![cfg(feature = "testing")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use livesync::testing::{BucketRule, TestConnector, TestSyncService};
use livesync::{BackendConnector, Credentials, Database, Error, SyncMode};
use serde_json::json;

mod common;

use common::strings;
use common::sync::{fast, schema, service, synced};
use common::wait::{eventually, until};

const TODOS: &str = "SELECT id || ':' || description FROM todos ORDER BY id";

async fn write(db: &Database, id: &str, description: &str) {
    db.execute(
        "INSERT INTO todos(id, description, owner_id) VALUES (?1, ?2, 'u1')",
        (id.to_owned(), description.to_owned()),
    )
    .await
    .unwrap();
}

async fn queued(db: &Database) -> u64 {
    db.upload_queue_stats().await.unwrap().count
}

/// Waits until a download-only connection reports that queued writes hold data back.
async fn held_back_by_local_writes(db: &Database) {
    until("the status says local writes hold data back", || {
        matches!(
            db.status()
                .download_error
                .as_ref()
                .map(|e| e.error().clone()),
            Some(Error::LocalWritesNotUploaded)
        )
    })
    .await;
}

#[tokio::test]
async fn download_only_keeps_the_queue_and_the_gate_shut() {
    // `lists` at priority 0: urgent data shows despite the queued writes.
    let service = TestSyncService::builder()
        .rule(BucketRule::global("todos", ["todos"]))
        .rule(BucketRule::global("lists", ["lists"]))
        .priority("lists", 0)
        .start()
        .await
        .unwrap();
    service.upsert_row("lists", "l1", json!({"name": "urgent"}));
    service.upsert_row(
        "todos",
        "s1",
        json!({"description": "server", "owner_id": "u1"}),
    );
    service.commit();
    let db = Database::in_memory(schema()).await.unwrap();
    write(&db, "w1", "local").await;

    db.connect(service.connector("u1"), fast().mode(SyncMode::DownloadOnly))
        .await
        .unwrap();
    held_back_by_local_writes(&db).await;
    let status = db.status();
    assert_eq!(status.mode, Some(SyncMode::DownloadOnly));
    assert!(status.connected && !status.has_synced);
    assert!(
        status
            .download_error
            .unwrap()
            .to_string()
            .contains("SyncMode::Full")
    );
    // A write while connected download-only stays queued too.
    write(&db, "w2", "also local").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(service.uploads().is_empty(), "nothing is uploaded");
    assert_eq!(queued(&db).await, 2);
    assert_eq!(strings(&db, TODOS).await, ["w1:local", "w2:also local"]);
    assert_eq!(strings(&db, "SELECT name FROM lists").await, ["urgent"]);
    assert_eq!(service.sync_requests().len(), 1, "the stream is open");
    db.close().await;
}

/// A connector whose first `failures` uploads fail, as an unreachable backend would.
struct FlakyUploads {
    inner: TestConnector,
    failures: Arc<AtomicUsize>,
}

impl BackendConnector for FlakyUploads {
    async fn fetch_credentials(&self) -> livesync::Result<Credentials> {
        self.inner.fetch_credentials().await
    }

    async fn upload_data(&self, db: &Database) -> livesync::Result<()> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(Error::connector("backend unreachable"));
        }
        self.inner.upload_data(db).await
    }
}

#[tokio::test]
async fn upload_only_uploads_and_retries_without_contacting_the_service() {
    let service = service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    write(&db, "w1", "local").await;
    let connector = FlakyUploads {
        inner: service.connector("u1"),
        failures: Arc::new(AtomicUsize::new(2)),
    };
    let observer = connector.inner.clone();
    let failures = Arc::clone(&connector.failures);
    db.connect(connector, fast().mode(SyncMode::UploadOnly))
        .await
        .unwrap();
    let status = db.status();
    assert_eq!(status.mode, Some(SyncMode::UploadOnly));
    assert_eq!(db.background_tasks(), 1, "no download task");

    until("the write reached the backend", || {
        service.rows("todos").len() == 1
    })
    .await;
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "both failures were retried"
    );
    until("the queue drained", || db.status().upload_error.is_none()).await;
    assert_eq!(queued(&db).await, 0);
    assert!(
        service.sync_requests().is_empty(),
        "no stream was requested"
    );
    assert_eq!(service.write_checkpoint_requests(), 0);
    assert!(service.checkpoint_requests().is_empty());
    assert!(!db.status().connected);
    assert_eq!(observer.credentials_fetched(), 0, "no token was needed");
    db.disconnect().await;
    assert_eq!(db.status().mode, None);
    db.close().await;
}

#[tokio::test]
async fn switching_modes_loses_nothing_and_opens_the_gate_in_the_end() {
    let service = service().await;
    service.upsert_row(
        "todos",
        "s1",
        json!({"description": "server", "owner_id": "u1"}),
    );
    service.commit();
    let db = Database::in_memory(schema()).await.unwrap();
    write(&db, "w1", "first").await;

    // Download-only: the stream is open, the writes wait.
    db.connect(service.connector("u1"), fast().mode(SyncMode::DownloadOnly))
        .await
        .unwrap();
    held_back_by_local_writes(&db).await;
    write(&db, "w2", "second").await;
    db.disconnect().await;
    assert_eq!(queued(&db).await, 2);
    assert!(service.uploads().is_empty());

    // Upload-only: the writes go out, no stream is opened.
    let streams_before = service.sync_requests().len();
    db.connect(service.connector("u1"), fast().mode(SyncMode::UploadOnly))
        .await
        .unwrap();
    until("both writes reached the backend", || {
        service.rows("todos").len() == 3
    })
    .await;
    until("the queue drained", || db.status().upload_error.is_none()).await;
    eventually(&db, "SELECT count(*) FROM ps_crud", &["0"]).await;
    write(&db, "w3", "third").await;
    until("the third write reached the backend", || {
        service.rows("todos").len() == 4
    })
    .await;
    db.disconnect().await;
    assert_eq!(service.sync_requests().len(), streams_before);
    assert_eq!(service.write_checkpoint_requests(), 0);

    // Download-only again: the queue is empty, so it asks for the write checkpoint the
    // upload-only connection left pending, and the gate opens.
    db.connect(service.connector("u1"), fast().mode(SyncMode::DownloadOnly))
        .await
        .unwrap();
    eventually(
        &db,
        TODOS,
        &["s1:server", "w1:first", "w2:second", "w3:third"],
    )
    .await;
    assert_eq!(service.write_checkpoint_requests(), 1);
    assert!(db.status().download_error.is_none());

    // And a full connection keeps it all.
    db.disconnect().await;
    db.connect(service.connector("u1"), fast()).await.unwrap();
    synced(&db).await;
    assert_eq!(db.status().mode, Some(SyncMode::Full));
    write(&db, "w4", "fourth").await;
    until("the full connection uploads", || {
        service.rows("todos").len() == 5
    })
    .await;
    service.upsert_row(
        "todos",
        "s2",
        json!({"description": "later", "owner_id": "u1"}),
    );
    service.commit();
    eventually(
        &db,
        TODOS,
        &[
            "s1:server",
            "s2:later",
            "w1:first",
            "w2:second",
            "w3:third",
            "w4:fourth",
        ],
    )
    .await;
    let uploaded: Vec<String> = service
        .uploads()
        .iter()
        .flat_map(|upload| upload["batch"].as_array().cloned().unwrap_or_default())
        .map(|entry| entry["id"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        uploaded,
        ["w1", "w2", "w3", "w4"],
        "each write once, in order"
    );
    db.close().await;
}

#[tokio::test]
async fn a_full_connection_after_download_only_uploads_and_applies() {
    let service: TestSyncService = service().await;
    service.upsert_row(
        "todos",
        "s1",
        json!({"description": "server", "owner_id": "u1"}),
    );
    service.commit();
    let db = Database::in_memory(schema()).await.unwrap();
    write(&db, "w1", "local").await;
    db.connect(service.connector("u1"), fast().mode(SyncMode::DownloadOnly))
        .await
        .unwrap();
    held_back_by_local_writes(&db).await;

    db.connect(service.connector("u1"), fast()).await.unwrap();
    eventually(&db, TODOS, &["s1:server", "w1:local"]).await;
    until("the connection synced", || db.status().has_synced).await;
    assert_eq!(service.rows("todos").len(), 2);
    assert!(db.status().download_error.is_none());
    db.close().await;
}
