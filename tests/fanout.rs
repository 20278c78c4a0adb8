//! Routing of table changes: a commit wakes only the watchers and live queries that read
//! a table it touched; falling behind still ends on the final state; the tables a live
//! query reads follow schema changes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use common::todo_schema;
use common::wait::in_time;
use futures::task::ArcWake;
use futures::{Stream, StreamExt};
use livesync::{Column, Database, Schema, Table};

/// A waker that counts how often it was woken.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl ArcWake for Wakes {
    fn wake_by_ref(wakes: &Arc<Self>) {
        wakes.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Wakes {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Polls `stream` once with a waker counted by `wakes`.
fn poll_once<S: Stream + Unpin>(stream: &mut S, wakes: &Arc<Wakes>) -> Poll<Option<S::Item>> {
    let waker = futures::task::waker(Arc::clone(wakes));
    stream.poll_next_unpin(&mut Context::from_waker(&waker))
}

fn numbered_tables(count: usize) -> Schema {
    Schema::new((0..count).map(|t| Table::new(format!("t{t}"), [Column::integer("v")])))
}

async fn insert(db: &Database, table: &str, id: usize) {
    db.execute(
        format!("INSERT INTO {table}(id, v) VALUES (?1, ?2)"),
        (id.to_string(), id as i64),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_commit_to_one_table_does_not_wake_a_watcher_of_another() {
    let db = Database::in_memory(numbered_tables(2)).await.unwrap();
    let mut watcher = db.watch_tables(["t0"]);
    let wakes = Arc::new(Wakes::default());
    assert!(poll_once(&mut watcher, &wakes).is_pending());
    for i in 0..20 {
        insert(&db, "t1", i).await;
    }
    assert_eq!(wakes.count(), 0, "a commit to t1 woke the watcher of t0");
    // The commit is delivered before `execute` returns.
    insert(&db, "t0", 0).await;
    assert_eq!(wakes.count(), 1);
    let Poll::Ready(Some(update)) = poll_once(&mut watcher, &wakes) else {
        panic!("the change to t0 was not delivered");
    };
    assert_eq!(update.tables().collect::<Vec<_>>(), ["t0"]);
    assert!(poll_once(&mut watcher, &wakes).is_pending());
}

#[tokio::test]
async fn a_commit_touching_two_watched_tables_is_one_event_listing_both() {
    let db = Database::in_memory(numbered_tables(3)).await.unwrap();
    let mut watcher = db.watch_tables(["t0", "T1"]);
    db.transaction(|tx| {
        for table in ["t0", "t1", "t2"] {
            tx.execute(&format!("INSERT INTO {table}(id, v) VALUES ('1', 1)"), ())?;
        }
        Ok(())
    })
    .await
    .unwrap();
    let wakes = Arc::new(Wakes::default());
    let Poll::Ready(Some(update)) = poll_once(&mut watcher, &wakes) else {
        panic!("the transaction was not delivered");
    };
    assert_eq!(update.tables().collect::<Vec<_>>(), ["t0", "t1"]);
    assert!(
        poll_once(&mut watcher, &wakes).is_pending(),
        "delivered twice"
    );
}

#[tokio::test]
async fn a_commit_to_another_table_does_not_wake_a_live_query() {
    let (db, _dir) = common::file_db(numbered_tables(2)).await;
    let mut count = db
        .query::<i64>("SELECT count(*) FROM t0")
        .throttle(Duration::ZERO)
        .watch();
    assert_eq!(
        in_time("the first count", count.next())
            .await
            .unwrap()
            .unwrap(),
        [0]
    );
    let wakes = Arc::new(Wakes::default());
    assert!(poll_once(&mut count, &wakes).is_pending());
    for i in 0..20 {
        insert(&db, "t1", i).await;
    }
    assert_eq!(wakes.count(), 0, "a commit to t1 woke the live query on t0");
    assert_eq!(count.run_count(), 1);
    insert(&db, "t0", 0).await;
    assert_eq!(wakes.count(), 1);
    assert_eq!(
        in_time("the new count", count.next())
            .await
            .unwrap()
            .unwrap(),
        [1]
    );
    assert_eq!(count.run_count(), 2);
}

#[tokio::test]
async fn among_many_live_queries_only_those_of_the_written_table_wake_and_rerun() {
    let db = Database::in_memory(numbered_tables(20)).await.unwrap();
    let mut live = Vec::new();
    for t in 0..20 {
        for q in 0..5 {
            let mut query = db
                .query::<i64>(format!("SELECT count(*) FROM t{t} WHERE v % 5 = {q}"))
                .throttle(Duration::ZERO)
                .watch();
            in_time("a first result", query.next())
                .await
                .unwrap()
                .unwrap();
            let wakes = Arc::new(Wakes::default());
            assert!(poll_once(&mut query, &wakes).is_pending());
            live.push((t, query, wakes));
        }
    }
    insert(&db, "t7", 3).await;
    for (t, query, wakes) in &mut live {
        if *t == 7 {
            assert_eq!(wakes.count(), 1, "a query on t7 was not woken");
            in_time("the re-run", async {
                while query.run_count() < 2 {
                    let _ = futures::poll!(query.next());
                    tokio::task::yield_now().await;
                }
            })
            .await;
        } else {
            assert_eq!(
                wakes.count(),
                0,
                "a query on t{t} was woken by a write to t7"
            );
            assert_eq!(query.run_count(), 1);
        }
    }
}

#[tokio::test]
async fn a_live_query_left_behind_by_hundreds_of_commits_ends_on_the_final_state() {
    let db = Database::in_memory(numbered_tables(2)).await.unwrap();
    let mut total = db
        .query::<i64>("SELECT coalesce(sum(v), 0) FROM t0")
        .throttle(Duration::ZERO)
        .watch();
    assert_eq!(
        in_time("the first sum", total.next())
            .await
            .unwrap()
            .unwrap(),
        [0]
    );
    let mut all = db.watch_tables(["t0", "t1"]);
    // More commits than a watcher's queue holds, to both tables, none polled meanwhile.
    for i in 0..600 {
        insert(&db, if i % 2 == 0 { "t0" } else { "t1" }, i).await;
    }
    let expected: i64 = (0..600).filter(|i| i % 2 == 0).sum();
    assert_eq!(
        in_time("the final sum", total.next())
            .await
            .unwrap()
            .unwrap(),
        [expected]
    );
    assert!(
        total.run_count() <= 3,
        "{} runs for one catch-up",
        total.run_count()
    );
    let first = in_time("the merged event", all.next()).await.unwrap();
    assert!(first.is_lagged());
    assert_eq!(first.tables().collect::<Vec<_>>(), ["t0", "t1"]);
}

#[tokio::test]
async fn a_table_created_after_the_live_query_is_picked_up() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    let mut count = db
        .query::<i64>("SELECT count(*) FROM later")
        .throttle(Duration::ZERO)
        .watch();
    assert!(
        in_time("the first run", count.next())
            .await
            .unwrap()
            .is_err()
    );
    db.execute_batch("CREATE TABLE later(x); INSERT INTO later VALUES (1)")
        .await
        .unwrap();
    assert_eq!(
        in_time("the count", count.next()).await.unwrap().unwrap(),
        [1]
    );
    // Now it knows what it reads: writes elsewhere no longer wake it.
    let wakes = Arc::new(Wakes::default());
    assert!(poll_once(&mut count, &wakes).is_pending());
    db.execute("INSERT INTO todos(id, description) VALUES ('1', 'x')", ())
        .await
        .unwrap();
    assert_eq!(
        wakes.count(),
        0,
        "a write to todos woke the query on `later`"
    );
    db.execute("INSERT INTO later VALUES (2)", ())
        .await
        .unwrap();
    assert_eq!(
        in_time("the new count", count.next())
            .await
            .unwrap()
            .unwrap(),
        [2]
    );
}

#[tokio::test]
async fn a_redefined_view_is_followed_from_the_next_run() {
    let (db, _dir) = common::file_db(Schema::default()).await;
    db.execute_batch("CREATE TABLE a(x); CREATE TABLE b(x); CREATE VIEW v AS SELECT x FROM a")
        .await
        .unwrap();
    let mut count = db
        .query::<i64>("SELECT count(*) FROM v")
        .throttle(Duration::ZERO)
        .watch();
    assert_eq!(
        in_time("the first count", count.next())
            .await
            .unwrap()
            .unwrap(),
        [0]
    );
    db.execute_batch("DROP VIEW v; CREATE VIEW v AS SELECT x FROM a UNION ALL SELECT x FROM b")
        .await
        .unwrap();
    db.execute("INSERT INTO a VALUES (1)", ()).await.unwrap();
    assert_eq!(
        in_time("the count after a", count.next())
            .await
            .unwrap()
            .unwrap(),
        [1]
    );
    db.execute("INSERT INTO b VALUES (1)", ()).await.unwrap();
    assert_eq!(
        in_time("the count after b, read through the new view", count.next())
            .await
            .unwrap()
            .unwrap(),
        [2]
    );
}
