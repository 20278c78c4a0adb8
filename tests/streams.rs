//! Sync streams against the in-process `TestSyncService`, through the public API only:
//! subscriptions with parameters, default streams, per-stream status and errors, TTLs,
//! persistence across restarts, and reconnecting when subscriptions change.
#![cfg(feature = "testing")]

use std::time::Duration;

use futures::StreamExt;
use livesync::testing::{BucketRule, TestStream, TestSyncService};
use livesync::{Column, Database, Schema, SubscribeOptions, Table};
use serde_json::{Value, json};

mod common;

use common::strings;
use common::sync::{connected, delivered, fast, synced};
use common::wait::{eventually, in_time, until};

fn schema() -> Schema {
    Schema::new([
        Table::new("lists", [Column::text("name")]),
        Table::new(
            "todos",
            [Column::text("description"), Column::text("list_id")],
        ),
    ])
}

/// `lists` is a default stream (every client gets every list); `list_todos` is
/// subscribed per list with `{"list_id": ...}`.
async fn service() -> TestSyncService {
    let service = TestSyncService::builder()
        .stream(TestStream::new("lists", BucketRule::global("lists", ["lists"])).auto_subscribe())
        .stream(TestStream::per_parameter(
            "list_todos",
            "todos",
            "list_id",
            "list_id",
        ))
        .keepalive_interval(Duration::from_millis(100))
        .start()
        .await
        .expect("service starts");
    service.upsert_row("lists", "l1", json!({"name": "groceries"}));
    service.upsert_row("lists", "l2", json!({"name": "chores"}));
    service.upsert_row(
        "todos",
        "t1",
        json!({"description": "milk", "list_id": "l1"}),
    );
    service.upsert_row(
        "todos",
        "t2",
        json!({"description": "bread", "list_id": "l1"}),
    );
    service.upsert_row(
        "todos",
        "t3",
        json!({"description": "dishes", "list_id": "l2"}),
    );
    service.commit();
    service
}

const TODOS: &str = "SELECT id FROM todos ORDER BY id";
const LISTS: &str = "SELECT id FROM lists ORDER BY id";

/// The `streams.subscriptions` of the latest sync request.
fn last_requested(service: &TestSyncService) -> Value {
    let requests = service.sync_requests();
    requests.last().expect("a sync request")["streams"]["subscriptions"].clone()
}

#[tokio::test]
async fn a_subscribed_stream_brings_its_data_and_reports_its_status() {
    let service = service().await;
    let db = connected(schema(), &service, "u1").await;
    synced(&db).await;
    assert_eq!(
        strings(&db, LISTS).await,
        ["l1", "l2"],
        "the default stream"
    );
    assert!(
        strings(&db, TODOS).await.is_empty(),
        "nothing subscribed yet"
    );
    let lists = db.status().for_stream("lists", None).cloned().unwrap();
    assert!(lists.is_default && lists.active && !lists.has_explicit_subscription);
    assert!(lists.has_synced() && lists.expires_at.is_none());
    assert_eq!(lists.priority, Some(3));

    // Subscribing while connected reconnects at once, without showing a disconnect.
    let mut statuses = db.watch_status();
    statuses.next().await;
    let requests_before = service.sync_requests().len();
    let subscription = db
        .sync_stream("list_todos", json!({"list_id": "l1"}))
        .subscribe()
        .await
        .unwrap();
    in_time("the stream syncs", subscription.wait_for_first_sync())
        .await
        .unwrap();
    assert_eq!(
        strings(&db, TODOS).await,
        ["t1", "t2"],
        "only list l1's todos"
    );
    assert_eq!(service.sync_requests().len(), requests_before + 1);
    assert_eq!(
        last_requested(&service),
        json!([{"stream": "list_todos", "parameters": {"list_id": "l1"}, "override_priority": null}])
    );
    let seen = delivered(&mut statuses).await;
    assert!(
        seen.iter().all(|s| s.connected || s.connecting),
        "a subscription change reconnects without a visible disconnect: {seen:?}"
    );
    let status = subscription.status().unwrap();
    assert!(status.active && status.has_explicit_subscription && !status.is_default);
    assert!(status.has_synced() && status.errors.is_empty());
    let expires = status.expires_at.unwrap();
    let in_a_day = std::time::SystemTime::now() + livesync::DEFAULT_STREAM_TTL;
    assert!(expires <= in_a_day && expires > in_a_day - Duration::from_secs(60));

    // Live changes of the subscribed data arrive.
    service.upsert_row(
        "todos",
        "t4",
        json!({"description": "eggs", "list_id": "l1"}),
    );
    service.upsert_row(
        "todos",
        "t5",
        json!({"description": "sweep", "list_id": "l2"}),
    );
    service.commit();
    eventually(&db, TODOS, &["t1", "t2", "t4"]).await;

    // Ending the subscription while connected: the next request leaves it out and its
    // data goes (its bucket is no longer in the checkpoint).
    db.sync_stream("list_todos", json!({"list_id": "l1"}))
        .unsubscribe_all()
        .await
        .unwrap();
    eventually(&db, TODOS, &[]).await;
    assert_eq!(last_requested(&service), json!([]));
    until("the ended subscription is forgotten", || {
        db.status()
            .for_stream("list_todos", json!({"list_id": "l1"}))
            .is_none()
    })
    .await;
    drop(subscription);
    db.close().await;
}

#[tokio::test]
async fn the_service_reports_a_subscription_it_cannot_resolve() {
    let service = service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    let bad = db
        .sync_stream("list_todos", json!({"list": "l1"}))
        .subscribe()
        .await
        .unwrap();
    let unknown = db
        .sync_stream("no_such_stream", None)
        .subscribe()
        .await
        .unwrap();
    db.connect(service.connector("u1"), fast()).await.unwrap();
    until("errors reported", || {
        let status = db.status();
        status
            .for_stream("list_todos", json!({"list": "l1"}))
            .is_some_and(|s| !s.errors.is_empty())
            && status
                .for_stream("no_such_stream", None)
                .is_some_and(|s| !s.errors.is_empty())
    })
    .await;
    let status = bad.status().unwrap();
    assert_eq!(status.errors, ["parameter \"list_id\" is missing"]);
    assert!(
        status.active,
        "the stream is listed even though this subscription failed"
    );
    assert_eq!(
        unknown.status().unwrap().errors,
        ["stream \"no_such_stream\" is not defined"]
    );
    // The default stream still syncs.
    synced(&db).await;
    assert_eq!(strings(&db, LISTS).await, ["l1", "l2"]);
    db.close().await;
}

#[tokio::test]
async fn subscription_priority_overrides_the_streams_and_defaults_can_be_left_out() {
    let service = service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    let urgent = db
        .sync_stream("list_todos", json!({"list_id": "l2"}))
        .subscribe_with(SubscribeOptions::default().priority(0))
        .await
        .unwrap();
    db.connect(
        service.connector("u1"),
        fast().include_default_streams(false),
    )
    .await
    .unwrap();
    in_time(
        "the urgent subscription syncs",
        urgent.wait_for_first_sync(),
    )
    .await
    .unwrap();
    assert_eq!(strings(&db, TODOS).await, ["t3"]);
    let request = service.sync_requests().last().unwrap().clone();
    assert_eq!(request["streams"]["include_defaults"], false);
    assert_eq!(
        request["streams"]["subscriptions"][0]["override_priority"],
        0
    );
    assert_eq!(urgent.status().unwrap().priority, Some(0));
    assert!(
        strings(&db, LISTS).await.is_empty(),
        "no default streams requested"
    );
    assert!(db.status().for_stream("lists", None).is_none());
    assert!(
        db.status().last_synced_for_priority(0).is_some(),
        "priority 0 is synced"
    );
    db.close().await;
}

#[tokio::test]
async fn subscriptions_survive_a_restart() {
    let service = service().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streams.db");
    {
        let db = Database::open(&path, schema()).await.unwrap();
        let subscription = db
            .sync_stream("list_todos", json!({"list_id": "l2"}))
            .subscribe_with(SubscribeOptions::default().ttl(Duration::from_secs(3600)))
            .await
            .unwrap();
        db.connect(service.connector("u1"), fast()).await.unwrap();
        in_time("the subscription syncs", subscription.wait_for_first_sync())
            .await
            .unwrap();
        drop(subscription);
        db.close().await;
    }
    let db = Database::open(&path, schema()).await.unwrap();
    let status = db
        .status()
        .for_stream("list_todos", json!({"list_id": "l2"}))
        .cloned()
        .expect("the subscription is stored");
    assert!(status.has_explicit_subscription && status.has_synced());
    assert_eq!(
        strings(&db, TODOS).await,
        ["t3"],
        "its data is there offline"
    );
    // A handle taken after the restart finds it synced at once.
    let again = db
        .sync_stream("list_todos", json!({"list_id": "l2"}))
        .subscribe()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_millis(100), again.wait_for_first_sync())
        .await
        .expect("synced in an earlier session")
        .unwrap();
    let before = service.sync_requests().len();
    db.connect(service.connector("u1"), fast()).await.unwrap();
    until("reconnected", || service.sync_requests().len() > before).await;
    assert_eq!(
        last_requested(&service),
        json!([{"stream": "list_todos", "parameters": {"list_id": "l2"}, "override_priority": null}])
    );
    db.close().await;
}

/// TTLs on tokio's paused clock: a subscription without handles expires after its TTL,
/// one with a live handle is renewed, and an expired one is not requested any more.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_subscription_expires_after_its_ttl_once_no_handle_holds_it() {
    let db = Database::in_memory(schema()).await.unwrap();
    let ttl = SubscribeOptions::default().ttl(Duration::from_secs(60));
    let released = db
        .sync_stream("list_todos", json!({"list_id": "l1"}))
        .subscribe_with(ttl)
        .await
        .unwrap();
    let held = db
        .sync_stream("list_todos", json!({"list_id": "l2"}))
        .subscribe_with(ttl)
        .await
        .unwrap();
    let expires_before_drop = released.status().unwrap().expires_at.unwrap();

    tokio::time::advance(Duration::from_secs(30)).await;
    released.unsubscribe();
    // Dropping the last handle starts the TTL now (30 s after subscribing).
    let key = json!({"list_id": "l1"});
    let renewed = async {
        loop {
            let status = db.status();
            if let Some(s) = status.for_stream("list_todos", key.clone())
                && s.expires_at.unwrap() > expires_before_drop
            {
                return s.expires_at.unwrap();
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let renewed = in_time("the expiry moves", renewed).await;
    let moved = renewed.duration_since(expires_before_drop).unwrap();
    assert!(
        (Duration::from_secs(29)..=Duration::from_secs(31)).contains(&moved),
        "expiry moved by {moved:?}"
    );

    // 59 s after the drop: still there. (Another subscription change sweeps.)
    tokio::time::advance(Duration::from_secs(59)).await;
    let other = db.sync_stream("lists", None).subscribe().await.unwrap();
    assert!(db.status().for_stream("list_todos", key.clone()).is_some());
    // 61 s after the drop: expired and gone. The held one, subscribed 90 s ago with the
    // same TTL, is renewed because a handle holds it.
    tokio::time::advance(Duration::from_secs(2)).await;
    drop(other);
    until("the released subscription expires", || {
        db.status().for_stream("list_todos", key.clone()).is_none()
    })
    .await;
    assert!(
        held.status().is_some(),
        "a held subscription does not expire"
    );

    // A connection (on the real clock again) requests only the live subscription.
    tokio::time::resume();
    let service = service().await;
    db.connect(service.connector("u1"), fast()).await.unwrap();
    in_time("the held subscription syncs", held.wait_for_first_sync())
        .await
        .unwrap();
    let requested = last_requested(&service);
    let streams: Vec<&str> = requested
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["parameters"]["list_id"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        streams,
        ["l2", "-"],
        "l1 expired; `lists` (no parameters) is still within its TTL"
    );
    assert_eq!(strings(&db, TODOS).await, ["t3"]);
    db.close().await;
}

/// A subscription that expires while connected is noticed at the next keepalive: the
/// client reconnects without it and its data goes.
#[tokio::test]
async fn a_subscription_expiring_while_connected_is_dropped_at_a_keepalive() {
    let service = service().await;
    let db = connected(schema(), &service, "u1").await;
    let short = db
        .sync_stream("list_todos", json!({"list_id": "l2"}))
        .subscribe_with(SubscribeOptions::default().ttl(Duration::from_secs(1)))
        .await
        .unwrap();
    in_time("the short subscription syncs", short.wait_for_first_sync())
        .await
        .unwrap();
    assert_eq!(strings(&db, TODOS).await, ["t3"]);
    let requests = service.sync_requests().len();
    drop(short);
    // Nothing changes until the TTL has passed (keepalives every 100 ms meanwhile).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(service.sync_requests().len(), requests);
    eventually(&db, TODOS, &[]).await;
    assert_eq!(last_requested(&service), json!([]));
    assert!(db.status().connected);
    db.close().await;
}

/// Dropping one handle renews the expiry of every held subscription before expired ones
/// are swept: a long-held subscription is not lost when another one is released.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn releasing_one_subscription_keeps_the_others_that_are_held() {
    let db = Database::in_memory(schema()).await.unwrap();
    let ttl = SubscribeOptions::default().ttl(Duration::from_secs(60));
    let a = db.sync_stream("list_todos", json!({"list_id": "a"}));
    let b = db.sync_stream("list_todos", json!({"list_id": "b"}));
    let held = a.subscribe_with(ttl).await.unwrap();
    let released = b.subscribe_with(ttl).await.unwrap();
    tokio::time::advance(Duration::from_secs(120)).await;
    let before = released.status().unwrap().expires_at.unwrap();
    drop(released);
    until("the release is stored", || {
        b.status()
            .and_then(|s| s.expires_at)
            .is_some_and(|e| e > before)
    })
    .await;
    assert!(
        held.status().is_some(),
        "the held subscription survived the sweep"
    );
    db.close().await;
}

#[tokio::test]
async fn out_of_range_options_are_refused_and_nothing_is_stored() {
    let db = Database::in_memory(schema()).await.unwrap();
    let stream = db.sync_stream("lists", None);
    for options in [
        SubscribeOptions::default().ttl(Duration::MAX),
        SubscribeOptions::default().ttl(Duration::from_millis(10)),
        SubscribeOptions::default().priority(4),
    ] {
        let error = stream.subscribe_with(options).await.unwrap_err();
        assert!(
            matches!(error, livesync::Error::InvalidParameter(_)),
            "{error}"
        );
    }
    let error = db
        .sync_stream("lists", json!([1, 2]))
        .subscribe()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("JSON object"), "{error}");
    assert!(db.status().streams.is_empty());
    db.close().await;
}

#[tokio::test]
async fn signing_out_forgets_what_the_service_said_about_subscriptions() {
    let service = service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    let mine = db
        .sync_stream("list_todos", json!({"list_id": "l1"}))
        .subscribe()
        .await
        .unwrap();
    db.connect(service.connector("u1"), fast()).await.unwrap();
    in_time("the subscription syncs", mine.wait_for_first_sync())
        .await
        .unwrap();
    assert!(db.status().for_stream("lists", None).is_some());

    // Disconnected: no progress, and what the checkpoint said (priority) is still shown.
    db.disconnect().await;
    let after_disconnect = mine.status().unwrap();
    assert_eq!(after_disconnect.progress, None);
    assert_eq!(after_disconnect.priority, Some(3));

    db.disconnect_and_clear(false).await.unwrap();
    let status = db.status();
    assert!(
        status.for_stream("lists", None).is_none(),
        "default rows go"
    );
    let kept = mine
        .status()
        .expect("the app's explicit subscription stays");
    assert!(!kept.has_synced() && !kept.active);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), mine.wait_for_first_sync())
            .await
            .is_err(),
        "not synced for the next user yet"
    );
    assert!(strings(&db, TODOS).await.is_empty());
    db.close().await;
}

#[tokio::test]
async fn a_default_stream_the_service_cannot_resolve_reports_its_error() {
    let service = TestSyncService::builder()
        .stream(
            TestStream::per_parameter("needs_param", "todos", "list_id", "list_id")
                .auto_subscribe(),
        )
        .start()
        .await
        .unwrap();
    let db = connected(schema(), &service, "u1").await;
    until("the default stream's error", || {
        db.status()
            .for_stream("needs_param", None)
            .is_some_and(|s| s.errors == ["parameter \"list_id\" is missing"])
    })
    .await;
    db.close().await;
}

#[tokio::test]
async fn waiting_for_a_first_sync_ends_with_closed_when_the_database_closes() {
    let db = Database::in_memory(schema()).await.unwrap();
    let subscription = db
        .sync_stream("list_todos", json!({"list_id": "l1"}))
        .subscribe()
        .await
        .unwrap();
    // Never connected: both waits would last for ever, until the database closes.
    let waiting_db = tokio::spawn({
        let db = db.clone();
        async move { db.wait_for_first_sync().await }
    });
    let waiting_stream = tokio::spawn(async move {
        let result = subscription.wait_for_first_sync().await;
        (result, subscription)
    });
    tokio::task::yield_now().await;
    db.close().await;
    let result = in_time("the database's wait ends", waiting_db)
        .await
        .unwrap();
    assert!(matches!(result, Err(livesync::Error::Closed)), "{result:?}");
    let (result, subscription) = in_time("the stream's wait ends", waiting_stream)
        .await
        .unwrap();
    assert!(matches!(result, Err(livesync::Error::Closed)), "{result:?}");
    // A wait begun after close ends at once the same way.
    let again = in_time("a later wait", subscription.wait_for_first_sync()).await;
    assert!(matches!(again, Err(livesync::Error::Closed)), "{again:?}");
    let again = in_time("a later wait", db.wait_for_first_sync()).await;
    assert!(matches!(again, Err(livesync::Error::Closed)), "{again:?}");
}
