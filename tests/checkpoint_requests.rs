//! Checkpoint requests (`CheckpointMode::Requests`, docs/sync-protocol.md §5.3) against
//! the in-process `TestSyncService`, through the public API only.
#![cfg(feature = "testing")]

use std::time::Duration;

use livesync::testing::TestSyncService;
use livesync::{CheckpointMode, Database, Error, SyncMode, SyncOptions};
use serde_json::json;

mod common;

use common::strings;
use common::sync::{delivered, fast, schema, service, synced};
use common::wait::{eventually, in_time, until};

const TODOS: &str = "SELECT id || ':' || description FROM todos ORDER BY id";

fn requests() -> SyncOptions {
    fast().checkpoint_mode(CheckpointMode::Requests)
}

/// The `checkpoint_request_id`s the service received, oldest first.
fn posted_ids(service: &TestSyncService) -> Vec<String> {
    service
        .checkpoint_requests()
        .iter()
        .map(|body| {
            body["checkpoint_request_id"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .collect()
}

async fn connected_with_requests(service: &TestSyncService) -> Database {
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(service.connector("u1"), requests())
        .await
        .unwrap();
    synced(&db).await;
    db
}

#[tokio::test]
async fn requests_carry_the_client_id_and_monotonic_ids_as_decimal_strings() {
    let service = service().await;
    let db = connected_with_requests(&service).await;
    let client_id = db.client_id().await.unwrap();
    // Every connection seeds first: a fresh database proposes 1.
    until("the connection seeded", || {
        !service.checkpoint_requests().is_empty()
    })
    .await;

    let first = in_time("a request", db.request_checkpoint()).await.unwrap();
    let second = in_time("a request", db.request_checkpoint()).await.unwrap();
    assert_eq!((first.id(), second.id()), (2, 3));
    let bodies = service.checkpoint_requests();
    assert_eq!(
        bodies,
        [
            json!({"client_id": client_id, "checkpoint_request_id": "1"}),
            json!({"client_id": client_id, "checkpoint_request_id": "2"}),
            json!({"client_id": client_id, "checkpoint_request_id": "3"}),
        ]
    );
    in_time("the second request syncs", second.wait_for_sync())
        .await
        .unwrap();
    assert!(first.has_synced() && second.has_synced());
    assert_eq!(service.write_checkpoint_requests(), 0, "no legacy request");
    db.close().await;
}

#[tokio::test]
async fn wait_for_sync_resolves_only_once_the_checkpoint_with_the_request_is_applied() {
    let service = service().await;
    let db = connected_with_requests(&service).await;
    let earlier = db.request_checkpoint().await.unwrap();
    in_time("the earlier request", earlier.wait_for_sync())
        .await
        .unwrap();

    service.hold_checkpoint_completes(true);
    service.upsert_row(
        "todos",
        "t9",
        json!({"description": "fresh", "owner_id": "u1"}),
    );
    service.commit();
    let request = db.request_checkpoint().await.unwrap();
    assert!(request.id() > earlier.id());
    let waiting = tokio::spawn({
        let request = request.clone();
        async move { request.wait_for_sync().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "resolved before the checkpoint applied"
    );
    assert!(!request.has_synced());
    assert_eq!(strings(&db, TODOS).await, Vec::<String>::new());

    service.hold_checkpoint_completes(false);
    in_time("the request syncs", waiting)
        .await
        .unwrap()
        .unwrap();
    // Applied means visible: the row committed before the request is there already.
    assert_eq!(strings(&db, TODOS).await, ["t9:fresh"]);
    db.close().await;
}

#[tokio::test]
async fn an_unapplied_request_is_posted_again_after_a_reconnect() {
    let service = service().await;
    let db = connected_with_requests(&service).await;
    service.hold_checkpoint_completes(true);
    let request = db.request_checkpoint().await.unwrap();
    let waiting = tokio::spawn({
        let request = request.clone();
        async move { request.wait_for_sync().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    db.disconnect().await;
    let interrupted = in_time("the wait ends", waiting).await.unwrap();
    assert!(
        matches!(interrupted, Err(Error::Disconnected(_))),
        "{interrupted:?}"
    );

    let posted_before = service.checkpoint_requests().len();
    db.connect(service.connector("u1"), requests())
        .await
        .unwrap();
    until("the reconnect posted again", || {
        service.checkpoint_requests().len() > posted_before
    })
    .await;
    assert_eq!(
        posted_ids(&service)[posted_before],
        request.id().to_string()
    );
    service.hold_checkpoint_completes(false);
    in_time(
        "the same handle syncs after the reconnect",
        request.wait_for_sync(),
    )
    .await
    .unwrap();
    db.close().await;
}

#[tokio::test]
async fn request_checkpoint_fails_clearly_when_disconnected_in_legacy_or_upload_only_mode() {
    let service = service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    let offline = db.request_checkpoint().await.unwrap_err();
    assert!(matches!(offline, Error::Disconnected(_)), "{offline:?}");
    assert!(
        offline.to_string().contains("Database::connect"),
        "{offline}"
    );

    db.connect(service.connector("u1"), fast()).await.unwrap();
    synced(&db).await;
    let legacy = db.request_checkpoint().await.unwrap_err();
    assert!(
        matches!(legacy, Error::CheckpointRequestsDisabled),
        "{legacy:?}"
    );
    assert!(
        legacy.to_string().contains("CheckpointMode::Requests"),
        "{legacy}"
    );

    db.connect(
        service.connector("u1"),
        requests().mode(SyncMode::UploadOnly),
    )
    .await
    .unwrap();
    let upload_only = db.request_checkpoint().await.unwrap_err();
    assert!(
        upload_only.to_string().contains("upload-only"),
        "{upload_only}"
    );

    db.connect(service.connector("u1"), requests())
        .await
        .unwrap();
    in_time("a request", db.request_checkpoint()).await.unwrap();
    db.disconnect().await;
    let stopped = db.request_checkpoint().await.unwrap_err();
    assert!(matches!(stopped, Error::Disconnected(_)), "{stopped:?}");
    assert!(service.checkpoint_requests().len() >= 2);
    db.close().await;
}

#[tokio::test]
async fn request_ids_stay_monotonic_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let first_service = service().await;
    let db = Database::open(&path, schema()).await.unwrap();
    db.connect(first_service.connector("u1"), requests())
        .await
        .unwrap();
    synced(&db).await;
    let request = in_time("a request", db.request_checkpoint()).await.unwrap();
    in_time("it syncs", request.wait_for_sync()).await.unwrap();
    db.close().await;

    // A service that knows nothing of this client: only the database remembers the ids.
    let second_service = service().await;
    let db = Database::open(&path, schema()).await.unwrap();
    db.connect(second_service.connector("u1"), requests())
        .await
        .unwrap();
    let next = in_time("a request", db.request_checkpoint()).await.unwrap();
    assert_eq!(
        posted_ids(&second_service),
        [request.id().to_string(), next.id().to_string()],
        "the reopened database proposes its last id, then allocates the next"
    );
    assert!(next.id() > request.id());
    db.close().await;
}

#[tokio::test]
async fn after_sign_out_new_ids_start_above_what_the_service_holds() {
    let service = service().await;
    let db = connected_with_requests(&service).await;
    let mut last = 0;
    for _ in 0..3 {
        last = db.request_checkpoint().await.unwrap().id();
    }
    db.disconnect_and_clear(false).await.unwrap();
    db.connect(service.connector("u1"), requests())
        .await
        .unwrap();
    let after = in_time("a request", db.request_checkpoint()).await.unwrap();
    // The cleared database proposes 1; the service answers with the id it holds.
    assert_eq!(posted_ids(&service).iter().rev().nth(1).unwrap(), "1");
    assert!(after.id() > last, "{} after {last}", after.id());
    in_time("it syncs", after.wait_for_sync()).await.unwrap();
    db.close().await;
}

#[tokio::test]
async fn uploads_confirm_their_writes_with_a_checkpoint_request() {
    let service = service().await;
    let db = connected_with_requests(&service).await;
    until("the connection seeded", || {
        !service.checkpoint_requests().is_empty()
    })
    .await;
    db.execute(
        "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'mine', 'u1')",
        (),
    )
    .await
    .unwrap();
    until("the write was uploaded", || {
        service.rows("todos").len() == 1
    })
    .await;
    // The gate opens with the acknowledged request: later server data shows.
    service.upsert_row("lists", "l1", json!({"name": "from the server"}));
    service.commit();
    eventually(&db, "SELECT name FROM lists", &["from the server"]).await;
    assert_eq!(strings(&db, TODOS).await, ["t1:mine"]);
    assert_eq!(
        posted_ids(&service),
        ["1", "2"],
        "the seed, then the upload's"
    );
    assert_eq!(service.write_checkpoint_requests(), 0);
    db.close().await;
}

#[tokio::test]
async fn a_service_without_checkpoint_requests_syncs_with_legacy_write_checkpoints() {
    let service = TestSyncService::builder()
        .rule(livesync::testing::BucketRule::global("todos", ["todos"]))
        .rule(livesync::testing::BucketRule::global("lists", ["lists"]))
        .checkpoint_requests(false)
        .start()
        .await
        .unwrap();
    let db = connected_with_requests(&service).await;
    let error = db.request_checkpoint().await.unwrap_err();
    assert!(
        matches!(error, Error::CheckpointRequestsUnsupported { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("1.24.0"), "{error}");

    db.execute(
        "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'mine', 'u1')",
        (),
    )
    .await
    .unwrap();
    until("the write was uploaded", || {
        service.rows("todos").len() == 1
    })
    .await;
    service.upsert_row("lists", "l1", json!({"name": "from the server"}));
    service.commit();
    eventually(&db, "SELECT name FROM lists", &["from the server"]).await;
    assert_eq!(service.write_checkpoint_requests(), 1);
    // One seeding attempt per connection, nothing for the upload or the refused request.
    assert_eq!(posted_ids(&service), ["1"]);
    assert!(db.status().download_error.is_none());
    db.close().await;
}

#[tokio::test]
async fn a_request_the_service_lost_is_posted_again_while_connected() {
    let service = service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    let options = requests().checkpoint_repost_delay(Duration::from_secs(1));
    db.connect(service.connector("u1"), options).await.unwrap();
    synced(&db).await;
    service.lose_checkpoint_requests(true);
    let request = in_time("a request", db.request_checkpoint()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!request.has_synced(), "the service never kept it");
    let posted_before = service.checkpoint_requests().len();

    service.lose_checkpoint_requests(false);
    in_time("the repost syncs", request.wait_for_sync())
        .await
        .unwrap();
    let ids = posted_ids(&service);
    assert_eq!(
        ids[posted_before],
        request.id().to_string(),
        "the same id again"
    );
    assert!(db.status().connected, "without a reconnect");
    assert_eq!(service.sync_requests().len(), 1);
    db.close().await;
}

#[tokio::test]
async fn a_failed_seeding_fails_the_attempt_and_the_next_one_recovers() {
    let service = service().await;
    service.fail_next_checkpoint_requests(1, 503);
    let db = Database::in_memory(schema()).await.unwrap();
    let mut statuses = db.watch_status();
    db.connect(service.connector("u1"), requests())
        .await
        .unwrap();
    synced(&db).await;
    // The first attempt failed on its seeding and was reported like a stream failure.
    let reported = delivered(&mut statuses)
        .await
        .into_iter()
        .find_map(|status| status.download_error);
    let reported = reported.expect("the failed attempt was reported");
    assert!(
        matches!(reported.error(), Error::HttpStatus { status: 503, url, .. } if url.ends_with("/sync/checkpoint-request")),
        "{reported}"
    );
    assert_eq!(
        service.sync_requests().len(),
        2,
        "one failed attempt, one retry"
    );
    assert_eq!(posted_ids(&service), ["1", "1"]);
    let request = in_time("a request", db.request_checkpoint()).await.unwrap();
    assert_eq!(request.id(), 2);
    in_time("it syncs", request.wait_for_sync()).await.unwrap();
    db.close().await;
}
