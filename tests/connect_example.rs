//! `examples/connect.rs` against the embedded test service: configured only through
//! its environment variables, driven through stdin, checked on stdout — as a developer
//! pointing it at their own service would use it.
#![cfg(feature = "testing")]

mod common;

use std::process::Stdio;

use common::example_binary;
use common::wait::{WAIT, in_time, until};
use livesync::testing::{BucketRule, TestSyncService};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// The running example: its stdin, and its stdout as lines.
struct Example {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    /// Everything printed so far, for failure messages.
    seen: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Example {
    fn start(env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(example_binary("connect"));
        command
            .envs_clear_livesync()
            .env("LIVESYNC_DB", dir.path().join("connect.db"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the example starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            _dir: dir,
        }
    }

    async fn send(&mut self, command: &str) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next line satisfying `wanted` (bounded by `WAIT`); panics with what was printed.
    async fn expect(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!(
                    "the example ended before {what}; it printed {:#?}",
                    self.seen
                ),
                Err(_) => panic!(
                    "timed out after {WAIT:?} waiting for {what}; printed {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Runs `list` and returns the todo lines it printed.
    async fn list(&mut self) -> Vec<String> {
        self.send("list").await;
        let header = self.expect("the list", |l| l.starts_with("todos: ")).await;
        let count: usize = header["todos: ".len()..].parse().unwrap();
        let mut todos = Vec::new();
        for _ in 0..count {
            todos.push(self.expect("a todo line", |_| true).await);
        }
        todos
    }
}

/// Removes the example's variables a developer may have set in the test's environment.
trait ClearLivesyncVariables {
    fn envs_clear_livesync(&mut self) -> &mut Self;
}

impl ClearLivesyncVariables for Command {
    fn envs_clear_livesync(&mut self) -> &mut Self {
        for name in [
            "LIVESYNC_SERVICE_URL",
            "LIVESYNC_TOKEN",
            "LIVESYNC_TOKEN_URL",
            "LIVESYNC_UPLOAD_URL",
            "LIVESYNC_HEADER",
            "LIVESYNC_DB",
            "LIVESYNC_CHECKPOINTS",
        ] {
            self.env_remove(name);
        }
        self
    }
}

async fn todo_service() -> TestSyncService {
    TestSyncService::builder()
        .rule(BucketRule::global("todos", ["todos"]))
        .start()
        .await
        .unwrap()
}

fn configuration(service: &TestSyncService) -> Vec<(&'static str, String)> {
    vec![
        ("LIVESYNC_SERVICE_URL", service.url()),
        (
            "LIVESYNC_TOKEN_URL",
            format!("{}/token?user_id=u1", service.url()),
        ),
        ("LIVESYNC_UPLOAD_URL", format!("{}/upload", service.url())),
    ]
}

#[tokio::test]
async fn the_connect_example_syncs_lists_adds_and_toggles_todos() {
    let service = todo_service().await;
    service.upsert_row(
        "todos",
        "s1",
        json!({"description": "from the server", "done": 0}),
    );
    service.commit();
    let mut example = Example::start(&configuration(&service));

    example
        .expect("an online, synced status", |l| {
            l.starts_with("status: online") && l.contains(", synced")
        })
        .await;
    assert_eq!(example.list().await, ["1. [ ] from the server (s1)"]);

    example.send("add milk").await;
    example
        .expect("the add", |l| l.starts_with("added milk ("))
        .await;
    until("the service has the new todo", || {
        service
            .rows("todos")
            .iter()
            .any(|row| row["description"] == "milk" && row["done"] == 0)
    })
    .await;

    example.send("toggle s1").await;
    example
        .expect("the toggle", |l| l == "from the server is done")
        .await;
    until("the service has the todo done", || {
        service
            .rows("todos")
            .iter()
            .any(|row| row["id"] == "s1" && row["done"] == 1)
    })
    .await;

    // A change made on the server shows up in the next list.
    service.upsert_row(
        "todos",
        "s2",
        json!({"description": "also from the server", "done": 1}),
    );
    service.commit();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let todos = example.list().await;
        if todos
            .iter()
            .any(|l| l.contains("[x] also from the server (s2)"))
        {
            assert_eq!(todos.len(), 3, "{todos:?}");
            assert!(
                todos.iter().any(|l| l.contains("[x] from the server (s1)")),
                "{todos:?}"
            );
            assert!(todos.iter().any(|l| l.contains("[ ] milk (")), "{todos:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server's change never arrived: {todos:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    example.send("quit").await;
    example.expect("the goodbye", |l| l == "bye").await;
    let status = in_time("the example to exit", example.child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_connect_example_refreshes_with_a_checkpoint_request() {
    let service = todo_service().await;
    let mut env = configuration(&service);
    env.push(("LIVESYNC_CHECKPOINTS", "requests".into()));
    let mut example = Example::start(&env);
    example
        .expect("an online, synced status", |l| {
            l.starts_with("status: online") && l.contains(", synced")
        })
        .await;
    service.upsert_row(
        "todos",
        "s1",
        json!({"description": "new on the server", "done": 0}),
    );
    service.commit();
    example.send("refresh").await;
    example
        .expect("the refresh", |l| {
            l.starts_with("refreshed: checkpoint request 2 is applied")
        })
        .await;
    // Applied means listed, without waiting any further.
    assert_eq!(example.list().await, ["1. [ ] new on the server (s1)"]);
    let ids: Vec<Value> = service
        .checkpoint_requests()
        .iter()
        .map(|body| body["checkpoint_request_id"].clone())
        .collect();
    assert_eq!(ids, [json!("1"), json!("2")], "the seed, then the refresh");
    example.send("quit").await;
    example.expect("the goodbye", |l| l == "bye").await;
}

#[tokio::test]
async fn the_connect_example_says_refresh_needs_checkpoint_requests() {
    let service = todo_service().await;
    let mut example = Example::start(&configuration(&service));
    example
        .expect("an online status", |l| l.starts_with("status: online"))
        .await;
    example.send("refresh").await;
    let line = example
        .expect("the error", |l| l.starts_with("error: "))
        .await;
    assert!(line.contains("CheckpointMode::Requests"), "{line}");
    example.send("quit").await;
    example.expect("the goodbye", |l| l == "bye").await;
}

#[tokio::test]
async fn the_connect_example_shows_a_refused_token_in_its_status() {
    let service = todo_service().await;
    let elsewhere = TestSyncService::builder()
        .audience("another-instance")
        .start()
        .await
        .unwrap();
    let mut example = Example::start(&[
        ("LIVESYNC_SERVICE_URL", service.url()),
        ("LIVESYNC_TOKEN", elsewhere.token("u1")),
        ("LIVESYNC_UPLOAD_URL", format!("{}/upload", service.url())),
    ]);
    let line = example
        .expect("the refusal", |l| {
            l.starts_with("status: ") && l.contains("download error")
        })
        .await;
    assert!(line.contains("PSYNC_S2105"), "{line}");
    assert!(line.contains("hint:"), "{line}");
    example.send("quit").await;
    example.expect("the goodbye", |l| l == "bye").await;
}

#[tokio::test]
async fn the_connect_example_names_the_variables_it_needs() {
    let run = Command::new(example_binary("connect"))
        .envs_clear_livesync()
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = in_time("the example to exit", run).await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LIVESYNC_SERVICE_URL"), "{stderr}");
    assert!(stderr.contains("LIVESYNC_UPLOAD_URL"), "{stderr}");
}
