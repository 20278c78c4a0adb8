//! The sync engine against the in-process `TestSyncService`, through the public API only.
#![cfg(feature = "testing")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use livesync::testing::{BucketRule, ParameterSource, TestConnector, TestSyncService};
use livesync::{BackendConnector, Column, Credentials, Database, Error, Row, Schema, Table};
use serde_json::json;

mod common;

use common::strings;
use common::sync::{connected, delivered, fast, synced};
use common::wait::{WAIT, eventually, in_time, until};

fn schema() -> Schema {
    Schema::new([
        Table::new("lists", [Column::text("name")]),
        Table::new(
            "todos",
            [
                Column::text("description"),
                Column::integer("done"),
                Column::text("owner_id"),
            ],
        ),
    ])
}

/// `lists` go to everyone (bucket `lists[]`), `todos` to their owner (`by_owner["<user>"]`).
async fn service() -> TestSyncService {
    TestSyncService::builder()
        .rule(BucketRule::global("lists", ["lists"]))
        .rule(BucketRule::per_value(
            "by_owner",
            "todos",
            "owner_id",
            ParameterSource::UserId,
        ))
        .keepalive_interval(Duration::from_millis(200))
        .start()
        .await
        .expect("service starts")
}

const TODOS: &str = "SELECT id || ':' || ifnull(description, 'NULL') FROM todos ORDER BY id";
const LISTS: &str = "SELECT id || ':' || name FROM lists ORDER BY id";

fn seed(service: &TestSyncService) {
    service.upsert_row("lists", "l1", json!({"name": "groceries"}));
    service.upsert_row("lists", "l2", json!({"name": "chores"}));
    service.upsert_row(
        "todos",
        "t1",
        json!({"description": "milk", "owner_id": "u1"}),
    );
    service.upsert_row(
        "todos",
        "t2",
        json!({"description": "bread", "owner_id": "u1"}),
    );
    service.upsert_row(
        "todos",
        "t3",
        json!({"description": "not yours", "owner_id": "u2"}),
    );
    service.commit();
}

#[tokio::test]
async fn initial_sync_brings_every_table_and_bucket_of_the_user() {
    let service = service().await;
    seed(&service);
    let db = Database::in_memory(schema()).await.unwrap();
    let mut statuses = db.watch_status();
    db.connect(service.connector("u1"), fast().app_metadata("app", "tests"))
        .await
        .unwrap();
    synced(&db).await;
    assert_eq!(strings(&db, LISTS).await, ["l1:groceries", "l2:chores"]);
    assert_eq!(strings(&db, TODOS).await, ["t1:milk", "t2:bread"]);

    let status = db.status();
    assert!(status.connected && status.has_synced && status.last_synced_at.is_some());
    assert!(status.download_error.is_none() && status.downloading.is_none());
    // The status went through connecting → downloading (with progress) → synced.
    let mut seen_connecting = false;
    let mut seen_progress = None;
    for status in delivered(&mut statuses).await {
        seen_connecting |= status.connecting;
        if let Some(progress) = status.downloading {
            seen_progress = Some(progress);
        }
    }
    assert!(seen_connecting);
    let progress = seen_progress.expect("a progress report");
    assert_eq!(progress.total, 4, "2 lists + 2 todos of u1");

    let request = &service.sync_requests()[0];
    assert_eq!(request["buckets"], json!([]));
    assert_eq!(request["client_id"], db.client_id().await.unwrap());
    assert_eq!(request["raw_data"], true);
    assert_eq!(request["app_metadata"], json!({"app": "tests"}));
    db.close().await;
}

#[tokio::test]
async fn live_changes_removals_clears_and_compaction_arrive() {
    let service = service().await;
    seed(&service);
    let db = connected(schema(), &service, "u1").await;
    synced(&db).await;
    let mut todo_changes = db.watch_tables(["todos"]);

    service.upsert_row(
        "todos",
        "t4",
        json!({"description": "eggs", "owner_id": "u1"}),
    );
    service.upsert_row(
        "todos",
        "t1",
        json!({"description": "oat milk", "owner_id": "u1"}),
    );
    service.commit();
    eventually(&db, TODOS, &["t1:oat milk", "t2:bread", "t4:eggs"]).await;
    let event = in_time("a change of todos", todo_changes.next())
        .await
        .unwrap();
    assert!(event.contains("todos"));

    // A row moving to another user's bucket is REMOVEd from ours.
    service.upsert_row(
        "todos",
        "t2",
        json!({"description": "bread", "owner_id": "u2"}),
    );
    service.delete_row("todos", "t4");
    service.commit();
    eventually(&db, TODOS, &["t1:oat milk"]).await;

    // Compaction turns superseded ops into MOVEs: a fresh client still validates.
    service.compact("by_owner[\"u1\"]");
    let fresh = connected(schema(), &service, "u1").await;
    synced(&fresh).await;
    assert_eq!(strings(&fresh, TODOS).await, ["t1:oat milk"]);

    service.clear_bucket("lists[]");
    service.commit();
    eventually(&db, LISTS, &[]).await;
    eventually(&fresh, LISTS, &[]).await;
    assert!(db.status().download_error.is_none(), "{:?}", db.status());
    db.close().await;
    fresh.close().await;
}

#[tokio::test]
async fn a_local_write_is_uploaded_and_replaced_by_the_server_version() {
    let service = service().await;
    seed(&service);
    let db = connected(schema(), &service, "u1").await;
    synced(&db).await;

    db.execute(
        "INSERT INTO todos(id, description, owner_id) VALUES ('mine', 'local', 'u1')",
        (),
    )
    .await
    .unwrap();
    assert_eq!(
        strings(&db, TODOS).await,
        ["mine:local", "t1:milk", "t2:bread"]
    );
    until("the upload reached the backend", || {
        service.rows("todos").iter().any(|r| r["id"] == "mine")
    })
    .await;
    until("the queue drained", || true).await;
    let upload = &service.uploads()[0];
    assert_eq!(upload["batch"][0]["op"], "PUT");
    assert_eq!(upload["batch"][0]["data"]["description"], "local");

    // The backend changes the row afterwards; the server's version replaces ours.
    service.upsert_row(
        "todos",
        "mine",
        json!({"description": "edited on server", "owner_id": "u1"}),
    );
    service.commit();
    eventually(
        &db,
        TODOS,
        &["mine:edited on server", "t1:milk", "t2:bread"],
    )
    .await;
    assert!(db.get_next_crud_transaction().await.unwrap().is_none());
    let status = db.status();
    assert!(!status.uploading && status.upload_error.is_none());
    db.close().await;
}

#[tokio::test]
async fn a_write_the_backend_rejects_reverts_after_the_round_trip() {
    let service = service().await;
    seed(&service);
    service.reject_uploads_to("lists");
    let db = connected(schema(), &service, "u1").await;
    synced(&db).await;
    db.execute("UPDATE lists SET name = 'renamed' WHERE id = 'l1'", ())
        .await
        .unwrap();
    db.execute("INSERT INTO lists(id, name) VALUES ('l9', 'new')", ())
        .await
        .unwrap();
    assert_eq!(
        strings(&db, LISTS).await,
        ["l1:renamed", "l2:chores", "l9:new"]
    );
    eventually(&db, LISTS, &["l1:groceries", "l2:chores"]).await;
    db.close().await;
}

/// A connector whose uploads wait until the test opens its gate.
struct HeldUploads {
    inner: TestConnector,
    open: Arc<AtomicBool>,
}

impl BackendConnector for HeldUploads {
    async fn fetch_credentials(&self) -> livesync::Result<Credentials> {
        self.inner.fetch_credentials().await
    }

    async fn upload_data(&self, db: &Database) -> livesync::Result<()> {
        if !self.open.load(Ordering::SeqCst) {
            return Err(Error::connector("backend unreachable"));
        }
        self.inner.upload_data(db).await
    }
}

#[tokio::test]
async fn downloaded_data_waits_while_local_writes_are_pending() {
    let service = service().await;
    seed(&service);
    let open = Arc::new(AtomicBool::new(false));
    let db = Database::in_memory(schema()).await.unwrap();
    let connector = HeldUploads {
        inner: service.connector("u1"),
        open: Arc::clone(&open),
    };
    db.connect(connector, fast()).await.unwrap();
    synced(&db).await;

    db.execute("UPDATE todos SET description = 'mine' WHERE id = 't1'", ())
        .await
        .unwrap();
    service.upsert_row(
        "todos",
        "t5",
        json!({"description": "from server", "owner_id": "u1"}),
    );
    let checkpoint = service.commit();
    until("the upload failed at least once", || {
        db.status().upload_error.is_some()
    })
    .await;
    // The service's checkpoint is downloaded and validated, but not applied.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let requested = db
            .read(|c| {
                Ok(c.query_row("SELECT max(last_op) FROM ps_buckets", [], |r| {
                    r.get::<_, i64>(0)
                })?)
            })
            .await
            .unwrap();
        if requested >= checkpoint {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "checkpoint never downloaded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(strings(&db, TODOS).await, ["t1:mine", "t2:bread"]);
    let error = db.status().upload_error.unwrap();
    assert!(error.to_string().contains("backend unreachable"), "{error}");

    open.store(true, Ordering::SeqCst);
    eventually(&db, TODOS, &["t1:mine", "t2:bread", "t5:from server"]).await;
    until("the upload error cleared", || {
        db.status().upload_error.is_none()
    })
    .await;
    assert_eq!(service.rows("todos")[0]["description"], "mine");
    db.close().await;
}

#[tokio::test]
async fn a_checksum_mismatch_is_reported_and_the_bucket_downloaded_again() {
    let service = service().await;
    seed(&service);
    service.corrupt_next_checksum("lists[]");
    let db = Database::in_memory(schema()).await.unwrap();
    let mut statuses = db.watch_status();
    db.connect(service.connector("u1"), fast()).await.unwrap();
    synced(&db).await;
    assert_eq!(strings(&db, LISTS).await, ["l1:groceries", "l2:chores"]);
    let mut reported = false;
    for status in delivered(&mut statuses).await {
        if let Some(error) = status.download_error {
            reported |= matches!(error.error(), Error::ChecksumMismatch(b) if b == "lists[]");
        }
    }
    assert!(reported, "the mismatch shows up as the download error");
    let requests = service.sync_requests();
    assert!(requests.len() >= 2);
    // The retry no longer lists the bad bucket, so it is downloaded from scratch.
    let names: Vec<&str> = requests[1]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["by_owner[\"u1\"]"]);
    db.close().await;
}

#[tokio::test]
async fn a_dropped_connection_resumes_after_the_last_stored_op() {
    let service = TestSyncService::builder()
        .rule(BucketRule::global("lists", ["lists"]))
        .ops_per_line(10)
        .start()
        .await
        .unwrap();
    for i in 0..100 {
        service.upsert_row(
            "lists",
            &format!("l{i:03}"),
            json!({"name": format!("list {i}")}),
        );
    }
    service.commit();
    // checkpoint + 3 data lines, then the connection is reset.
    service.drop_next_connection_after(4);
    let db = connected(schema(), &service, "u1").await;
    synced(&db).await;
    assert_eq!(strings(&db, "SELECT count(*) FROM lists").await, ["100"]);
    let requests = service.sync_requests();
    assert!(requests.len() >= 2, "{requests:?}");
    assert_eq!(requests[0]["buckets"], json!([]));
    assert_eq!(
        requests[1]["buckets"],
        json!([{"name": "lists[]", "after": "30"}])
    );
    assert_eq!(service.ops_sent(), 100, "no op is downloaded twice");
    let error = db.status();
    assert!(
        error.download_error.is_none(),
        "cleared by the applied checkpoint"
    );
    db.close().await;
}

#[tokio::test]
async fn expired_and_refused_tokens_are_fetched_again() {
    let service = service().await;
    seed(&service);
    let connector = service.connector("u1");
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(connector.clone(), fast()).await.unwrap();
    synced(&db).await;
    assert_eq!(connector.credentials_fetched(), 1, "credentials are cached");

    service.expire_tokens();
    until("reconnected with a new token", || {
        connector.credentials_fetched() >= 2 && service.open_streams() == 1
    })
    .await;
    assert!(connector.credentials_invalidated() >= 1);

    // A change arriving proves the new stream is live (and hears the next expiry).
    service.upsert_row("lists", "l3", json!({"name": "after expiry"}));
    service.commit();
    eventually(
        &db,
        LISTS,
        &["l1:groceries", "l2:chores", "l3:after expiry"],
    )
    .await;

    service.fail_next_requests(1, 401);
    service.expire_tokens();
    service.upsert_row("lists", "l4", json!({"name": "after 401"}));
    service.commit();
    eventually(
        &db,
        LISTS,
        &[
            "l1:groceries",
            "l2:chores",
            "l3:after expiry",
            "l4:after 401",
        ],
    )
    .await;
    // Expiry, then the refused request: each drops the token and fetches a new one.
    until("credentials fetched after the expiry and the 401", || {
        connector.credentials_fetched() >= 4 && connector.credentials_invalidated() >= 3
    })
    .await;
    db.close().await;
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_without_a_visible_disconnect() {
    let service = service().await;
    seed(&service);
    // Every keepalive reports < 30 s left, so each one triggers a refresh.
    let connector = service
        .connector("u1")
        .with_token_lifetime(Duration::from_secs(20));
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(connector.clone(), fast()).await.unwrap();
    synced(&db).await;
    let mut statuses = db.watch_status();
    until("refreshed twice", || connector.credentials_fetched() >= 3).await;
    for status in delivered(&mut statuses).await {
        assert!(
            status.connected || status.connecting,
            "no disconnect shown: {status:?}"
        );
        assert!(status.download_error.is_none());
    }
    db.close().await;
}

#[tokio::test]
async fn server_errors_and_malformed_lines_are_reported_then_retried() {
    let service = service().await;
    seed(&service);
    service.fail_next_requests(2, 500);
    let db = Database::in_memory(schema()).await.unwrap();
    let mut statuses = db.watch_status();
    db.connect(service.connector("u1"), fast()).await.unwrap();
    synced(&db).await;
    let mut saw_500 = false;
    for status in delivered(&mut statuses).await {
        if let Some(error) = &status.download_error {
            saw_500 |= matches!(error.error(), Error::HttpStatus { status: 500, .. });
        }
    }
    assert!(saw_500, "the 500 shows up as the download error");

    let mut statuses = db.watch_status();
    let before = service.sync_requests().len();
    service.send_malformed_line();
    until("reconnected after the bad line", || {
        service.sync_requests().len() > before
    })
    .await;
    let mut saw_protocol_error = false;
    for status in delivered(&mut statuses).await {
        if let Some(error) = &status.download_error {
            saw_protocol_error |= matches!(error.error(), Error::Protocol(_));
        }
    }
    assert!(
        saw_protocol_error,
        "the bad line shows up as the download error"
    );
    service.upsert_row("lists", "l3", json!({"name": "later"}));
    service.commit();
    eventually(&db, LISTS, &["l1:groceries", "l2:chores", "l3:later"]).await;
    assert!(db.status().download_error.is_none());
    db.close().await;
}

#[tokio::test]
async fn disconnect_stops_everything_and_clear_forgets_the_user() {
    let service = service().await;
    seed(&service);
    let db = connected(schema(), &service, "u1").await;
    synced(&db).await;
    until("stream open", || service.open_streams() == 1).await;
    db.disconnect().await;
    until("stream closed", || service.open_streams() == 0).await;
    let status = db.status();
    assert!(!status.connected && !status.connecting && status.has_synced);

    // Offline writes queue up and go out at the next connect.
    db.execute(
        "INSERT INTO lists(id, name) VALUES ('offline', 'made offline')",
        (),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        service.uploads().is_empty(),
        "nothing uploads while disconnected"
    );
    db.connect(service.connector("u1"), fast()).await.unwrap();
    until("offline write uploaded", || !service.uploads().is_empty()).await;
    eventually(
        &db,
        LISTS,
        &["l1:groceries", "l2:chores", "offline:made offline"],
    )
    .await;

    db.disconnect_and_clear(false).await.unwrap();
    assert!(strings(&db, LISTS).await.is_empty());
    assert!(strings(&db, "SELECT name FROM ps_buckets").await.is_empty());
    assert!(!db.status().has_synced);
    until("stream closed", || service.open_streams() == 0).await;

    // Signing in again downloads everything from scratch.
    db.connect(service.connector("u1"), fast()).await.unwrap();
    synced(&db).await;
    assert_eq!(strings(&db, LISTS).await.len(), 3);
    let last = service.sync_requests().pop().unwrap();
    assert_eq!(last["buckets"], json!([]));
    db.close().await;
}

#[tokio::test]
async fn two_clients_writing_concurrently_converge() {
    let service = service().await;
    seed(&service);
    let a = connected(schema(), &service, "u1").await;
    let b = connected(schema(), &service, "u1").await;
    synced(&a).await;
    synced(&b).await;
    let write = |db: Database, prefix: &'static str| async move {
        for i in 0..20 {
            db.execute(
                "INSERT INTO todos(id, description, owner_id) VALUES (?1, ?2, 'u1')",
                (format!("{prefix}{i:02}"), format!("by {prefix}")),
            )
            .await
            .unwrap();
            db.execute(
                "UPDATE lists SET name = ?1 WHERE id = 'l1'",
                [format!("{prefix} {i}")],
            )
            .await
            .unwrap();
        }
    };
    tokio::join!(write(a.clone(), "a"), write(b.clone(), "b"));
    until("both queues uploaded", || service.uploads().len() >= 80).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (rows_a, rows_b) = (
            strings(&a, "SELECT id || description FROM todos UNION ALL SELECT id || name FROM lists ORDER BY 1").await,
            strings(&b, "SELECT id || description FROM todos UNION ALL SELECT id || name FROM lists ORDER BY 1").await,
        );
        if rows_a == rows_b && rows_a.len() == 2 + 40 + 2 {
            let server_l1 = service.rows("lists")[0]["name"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                rows_a.contains(&format!("l1{server_l1}")),
                "the backend's last write wins"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{rows_a:?} vs {rows_b:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.close().await;
    b.close().await;
}

#[derive(Row, Debug, PartialEq)]
struct Todo {
    id: String,
    description: String,
}

#[tokio::test]
async fn a_live_query_on_one_client_shows_what_another_client_wrote() {
    let service = service().await;
    seed(&service);
    let a = connected(schema(), &service, "u1").await;
    let b = connected(schema(), &service, "u1").await;
    synced(&b).await;
    let mut live = b
        .query::<Todo>("SELECT id, description FROM todos ORDER BY id")
        .watch();
    let first = in_time("the live query's first result", live.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.len(), 2);

    a.execute(
        "INSERT INTO todos(id, description, owner_id) VALUES ('from-a', 'written on A', 'u1')",
        (),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows = tokio::time::timeout_at(deadline, live.next())
            .await
            .expect("B's live query emits A's row")
            .unwrap()
            .unwrap();
        if rows.iter().any(|t| t.id == "from-a") {
            assert_eq!(rows[0].description, "written on A");
            break;
        }
    }
    a.close().await;
    b.close().await;
}

/// A connector that counts how many handles to it are alive.
struct Tracked {
    inner: TestConnector,
    /// Never read: only its reference count matters.
    _alive: Arc<()>,
}

impl BackendConnector for Tracked {
    async fn fetch_credentials(&self) -> livesync::Result<Credentials> {
        self.inner.fetch_credentials().await
    }

    async fn upload_data(&self, db: &Database) -> livesync::Result<()> {
        self.inner.upload_data(db).await
    }
}

#[tokio::test]
async fn disconnect_leaves_no_task_behind() {
    let service = service().await;
    seed(&service);
    let alive = Arc::new(());
    let db = Database::in_memory(schema()).await.unwrap();
    let connector = Tracked {
        inner: service.connector("u1"),
        _alive: Arc::clone(&alive),
    };
    db.connect(connector, fast()).await.unwrap();
    synced(&db).await;
    assert_eq!(
        Arc::strong_count(&alive),
        2,
        "the running tasks hold the connector"
    );
    db.disconnect().await;
    // Both loops ended (and dropped the connector) before disconnect returned.
    assert_eq!(Arc::strong_count(&alive), 1);
    assert_eq!(
        db.active_watchers(),
        0,
        "the upload loop's queue watcher is gone"
    );
    db.close().await;
}

#[tokio::test]
async fn a_silent_stream_is_reopened_after_the_idle_timeout() {
    let service = TestSyncService::builder()
        .rule(BucketRule::global("lists", ["lists"]))
        .keepalive_interval(Duration::from_secs(600))
        .start()
        .await
        .unwrap();
    seed(&service);
    let db = Database::in_memory(schema()).await.unwrap();
    let mut statuses = db.watch_status();
    db.connect(
        service.connector("u1"),
        fast().idle_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    synced(&db).await;
    until("reconnected after silence", || {
        service.sync_requests().len() >= 2
    })
    .await;
    let mut idle = false;
    for status in delivered(&mut statuses).await {
        if let Some(error) = status.download_error {
            idle |= matches!(error.error(), Error::StreamIdle(_));
        }
    }
    assert!(idle, "the silence is reported");
    db.close().await;
}

/// A backend that creates its own write checkpoints (as with PowerSync's custom write
/// checkpoints): it uploads, obtains a checkpoint id, and completes with it.
struct CustomCheckpoints {
    inner: TestConnector,
    url: String,
    token: String,
    used: Arc<std::sync::Mutex<Vec<i64>>>,
}

impl BackendConnector for CustomCheckpoints {
    async fn fetch_credentials(&self) -> livesync::Result<Credentials> {
        self.inner.fetch_credentials().await
    }

    async fn upload_data(&self, db: &Database) -> livesync::Result<()> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let client_id = db.client_id().await?;
        while let Some(tx) = db.get_next_crud_transaction().await? {
            let batch: Vec<_> = tx.crud.iter().map(|e| e.to_json()).collect();
            let auth = format!("Token {}", self.token);
            let sent = http
                .post(format!("{}/upload", self.url))
                .header("Authorization", &auth)
                .json(&json!({"client_id": client_id, "batch": batch}))
                .send()
                .await;
            assert!(sent.unwrap().status().is_success());
            let body: serde_json::Value = http
                .get(format!(
                    "{}/write-checkpoint2.json?client_id={client_id}",
                    self.url
                ))
                .header("Authorization", &auth)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let checkpoint: i64 = body["data"]["write_checkpoint"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            self.used.lock().unwrap().push(checkpoint);
            tx.complete_with_checkpoint(checkpoint).await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_custom_write_checkpoint_opens_the_gate_once_it_is_synced() {
    let service = service().await;
    seed(&service);
    let used = Arc::new(std::sync::Mutex::new(Vec::new()));
    let db = Database::in_memory(schema()).await.unwrap();
    let connector = CustomCheckpoints {
        inner: service.connector("u1"),
        url: service.url(),
        token: service.token("u1"),
        used: Arc::clone(&used),
    };
    db.connect(connector, fast()).await.unwrap();
    synced(&db).await;
    db.execute("INSERT INTO lists(id, name) VALUES ('l7', 'custom')", ())
        .await
        .unwrap();
    until("the backend created a checkpoint", || {
        !used.lock().unwrap().is_empty()
    })
    .await;
    let expected = used.lock().unwrap()[0].to_string();
    eventually(
        &db,
        "SELECT value FROM ps_kv WHERE key = 'last_applied_checkpoint_request_id'",
        &[&expected],
    )
    .await;
    assert_eq!(used.lock().unwrap().len(), 1);
    let kv = strings(
        &db,
        "SELECT key || '=' || value FROM ps_kv WHERE key LIKE '%checkpoint%' ORDER BY key",
    )
    .await;
    let cp = used.lock().unwrap()[0];
    assert_eq!(
        kv,
        [
            format!("last_applied_checkpoint_request_id={cp}"),
            format!("last_seen_checkpoint_request_id={cp}"),
            format!("target_checkpoint_request_id={cp}"),
        ],
        "the client used the backend's checkpoint, not one of its own"
    );
    eventually(&db, LISTS, &["l1:groceries", "l2:chores", "l7:custom"]).await;
    db.close().await;
}

#[tokio::test]
async fn a_high_priority_bucket_is_visible_before_a_large_low_priority_one_finishes() {
    let service = TestSyncService::builder()
        .rule(BucketRule::global("lists", ["lists"]))
        .rule(BucketRule::per_value(
            "by_owner",
            "todos",
            "owner_id",
            ParameterSource::UserId,
        ))
        .priority("lists", 0)
        .ops_per_line(1)
        .start()
        .await
        .unwrap();
    service.upsert_row("lists", "l1", json!({"name": "urgent"}));
    for i in 0..40 {
        service.upsert_row(
            "todos",
            &format!("t{i:02}"),
            json!({"description": "bulk", "owner_id": "u1"}),
        );
    }
    service.commit();
    service.set_line_delay(Duration::from_millis(10));
    let db = connected(schema(), &service, "u1").await;
    eventually(&db, LISTS, &["l1:urgent"]).await;
    let todos_then = strings(&db, "SELECT count(*) FROM todos").await;
    assert_eq!(
        todos_then,
        ["0"],
        "the low-priority bucket is not applied yet"
    );
    let status = db.status();
    assert!(!status.has_synced);
    assert!(status.last_synced_for_priority(0).is_some(), "{status:?}");
    assert!(status.last_synced_for_priority(3).is_none());
    let progress = status.downloading.expect("still downloading");
    let first = progress.until_priority(0);
    assert_eq!((first.downloaded, first.total), (1, 1));
    assert!(
        progress.total == 41 && progress.downloaded < 41,
        "{progress:?}"
    );

    service.set_line_delay(Duration::ZERO);
    synced(&db).await;
    assert_eq!(strings(&db, "SELECT count(*) FROM todos").await, ["40"]);
    assert_eq!(
        db.status().priority_status.len(),
        1,
        "a full sync supersedes the partial one"
    );
    db.close().await;
}

#[tokio::test]
async fn download_progress_counts_every_data_line_as_soon_as_it_is_handled() {
    let service = TestSyncService::builder()
        .rule(BucketRule::global("todos", ["todos"]))
        .ops_per_line(1)
        .start()
        .await
        .unwrap();
    let db = connected(schema(), &service, "u1").await;
    synced(&db).await;
    // Bursts of ten lines of one op each, then a pause before checkpoint_complete: the
    // client has every data line and nothing else comes for a while. (Three bursts: the
    // first may overlap the connect-time upload rounds, whose end also counts progress.)
    for burst in 1..=3 {
        service.hold_checkpoint_completes(true);
        for i in 0..10 {
            let id = format!("b{burst}-{i}");
            service.put("todos", "todos", &id, json!({"description": "x"}));
        }
        service.commit();
        until(
            "progress reaches 10 of 10 while checkpoint_complete is held",
            || {
                db.status()
                    .downloading
                    .is_some_and(|p| (p.downloaded, p.total) == (10, 10))
            },
        )
        .await;
        let before = ((burst - 1) * 10).to_string();
        assert_eq!(strings(&db, "SELECT count(*) FROM todos").await, [before]);
        service.hold_checkpoint_completes(false);
        let after = (burst * 10).to_string();
        eventually(&db, "SELECT count(*) FROM todos", &[after.as_str()]).await;
        until("the download is over", || db.status().downloading.is_none()).await;
    }
}

#[tokio::test]
async fn the_first_write_after_a_quiet_period_uploads_at_once_and_a_burst_waits_for_the_throttle() {
    let service = service().await;
    // A throttle far longer than any wait of this test: a write that waited for it
    // could not arrive in time.
    let throttle = Duration::from_secs(3600);
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(
        service.connector("u1"),
        fast().crud_upload_throttle(throttle),
    )
    .await
    .unwrap();
    synced(&db).await;
    let insert = |id: &'static str| {
        let db = db.clone();
        async move {
            db.execute(
                "INSERT INTO todos(id, description, owner_id) VALUES (?1, 'x', 'u1')",
                (id,),
            )
            .await
            .unwrap();
        }
    };
    // The round made at connect time uploaded nothing: it leaves no throttle window.
    insert("first").await;
    until("the first write reached the backend", || {
        service.rows("todos").iter().any(|r| r["id"] == "first")
    })
    .await;
    // The round goes on while entries remain: wait until it is over, so the next write
    // is not simply taken by it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while db.upload_queue_stats().await.unwrap().count > 0 || db.status().uploading {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload round ends"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A round that uploaded something does: the next write waits for the throttle.
    insert("second").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !service.rows("todos").iter().any(|r| r["id"] == "second"),
        "uploaded within the throttle window"
    );
    assert_eq!(db.upload_queue_stats().await.unwrap().count, 1);
    db.close().await;
}

#[tokio::test]
async fn a_line_over_the_configured_cap_is_refused_naming_the_option() {
    let service = service().await;
    service.upsert_row("lists", "big", json!({"name": "x".repeat(4000)}));
    service.commit();
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(service.connector("u1"), fast().max_line_bytes(2000))
        .await
        .unwrap();
    until("the long line is refused", || {
        db.status().download_error.is_some()
    })
    .await;
    let message = db.status().download_error.unwrap().to_string();
    assert!(
        message.contains("exceeded 2000 bytes") && message.contains("max_line_bytes"),
        "{message}"
    );
    assert_eq!(strings(&db, "SELECT count(*) FROM lists").await, ["0"]);
    db.close().await;

    // The default cap takes it.
    let db = connected(schema(), &service, "u1").await;
    synced(&db).await;
    assert_eq!(strings(&db, "SELECT count(*) FROM lists").await, ["1"]);
}

#[tokio::test]
async fn a_row_whose_data_is_not_json_is_refused_and_the_table_stays_readable() {
    let service = service().await;
    seed(&service);
    let db = connected(schema(), &service, "u1").await;
    synced(&db).await;
    let mut lists = db
        .query::<String>("SELECT name FROM lists ORDER BY id")
        .throttle(Duration::ZERO)
        .watch();
    assert_eq!(
        in_time("the first result", lists.next())
            .await
            .unwrap()
            .unwrap(),
        ["groceries", "chores"]
    );
    // A lone surrogate escape inside JSON text: SQLite would store it and fail to
    // read the table back.
    service.inject_line(
        r#"{"data":{"bucket":"lists[]","data":[{"op_id":"900","op":"PUT","object_type":"lists","object_id":"bad","checksum":1,"data":"{\"name\":\"\\ud800\"}"}]}}"#,
    );
    until("the line is refused", || {
        db.status()
            .download_error
            .is_some_and(|e| e.to_string().contains("op 900"))
    })
    .await;
    let message = db.status().download_error.unwrap().to_string();
    assert!(message.contains(r#"bucket "lists[]""#), "{message}");
    assert!(
        !message.contains("ud800"),
        "no row data in the message: {message}"
    );
    assert_eq!(strings(&db, LISTS).await, ["l1:groceries", "l2:chores"]);
    // The client reconnects and goes on syncing.
    service.upsert_row("lists", "l3", json!({"name": "later"}));
    service.commit();
    eventually(&db, LISTS, &["l1:groceries", "l2:chores", "l3:later"]).await;
    until("the error clears", || db.status().download_error.is_none()).await;
    // The live query never failed.
    let mut last = None;
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(200), lists.next()).await
    {
        last = Some(item.expect("a readable table"));
    }
    assert_eq!(last.unwrap(), ["groceries", "chores", "later"]);
    db.close().await;
}

#[tokio::test]
async fn a_download_error_clears_as_soon_as_the_next_connection_delivers_a_line() {
    let service = service().await;
    seed(&service);
    service.fail_next_requests(1, 503);
    // The retry's checkpoint is held back: only its first lines arrive.
    service.hold_checkpoint_completes(true);
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(
        service.connector("u1"),
        fast().retry_delay(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    until("the refused request is reported", || {
        db.status().download_error.is_some()
    })
    .await;
    until("the next connection's first line clears it", || {
        let status = db.status();
        status.download_error.is_none() && status.connected
    })
    .await;
    assert!(
        !db.status().has_synced,
        "cleared before any checkpoint completed"
    );
    service.hold_checkpoint_completes(false);
    synced(&db).await;
    db.close().await;
}
