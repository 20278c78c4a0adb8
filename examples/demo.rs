//! livesync demo: two "devices" (two local SQLite databases) syncing through the
//! in-process PowerSync-protocol test service.
//!
//! Device A writes a todo, the upload goes to the service's backend, and device B's live
//! query shows it; then A goes offline, keeps writing (the writes wait in its upload
//! queue), and comes back online. Along the way it prints each device's sync status.
//!
//! Run with `cargo run --features testing --example demo`.

use std::time::Duration;

use futures::StreamExt;
use livesync::testing::{BucketRule, ParameterSource, TestSyncService};
use livesync::{Column, Database, Row, Schema, SyncOptions, SyncStatus, Table};

/// Upper bound for every wait in the demo (it never hangs).
const WAIT: Duration = Duration::from_secs(10);

#[derive(Row, Debug, Clone, PartialEq)]
#[row(table = "todos")]
struct Todo {
    id: String,
    list_id: String,
    description: String,
    done: bool,
    owner_id: String,
}

fn schema() -> Schema {
    Schema::new([
        Table::new("lists", [Column::text("name")]),
        Todo::table(),
        // Local-only state is never uploaded or overwritten by sync.
        Table::new("ui_state", [Column::text("value")]).local_only(),
    ])
}

fn describe(status: &SyncStatus) -> String {
    let mut parts = vec![if status.connected {
        "online".to_owned()
    } else if status.connecting {
        "connecting".to_owned()
    } else {
        "offline".to_owned()
    }];
    if let Some(progress) = &status.downloading {
        parts.push(format!(
            "downloading {}/{}",
            progress.downloaded, progress.total
        ));
    }
    if status.uploading {
        parts.push("uploading".to_owned());
    }
    if status.has_synced {
        parts.push("synced".to_owned());
    }
    if let Some(error) = status.any_error() {
        parts.push(format!("error: {error}"));
    }
    parts.join(", ")
}

async fn todo_count(db: &Database) -> livesync::Result<i64> {
    db.read(|conn| Ok(conn.query_row("SELECT count(*) FROM todos", [], |r| r.get(0))?))
        .await
}

/// Waits (bounded) until `db` holds `count` todos.
async fn until_todos(db: &Database, count: i64) -> livesync::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while todo_count(db).await? != count {
        if tokio::time::Instant::now() > deadline {
            return Err(livesync::Error::connector(
                "the demo timed out waiting for sync",
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> livesync::Result<()> {
    // The service: lists go to everyone, todos to their owner.
    let service = TestSyncService::builder()
        .rule(BucketRule::global("lists", ["lists"]))
        .rule(BucketRule::per_value(
            "todos_by_owner",
            "todos",
            "owner_id",
            ParameterSource::UserId,
        ))
        .start()
        .await?;
    service.upsert_row("lists", "l1", serde_json::json!({"name": "Groceries"}));
    for (id, description) in [("t1", "milk"), ("t2", "bread")] {
        service.upsert_row(
            "todos",
            id,
            serde_json::json!({"list_id": "l1", "description": description, "done": 0, "owner_id": "ada"}),
        );
    }
    service.commit();
    println!("test sync service on {}", service.url());

    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = SyncOptions::default()
        .retry_delay(Duration::from_millis(500))
        .crud_upload_throttle(Duration::from_millis(50));
    let a = Database::open(dir.path().join("device-a.db"), schema()).await?;
    let b = Database::open(dir.path().join("device-b.db"), schema()).await?;
    for (name, db) in [("A", &a), ("B", &b)] {
        db.connect(service.connector("ada"), options.clone())
            .await?;
        tokio::time::timeout(WAIT, db.wait_for_first_sync())
            .await
            .map_err(|_| livesync::Error::connector("first sync timed out"))??;
        println!(
            "device {name}: {} ({} todos)",
            describe(&db.status()),
            todo_count(db).await?
        );
    }

    // Device B renders a live query: it re-runs whenever synced data changes.
    let mut live = b.query::<Todo>("SELECT * FROM todos ORDER BY id").watch();
    let renderer = tokio::spawn(async move {
        while let Some(Ok(todos)) = live.next().await {
            let shown: Vec<String> = todos
                .iter()
                .map(|t| format!("{}{}", if t.done { "[x] " } else { "[ ] " }, t.description))
                .collect();
            println!("  device B renders: {}", shown.join(" | "));
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    println!("\ndevice A adds a todo and completes another");
    a.execute(
        "INSERT INTO todos(id, list_id, description, done, owner_id) VALUES ('t3', 'l1', 'coffee', 0, 'ada')",
        (),
    )
    .await?;
    a.execute("UPDATE todos SET done = 1 WHERE id = 't1'", ())
        .await?;
    until_todos(&b, 3).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("backend received {} upload(s)", service.uploads().len());

    println!("\ndevice A goes offline and keeps working");
    a.disconnect().await;
    a.execute(
        "INSERT INTO todos(id, list_id, description, done, owner_id) VALUES ('t4', 'l1', 'tea (written offline)', 0, 'ada')",
        (),
    )
    .await?;
    a.execute(
        "INSERT INTO ui_state(id, value) VALUES ('selected_list', 'l1')",
        (),
    )
    .await?;
    let queue = a.upload_queue_stats().await?;
    println!(
        "device A: {}; {} write(s) ({} bytes) wait for upload",
        describe(&a.status()),
        queue.count,
        queue.size_bytes
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("device B still shows {} todos", todo_count(&b).await?);

    println!("\ndevice A comes back online");
    a.connect(service.connector("ada"), options).await?;
    until_todos(&b, 4).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("device A: {}", describe(&a.status()));
    println!("device B: {}", describe(&b.status()));

    a.close().await;
    b.close().await;
    renderer.abort();
    service.shutdown().await;
    Ok(())
}
