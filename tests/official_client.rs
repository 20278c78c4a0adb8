//! Conformance: the official PowerSync Node.js client (`@powersync/node`, from the npm
//! registry) syncs against `TestSyncService`, run by `examples/test_service.rs`.
//!
//! The official client validates bucket checksums and follows the protocol to the letter,
//! so a wrong checksum, a malformed line or a broken resume fails this test. It needs Node
//! from `tests/official_client/install.sh` (`.ci/run` runs it; this test runs it too) and
//! fails — never skips — when the client cannot run.
#![cfg(feature = "testing")]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::example_binary;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Upper bound for what the child processes (Node with the official client, the example
/// service) take: longer than the in-process tests' `common::wait::WAIT`, as a cold Node
/// start on a busy machine takes seconds.
const PROCESS_WAIT: Duration = Duration::from_secs(60);

/// A child process spoken to in JSON lines.
struct LineProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    name: &'static str,
}

impl LineProcess {
    fn spawn(name: &'static str, mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            stdout,
            name,
        }
    }

    async fn send(&mut self, command: Value) {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(PROCESS_WAIT, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("{} said nothing for {PROCESS_WAIT:?}", self.name))
            .unwrap()
            .unwrap_or_else(|| panic!("{} exited", self.name));
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: bad line {line:?}: {e}", self.name))
    }

    /// Sends a command and returns the reply line, which must not be an error.
    async fn ask(&mut self, command: Value) -> Value {
        self.send(command.clone()).await;
        let reply = self.next().await;
        assert!(
            reply.get("error").is_none(),
            "{} refused {command}: {reply} (a stale example binary? `cargo test --all-features` rebuilds it)",
            self.name
        );
        reply
    }
}

/// The official client: waits for a `rows` event that satisfies `done`.
async fn wait_for_rows(
    client: &mut LineProcess,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + PROCESS_WAIT;
    let mut last = Value::Null;
    while tokio::time::Instant::now() < deadline {
        let event = client.next().await;
        if event["event"] == "rows" {
            if done(&event) {
                return event;
            }
            last = event;
        } else if event["event"] == "status" && !event["downloadError"].is_null() {
            eprintln!("official client status: {event}");
        }
    }
    panic!("the official client never reached: {what}; last rows: {last}");
}

fn ids(rows: &Value, table: &str) -> Vec<String> {
    rows[table]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_owned())
        .collect()
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The node binary: `$OFFICIAL_CLIENT_NODE`, or what `install.sh` installs and prints.
fn node_binary() -> PathBuf {
    if let Some(node) = std::env::var_os("OFFICIAL_CLIENT_NODE") {
        return node.into();
    }
    let output = std::process::Command::new("bash")
        .arg(repository().join("tests/official_client/install.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run tests/official_client/install.sh");
    assert!(
        output.status.success(),
        "installing the official PowerSync client failed (see stderr); the conformance test cannot run without it"
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_powersync_client_syncs_with_the_test_service() {
    let node = node_binary();
    let mut service =
        LineProcess::spawn("test_service", Command::new(example_binary("test_service")));
    let hello = service.next().await;
    let url = hello["url"].as_str().unwrap().to_owned();
    let token = hello["token"].as_str().unwrap().to_owned();

    let db_dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(node);
    command
        .arg(repository().join("tests/official_client/client.mjs"))
        .env("SERVICE_URL", &url)
        .env("TOKEN", &token)
        .env("DB_DIR", db_dir.path())
        .env("PS_RETRY_DELAY_MS", "300")
        .env("PS_UPLOAD_THROTTLE_MS", "0");
    let mut client = LineProcess::spawn("official client", command);

    // 1. Initial sync of two tables from two buckets (global[] and by_owner["u1"]); the
    //    other user's todo is not in this user's buckets.
    let rows = wait_for_rows(&mut client, "initial sync", |rows| {
        ids(rows, "lists") == ["l1", "l2"] && ids(rows, "todos") == ["t1", "t2"]
    })
    .await;
    assert_eq!(rows["lists"][0]["name"], "Groceries");
    assert_eq!(rows["todos"][0]["description"], "milk");
    assert_eq!(rows["todos"][1]["done"], 1);

    // 2. A live change on the service arrives on the open stream.
    service
        .ask(json!({"cmd": "upsert", "table": "todos", "id": "t4", "row": {"list_id": "l2", "description": "new", "done": 0, "owner_id": "u1"}}))
        .await;
    service
        .ask(json!({"cmd": "upsert", "table": "lists", "id": "l1", "row": {"name": "Groceries!", "owner_id": "u1"}}))
        .await;
    service.ask(json!({"cmd": "commit"})).await;
    wait_for_rows(&mut client, "live change", |rows| {
        ids(rows, "todos") == ["t1", "t2", "t4"] && rows["lists"][0]["name"] == "Groceries!"
    })
    .await;

    // 3. A REMOVE.
    service
        .ask(json!({"cmd": "delete", "table": "todos", "id": "t1"}))
        .await;
    service.ask(json!({"cmd": "commit"})).await;
    wait_for_rows(&mut client, "remove", |rows| {
        ids(rows, "todos") == ["t2", "t4"]
    })
    .await;

    // 4. A local write goes up through the upload endpoint, comes back down through the
    //    global bucket after the write checkpoint, and later server edits replace it.
    let executed = client
        .ask(json!({"cmd": "execute", "sql": "INSERT INTO lists(id, name, owner_id) VALUES (?, ?, ?)", "params": ["l3", "From node", "u1"]}))
        .await;
    assert_eq!(executed["ok"], true, "{executed}");
    let mut uploaded = false;
    for _ in 0..600 {
        let rows = service.ask(json!({"cmd": "rows", "table": "lists"})).await;
        if rows["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "l3" && r["name"] == "From node")
        {
            uploaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(uploaded, "the official client never uploaded its write");
    service
        .ask(json!({"cmd": "upsert", "table": "lists", "id": "l3", "row": {"name": "From node (edited on the server)", "owner_id": "u1"}}))
        .await;
    service.ask(json!({"cmd": "commit"})).await;
    wait_for_rows(&mut client, "server version of the uploaded row", |rows| {
        rows["lists"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "l3" && r["name"] == "From node (edited on the server)")
    })
    .await;

    // 5. Checksums are really checked: a misreported checksum makes the client drop the
    //    bucket and reconnect (a new sync request), after which it converges again.
    let before = service.ask(json!({"cmd": "stats"})).await["sync_requests"]
        .as_u64()
        .unwrap();
    service
        .ask(json!({"cmd": "corrupt", "bucket": "global[]"}))
        .await;
    service
        .ask(json!({"cmd": "upsert", "table": "lists", "id": "l4", "row": {"name": "after corruption", "owner_id": "u1"}}))
        .await;
    service.ask(json!({"cmd": "commit"})).await;
    wait_for_rows(&mut client, "recovery from a bad checksum", |rows| {
        ids(rows, "lists") == ["l1", "l2", "l3", "l4"]
    })
    .await;
    let after = service.ask(json!({"cmd": "stats"})).await["sync_requests"]
        .as_u64()
        .unwrap();
    assert!(
        after > before,
        "the client must have rejected the bad checksum and reconnected ({before} → {after} requests)"
    );

    // 6. A parameterised sync stream: subscribing to `list_todos` for list l1 brings
    //    another user's todo in that list (t3), which the user's own buckets do not.
    client
        .send(json!({"cmd": "subscribe", "stream": "list_todos", "params": {"list_id": "l1"}}))
        .await;
    // Both the subscription's own first-sync signal and the rows must arrive (in
    // either order).
    let (mut stream_synced, mut rows) = (false, Value::Null);
    for _ in 0..10_000 {
        let line = client.next().await;
        assert!(line["ok"] != false, "the official client refused: {line}");
        match line["event"].as_str() {
            Some("stream_synced") => stream_synced = true,
            Some("rows") => rows = line,
            _ => {}
        }
        if stream_synced && rows.is_object() && ids(&rows, "todos") == ["t2", "t3", "t4"] {
            break;
        }
    }
    assert!(
        stream_synced,
        "waitForFirstSync of the subscription never resolved"
    );
    assert_eq!(rows["todos"][1]["description"], "someone else's", "{rows}");
    let request = service.ask(json!({"cmd": "last_request"})).await["request"].clone();
    let subscriptions = &request["streams"]["subscriptions"];
    assert_eq!(subscriptions[0]["stream"], "list_todos", "{request}");
    assert_eq!(subscriptions[0]["parameters"], json!({"list_id": "l1"}));

    client.send(json!({"cmd": "exit"})).await;
    let status = tokio::time::timeout(PROCESS_WAIT, client.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "the official client exited with {status}");
    drop(service.stdin);
    let _ = tokio::time::timeout(PROCESS_WAIT, service.child.wait()).await;
}
