//! Runs a `TestSyncService` as a process, for clients that are not Rust (the official
//! PowerSync Node.js client in our conformance test) or for poking at it by hand.
//!
//! ```text
//! cargo run --example test_service --features testing
//! ```
//!
//! Bucket rules: every `lists` row goes to `global[]` (every user gets it); a `todos` row goes to
//! `by_owner[<owner_id>]`, delivered to the user with that id. Sync stream `list_todos`
//! (parameter `list_id`) delivers every todo of one list, whoever owns it. A few rows are
//! seeded.
//!
//! It prints one JSON line `{"url": ..., "token": ...}` (a token for user `u1`), then
//! reads one JSON command per line on stdin and answers each with one JSON line:
//!
//! - `{"cmd": "upsert", "table": "todos", "id": "t9", "row": {...}}` — stage a row write
//! - `{"cmd": "delete", "table": "todos", "id": "t9"}` — stage a row delete
//! - `{"cmd": "commit"}` — publish staged changes as one checkpoint → `{"checkpoint": n}`
//! - `{"cmd": "rows", "table": "todos"}` — the service's rows → `{"rows": [...]}`
//! - `{"cmd": "token", "user": "u2"}` → `{"token": ...}`
//! - `{"cmd": "stats"}` → `{"sync_requests": n, "uploads": n, "ops_sent": n}`
//! - `{"cmd": "corrupt", "bucket": "global[]"}` — the next checkpoint misreports its checksum
//! - `{"cmd": "last_request"}` → `{"request": <body of the latest /sync/stream request>}`
//!
//! It stops at end of input.

use livesync::testing::{BucketRule, ParameterSource, TestStream, TestSyncService};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = TestSyncService::builder()
        .rule(BucketRule::global("global", ["lists"]))
        .rule(BucketRule::per_value(
            "by_owner",
            "todos",
            "owner_id",
            ParameterSource::UserId,
        ))
        .stream(TestStream::per_parameter(
            "list_todos",
            "todos",
            "list_id",
            "list_id",
        ))
        .start()
        .await?;
    service.upsert_row(
        "lists",
        "l1",
        json!({"name": "Groceries", "owner_id": "u1"}),
    );
    service.upsert_row("lists", "l2", json!({"name": "Chores", "owner_id": "u1"}));
    service.upsert_row(
        "todos",
        "t1",
        json!({"list_id": "l1", "description": "milk", "done": 0, "owner_id": "u1"}),
    );
    service.upsert_row(
        "todos",
        "t2",
        json!({"list_id": "l2", "description": "dishes", "done": 1, "owner_id": "u1"}),
    );
    service.upsert_row(
        "todos",
        "t3",
        json!({"list_id": "l1", "description": "someone else's", "done": 0, "owner_id": "u2"}),
    );
    service.commit();
    println!(
        "{}",
        json!({"url": service.url(), "token": service.token("u1")})
    );

    let mut input = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = input.next_line().await? {
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(command) => run(&service, &command),
            Err(error) => json!({"error": format!("not JSON: {error}")}),
        };
        println!("{reply}");
    }
    service.shutdown().await;
    Ok(())
}

fn run(service: &TestSyncService, command: &Value) -> Value {
    let text = |key: &str| command[key].as_str().unwrap_or_default();
    match text("cmd") {
        "upsert" => {
            service.upsert_row(text("table"), text("id"), command["row"].clone());
            json!({"ok": true})
        }
        "delete" => {
            service.delete_row(text("table"), text("id"));
            json!({"ok": true})
        }
        "commit" => json!({"checkpoint": service.commit()}),
        "rows" => json!({"rows": service.rows(text("table"))}),
        "token" => json!({"token": service.token(text("user"))}),
        "stats" => json!({
            "sync_requests": service.sync_requests().len(),
            "uploads": service.uploads().len(),
            "ops_sent": service.ops_sent(),
        }),
        "last_request" => json!({"request": service.sync_requests().last().cloned()}),
        "corrupt" => {
            service.corrupt_next_checksum(text("bucket"));
            json!({"ok": true})
        }
        other => json!({"error": format!("unknown command {other:?}")}),
    }
}
