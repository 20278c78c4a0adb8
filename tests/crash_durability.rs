//! Nothing is lost when the process dies: a child process commits local writes in a loop
//! and is killed with SIGKILL; the reopened database is intact and holds every CRUD entry
//! of every transaction the child saw committed.
//!
//! The same holds for a schema change killed half way: the bulk schema apply (which moves
//! `sqlite_schema` rows aside inside its transaction) leaves either the old schema or the
//! new one, never a mix, and the file passes `PRAGMA integrity_check`.
//!
//! This file has its own `main` (harness = false): run without arguments it is the test,
//! and it re-runs its own executable as the child, selected by an environment variable.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use livesync::{Column, Database, Schema, Table};

const CHILD_ENV: &str = "LIVESYNC_CRASH_CHILD_DB";
const SCHEMA_CHILD_ENV: &str = "LIVESYNC_CRASH_SCHEMA_CHILD_DB";
/// Tables of the schemas the schema child switches between: enough for the bulk path.
const WIDE_TABLES: usize = 300;
/// Kills of the schema child, each after a different delay into its apply loop.
const SCHEMA_KILL_DELAYS_MS: [u64; 6] = [5, 40, 90, 170, 330, 650];
/// Commits to observe before the kill (bounded, so the test always ends).
const COMMITS_BEFORE_KILL: u64 = 300;

fn schema() -> Schema {
    Schema::new([Table::new(
        "events",
        [Column::text("payload"), Column::integer("seq")],
    )])
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Ok(path) = std::env::var(SCHEMA_CHILD_ENV) {
        return runtime.block_on(schema_child(path));
    }
    match std::env::var(CHILD_ENV) {
        Ok(path) => runtime.block_on(child(path)),
        Err(_) => {
            runtime.block_on(parent());
            println!("test crash_durability_keeps_every_acknowledged_transaction ... ok");
            runtime.block_on(schema_parent());
            println!(
                "test a_schema_change_killed_half_way_leaves_the_old_or_the_new_schema ... ok"
            );
            println!("2 passed, 0 failed");
        }
    }
}

/// `WIDE_TABLES` tables `w0…`; `variant` 1 has one column more in each (so switching
/// replaces every view and trigger).
fn wide_schema(variant: u8) -> Schema {
    Schema::new((0..WIDE_TABLES).map(|i| {
        let mut columns = vec![Column::text("name")];
        if variant == 1 {
            columns.push(Column::integer("extra"));
        }
        Table::new(format!("w{i}"), columns)
    }))
}

/// Switches between the two wide schemas forever, printing the variant of each
/// applied one.
async fn schema_child(path: String) {
    let db = Database::open(&path, wide_schema(0))
        .await
        .expect("child opens the database");
    println!("0");
    for round in 1u64.. {
        let variant = (round % 2) as u8;
        db.update_schema(wide_schema(variant))
            .await
            .expect("child applies the schema");
        println!("{variant}");
    }
}

async fn schema_parent() {
    for delay in SCHEMA_KILL_DELAYS_MS {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("schema.db");
        let mut child = Command::new(std::env::current_exe().expect("own executable"))
            .env(SCHEMA_CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start child");
        let mut stdout = BufReader::new(child.stdout.take().expect("child stdout"));
        let mut child = KillOnDrop(child);
        // The first (fresh) schema is applied: from here on, kill `delay` ms into the
        // loop of updates.
        let mut first = String::new();
        stdout.read_line(&mut first).expect("child output");
        assert_eq!(first.trim(), "0", "the child opened its database");
        std::thread::sleep(Duration::from_millis(delay));
        child.0.kill().expect("kill child");
        child.0.wait().expect("reap child");
        let acknowledged: Vec<String> = stdout.lines().map_while(Result::ok).collect();

        // Opened with the schema it had, whichever that is: the file is intact and
        // every object of one variant is there, the other's are not.
        let db = Database::open(&path, Schema::default())
            .await
            .expect("reopen after the crash");
        let integrity: String = db
            .read(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(integrity, "ok", "killed after {delay} ms");
        db.close().await;
        for variant in [0u8, 1] {
            let db = Database::open(&path, wide_schema(variant))
                .await
                .unwrap_or_else(|e| panic!("killed after {delay} ms, then variant {variant}: {e}"));
            let last = WIDE_TABLES - 1;
            db.execute(
                &format!("INSERT INTO w{last}(id, name) VALUES ('a', 'x')"),
                (),
            )
            .await
            .unwrap();
            let (views, triggers): (i64, i64) = db
                .read(|c| {
                    Ok(c.query_row(
                        "SELECT (SELECT count(*) FROM sqlite_schema WHERE type = 'view'), \
                                (SELECT count(*) FROM sqlite_schema WHERE type = 'trigger')",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?)
                })
                .await
                .unwrap();
            assert_eq!(
                (views, triggers),
                (WIDE_TABLES as i64, 3 * WIDE_TABLES as i64),
                "killed after {delay} ms ({} schemas acknowledged), then variant {variant}",
                acknowledged.len()
            );
            db.execute(&format!("DELETE FROM w{last} WHERE id = 'a'"), ())
                .await
                .unwrap();
            db.close().await;
        }
    }
}

/// Writes transactions of three rows forever, printing each committed transaction number.
async fn child(path: String) {
    let db = Database::open(&path, schema())
        .await
        .expect("child opens the database");
    for tx_number in 1u64.. {
        db.transaction(move |tx| {
            for row in 0..3 {
                tx.execute(
                    "INSERT INTO events(id, payload, seq) VALUES (?1, ?2, ?3)",
                    (
                        format!("{tx_number}-{row}"),
                        "x".repeat(200),
                        tx_number as i64,
                    ),
                )?;
            }
            Ok(())
        })
        .await
        .expect("child commits");
        // Printed only after the commit returned: the parent may rely on it.
        println!("{tx_number}");
    }
}

async fn parent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe().expect("own executable"))
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start child");
    let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut child = KillOnDrop(child);
    let started = Instant::now();
    let mut acknowledged = 0u64;
    for line in stdout.lines() {
        acknowledged = line
            .expect("read child output")
            .trim()
            .parse()
            .expect("a number");
        if acknowledged >= COMMITS_BEFORE_KILL || started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    // SIGKILL mid-loop: the child is usually inside its next transaction right now.
    child.0.kill().expect("kill child");
    child.0.wait().expect("reap child");
    assert!(acknowledged > 0, "the child committed nothing");

    let db = Database::open(&path, schema())
        .await
        .expect("reopen after the crash");
    let integrity: String = db
        .read(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(integrity, "ok");

    let committed: Vec<(i64, i64)> = db
        .read(|c| {
            let mut stmt =
                c.prepare("SELECT tx_id, count(*) FROM ps_crud GROUP BY tx_id ORDER BY tx_id")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
        .unwrap();
    // Every acknowledged transaction is there with all three entries; a transaction
    // cut by the kill is either complete or absent, never partial.
    assert!(
        committed.len() as u64 >= acknowledged,
        "{} < {acknowledged}",
        committed.len()
    );
    for (index, (tx_id, entries)) in committed.iter().enumerate() {
        assert_eq!(*tx_id, index as i64 + 1, "transaction ids are contiguous");
        assert_eq!(*entries, 3, "transaction {tx_id} is partial");
    }
    let rows: i64 = db
        .read(|c| Ok(c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(rows, committed.len() as i64 * 3);
    // The database is still writable after recovery.
    db.execute(
        "INSERT INTO events(id, payload, seq) VALUES ('after', 'y', 0)",
        (),
    )
    .await
    .unwrap();
}

/// Kills the child if the parent fails before the planned kill, so no writer outlives the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
