//! Live values backed by sync streams (the UI adapters' `…_with` entry points): a test
//! service with the per-owner stream `owned`, and probes of whether a subscription is
//! held.

use std::time::{Duration, SystemTime};

use livesync::query::LiveQueryOptions;
use livesync::testing::{TestStream, TestSyncService};
use livesync::{Database, SyncStreamStatus, SyncStreamSubscription};
use serde_json::json;

use super::wait::until;

/// The todos of one owner, in id order (bind the owner).
pub const OWNED: &str = "SELECT id, description FROM todos WHERE owner_id = ? ORDER BY id";

/// A service with the stream `owned` (the todos whose `owner_id` is the `owner`
/// parameter), holding one todo for owner x (`x1`) and one for owner y (`y1`).
pub async fn owned_service() -> TestSyncService {
    let service = TestSyncService::builder()
        .stream(TestStream::per_parameter(
            "owned", "todos", "owner_id", "owner",
        ))
        .keepalive_interval(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    service.upsert_row(
        "todos",
        "x1",
        json!({"description": "of x", "owner_id": "x"}),
    );
    service.upsert_row(
        "todos",
        "y1",
        json!({"description": "of y", "owner_id": "y"}),
    );
    service.commit();
    service
}

/// The options of a query over `owner`'s todos.
pub fn owned(owner: &str) -> LiveQueryOptions {
    LiveQueryOptions::new().stream("owned", json!({"owner": owner}))
}

/// Options naming a parameter the stream does not know: the service refuses them.
pub fn refused() -> LiveQueryOptions {
    LiveQueryOptions::new().stream("owned", json!({"who": "x"}))
}

/// The status of `owner`'s subscription, if the database knows it.
pub fn stream_status(db: &Database, owner: &str) -> Option<SyncStreamStatus> {
    db.status()
        .for_stream("owned", json!({"owner": owner}))
        .cloned()
}

/// Whether a handle holds the `owned` subscription of `owner`. Refreshing the
/// subscriptions (here: by subscribing to another stream) renews the expiry of held
/// subscriptions only. Offline only: then the status shows the refresh at once.
pub async fn is_held(db: &Database, owner: &str, probes: &mut Vec<SyncStreamSubscription>) -> bool {
    let before = stream_status(db, owner).and_then(|s| s.expires_at);
    tokio::time::sleep(Duration::from_millis(20)).await;
    probes.push(db.sync_stream("probe", None).subscribe().await.unwrap());
    let after = stream_status(db, owner).and_then(|s| s.expires_at);
    after > before
}

/// Waits until the subscription of `owner` expires later than `before` (its last
/// handle was dropped, so its TTL restarted).
pub async fn until_released(db: &Database, owner: &str, before: SystemTime) {
    until("the subscription was released", || {
        stream_status(db, owner)
            .and_then(|s| s.expires_at)
            .is_some_and(|expires| expires > before)
    })
    .await;
}
