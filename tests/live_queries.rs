//! Live queries: first result, re-runs only for relevant changes, skip-unchanged,
//! throttling with a trailing run, errors then recovery, cleanup on drop, and agreement
//! with a fresh fetch after random activity.

mod common;

use std::time::Duration;

use common::wait::in_time;
use common::{file_db, todo_schema};
use futures::StreamExt;
use livesync::{Column, Database, LiveQuery, Schema, Table};

async fn next<T>(live: &mut LiveQuery<T>) -> livesync::Result<Vec<T>> {
    in_time("an item", live.next()).await.expect("open")
}

async fn nothing_within<T>(live: &mut LiveQuery<T>, wait: Duration) -> bool {
    tokio::time::timeout(wait, live.next()).await.is_err()
}

/// A read that keeps a reader connection busy until released (bounded: it gives up
/// after 10 s), so that reads queued after it surely wait. With one reader, what a test
/// does next is ordered behind it.
struct HeldReader {
    release: std::sync::mpsc::Sender<()>,
    read: tokio::task::JoinHandle<livesync::Result<()>>,
}

impl HeldReader {
    async fn hold(db: &Database) -> Self {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let read = tokio::spawn({
            let db = db.clone();
            async move {
                db.read(move |_| {
                    let _ = held.recv_timeout(Duration::from_secs(10));
                    Ok(())
                })
                .await
            }
        });
        // Lets the task run: its read is queued first once it is polled.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Self { release, read }
    }

    async fn release(self) {
        self.release.send(()).unwrap();
        self.read.await.unwrap().unwrap();
    }
}

fn lists_and_todos() -> Schema {
    Schema::new([
        Table::new("lists", [Column::text("name")]),
        Table::new(
            "todos",
            [
                Column::text("list_id"),
                Column::text("description"),
                Column::integer("done"),
            ],
        ),
        Table::new("unrelated", [Column::text("x")]),
    ])
}

#[tokio::test]
async fn emits_the_current_result_then_each_change() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.execute("INSERT INTO todos(id, description) VALUES ('a', 'one')", ())
        .await
        .unwrap();
    let mut live = db
        .query::<String>("SELECT description FROM todos ORDER BY id")
        .throttle(Duration::ZERO)
        .watch();
    assert_eq!(next(&mut live).await.unwrap(), ["one"]);
    db.execute("INSERT INTO todos(id, description) VALUES ('b', 'two')", ())
        .await
        .unwrap();
    assert_eq!(next(&mut live).await.unwrap(), ["one", "two"]);
}

#[tokio::test]
async fn unrelated_tables_unchanged_results_and_rollbacks_emit_nothing() {
    let db = Database::in_memory(lists_and_todos()).await.unwrap();
    db.execute(
        "INSERT INTO todos(id, description, done) VALUES ('a', 'one', 0)",
        (),
    )
    .await
    .unwrap();
    let mut live = db
        .query::<String>("SELECT description FROM todos")
        .throttle(Duration::ZERO)
        .watch();
    assert_eq!(next(&mut live).await.unwrap(), ["one"]);
    db.execute("INSERT INTO unrelated(id, x) VALUES ('u', 'x')", ())
        .await
        .unwrap();
    // A change to a column the query does not select: re-run, same result, no item.
    db.execute("UPDATE todos SET done = 1", ()).await.unwrap();
    let _ = db
        .transaction(|tx| {
            tx.execute(
                "INSERT INTO todos(id, description) VALUES ('gone', 'x')",
                [],
            )?;
            Err::<(), _>(livesync::Error::UnexpectedData("roll back".into()))
        })
        .await;
    assert!(nothing_within(&mut live, Duration::from_millis(150)).await);
    db.execute("UPDATE todos SET description = 'uno'", ())
        .await
        .unwrap();
    assert_eq!(next(&mut live).await.unwrap(), ["uno"]);
}

#[tokio::test]
async fn joins_subqueries_ctes_and_views_are_all_watched() {
    let db = Database::in_memory(lists_and_todos()).await.unwrap();
    db.execute_batch(
        "INSERT INTO lists(id, name) VALUES ('l', 'home');
         INSERT INTO todos(id, list_id, description) VALUES ('t', 'l', 'milk');
         CREATE VIEW named_todos AS SELECT t.id, l.name FROM todos t JOIN lists l ON l.id = t.list_id;",
    )
    .await
    .unwrap();
    let shapes = [
        "SELECT l.name FROM todos t JOIN lists l ON l.id = t.list_id",
        "SELECT (SELECT name FROM lists WHERE id = t.list_id) FROM todos t",
        "WITH n AS (SELECT id, name FROM lists) SELECT n.name FROM todos t JOIN n ON n.id = t.list_id",
        "SELECT name FROM named_todos",
    ];
    for sql in shapes {
        let mut live = db.query::<String>(sql).throttle(Duration::ZERO).watch();
        let before = next(&mut live).await.unwrap();
        // A table the query does not read does not even cause a run.
        db.execute(
            "INSERT OR REPLACE INTO unrelated(id, x) VALUES ('u', ?1)",
            [sql],
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(live.run_count(), 1, "{sql}: re-ran for an unrelated table");
        db.execute("UPDATE lists SET name = name || '!'", ())
            .await
            .unwrap();
        let after = next(&mut live).await.unwrap();
        assert_ne!(before, after, "{sql}: a change to lists re-ran it");
        db.execute(
            "INSERT INTO todos(id, list_id, description) VALUES (?1, 'l', 'x')",
            [sql.len().to_string()],
        )
        .await
        .unwrap();
        assert_eq!(
            next(&mut live).await.unwrap().len(),
            after.len() + 1,
            "{sql}: a change to todos re-ran it"
        );
        db.execute("DELETE FROM todos WHERE id = ?1", [sql.len().to_string()])
            .await
            .unwrap();
        let _ = next(&mut live).await;
    }
    // An explicit trigger list replaces the plan's tables.
    let mut live = db
        .query::<i64>("SELECT 1")
        .triggered_by(["unrelated"])
        .throttle(Duration::ZERO)
        .watch();
    assert_eq!(next(&mut live).await.unwrap(), [1]);
}

#[tokio::test(start_paused = true)]
async fn bursts_are_throttled_and_always_end_on_the_final_state() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    let throttle = Duration::from_millis(30);
    let mut live = db
        .query::<i64>("SELECT count(*) FROM todos")
        .throttle(throttle)
        .watch();
    // No timeouts here: with the clock paused, tokio jumps to the next timer whenever the
    // test waits for livesync's threads, so a timeout would fire at once.
    assert_eq!(live.next().await.unwrap().unwrap(), [0]);
    let mut emitted_at = vec![tokio::time::Instant::now()];
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                db.execute("INSERT INTO todos(id) VALUES (?1)", [i.to_string()])
                    .await
                    .unwrap();
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(7)).await;
                }
            }
        })
    };
    let mut last = 0;
    while last < 200 {
        last = live.next().await.unwrap().unwrap()[0];
        emitted_at.push(tokio::time::Instant::now());
    }
    writer.await.unwrap();
    assert_eq!(last, 200, "the trailing run delivered the final state");
    for pair in emitted_at.windows(2) {
        assert!(
            pair[1] - pair[0] >= throttle,
            "two runs closer than the throttle: {:?}",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_causes_only_a_handful_of_runs() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    let mut live = db
        .query::<i64>("SELECT count(*) FROM todos")
        .throttle(Duration::from_millis(100))
        .watch();
    assert_eq!(next(&mut live).await.unwrap(), [0]);
    // 500 commits back to back take a few tens of milliseconds.
    for i in 0..500 {
        db.execute("INSERT INTO todos(id) VALUES (?1)", [i.to_string()])
            .await
            .unwrap();
    }
    let mut items = 0;
    let mut last = 0;
    while last < 500 {
        last = next(&mut live).await.unwrap()[0];
        items += 1;
    }
    assert!(items <= 20, "500 writes caused {items} results");
    assert!(nothing_within(&mut live, Duration::from_millis(300)).await);
}

#[tokio::test]
async fn a_failing_run_is_an_error_item_and_the_stream_recovers() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    let mut live = db
        // json() of the ids fails (at run time, on data) exactly when there are two rows.
        .query::<i64>("SELECT CASE WHEN count(*) = 2 THEN json(group_concat(id)) ELSE count(*) END FROM todos")
        .throttle(Duration::ZERO)
        .watch();
    assert_eq!(next(&mut live).await.unwrap(), [0]);
    db.execute("INSERT INTO todos(id) VALUES ('a')", ())
        .await
        .unwrap();
    assert_eq!(next(&mut live).await.unwrap(), [1]);
    db.execute("INSERT INTO todos(id) VALUES ('b')", ())
        .await
        .unwrap();
    let err = next(&mut live).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("json"), "{err}");
    db.execute("INSERT INTO todos(id) VALUES ('c')", ())
        .await
        .unwrap();
    assert_eq!(next(&mut live).await.unwrap(), [3]);
}

#[tokio::test]
async fn dropping_a_live_query_releases_its_subscription() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    let baseline = db.active_watchers();
    let mut live = db.query::<i64>("SELECT count(*) FROM todos").watch();
    let _ = next(&mut live).await;
    let mut second = db.query::<i64>("SELECT 1 FROM todos").watch();
    assert_eq!(db.active_watchers(), baseline + 2);
    drop(live);
    assert_eq!(db.active_watchers(), baseline + 1);
    drop(second.next()); // a pending poll future, dropped before completion
    drop(second);
    assert_eq!(db.active_watchers(), baseline);
}

/// A tiny deterministic generator, so failures replay exactly.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_random_writes_and_pauses_the_last_item_equals_a_fresh_fetch() {
    for seed in 1..=12u64 {
        let db = Database::in_memory(todo_schema()).await.unwrap();
        let sql = "SELECT id, description, done FROM todos WHERE done = 0 ORDER BY id";
        let throttle = Duration::from_millis(seed % 3 * 10);
        let mut live = db
            .query::<(String, String, i64)>(sql)
            .throttle(throttle)
            .watch();
        let mut latest = next(&mut live).await.unwrap();
        let mut rng = Lcg(seed);
        for step in 0..40 {
            let id = rng.below(8).to_string();
            let sql = match rng.below(4) {
                0 => {
                    "INSERT OR REPLACE INTO todos(id, description, done) VALUES (?1, 'x' || ?1, 0)"
                }
                1 => "UPDATE todos SET done = 1 - done WHERE id = ?1",
                2 => "UPDATE todos SET description = description || '+' WHERE id = ?1",
                _ => "DELETE FROM todos WHERE id = ?1",
            };
            db.execute(sql, [id]).await.unwrap();
            if rng.below(5) == 0 {
                tokio::time::sleep(Duration::from_millis(step % 7)).await;
            }
            while let Ok(Some(item)) = tokio::time::timeout(Duration::ZERO, live.next()).await {
                latest = item.unwrap();
            }
        }
        // Quiet period: whatever was pending arrives, then nothing more.
        while let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_millis(200), live.next()).await
        {
            latest = item.unwrap();
        }
        let fresh = db
            .query::<(String, String, i64)>(sql)
            .fetch_all()
            .await
            .unwrap();
        assert_eq!(latest, fresh, "seed {seed}");
    }
}

#[tokio::test]
async fn watch_diff_reports_added_removed_and_updated_rows_by_id() {
    #[derive(livesync::Row, Clone, Debug, PartialEq)]
    struct Todo {
        id: String,
        description: Option<String>,
    }
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('a', 'one'), ('b', 'two')",
        (),
    )
    .await
    .unwrap();
    let mut diffs = db
        .query::<Todo>("SELECT id, description FROM todos ORDER BY id")
        .throttle(Duration::ZERO)
        .watch_diff();
    let first = in_time("the first diff", diffs.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.added.len(), 2);
    assert_eq!(first.rows, first.added);

    db.transaction(|tx| {
        tx.execute("UPDATE todos SET description = 'uno' WHERE id = 'a'", [])?;
        tx.execute("DELETE FROM todos WHERE id = 'b'", [])?;
        tx.execute(
            "INSERT INTO todos(id, description) VALUES ('c', 'three')",
            [],
        )?;
        Ok(())
    })
    .await
    .unwrap();
    let change = in_time("the diff of the transaction", diffs.next())
        .await
        .unwrap()
        .unwrap();
    let todo = |id: &str, d: &str| Todo {
        id: id.into(),
        description: Some(d.into()),
    };
    assert_eq!(change.updated, [todo("a", "uno")]);
    assert_eq!(change.removed, [todo("b", "two")]);
    assert_eq!(change.added, [todo("c", "three")]);
    assert_eq!(change.rows, [todo("a", "uno"), todo("c", "three")]);

    // Without an id column the diff cannot match rows: a clear error item.
    let mut no_id = db
        .query::<String>("SELECT description FROM todos")
        .watch_diff();
    let err = in_time("the error item", no_id.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("\"id\""), "{err}");
}

#[tokio::test]
async fn a_query_left_unpolled_through_many_commits_reruns_only_for_its_own_tables() {
    let db = Database::in_memory(lists_and_todos()).await.unwrap();
    let mut quiet = db.query::<i64>("SELECT count(*) FROM lists").watch();
    let mut busy = db.query::<i64>("SELECT count(*) FROM todos").watch();
    assert_eq!(next(&mut quiet).await.unwrap(), [0]);
    assert_eq!(next(&mut busy).await.unwrap(), [0]);
    // Far more commits than a notification channel holds, while neither stream is polled:
    // both fall behind, and the merged report must still name only `todos`.
    for i in 0..600 {
        db.execute("INSERT INTO todos(id) VALUES (?1)", [i.to_string()])
            .await
            .unwrap();
    }
    assert_eq!(next(&mut busy).await.unwrap(), [600]);
    assert!(nothing_within(&mut quiet, Duration::from_millis(100)).await);
    assert_eq!(
        quiet.run_count(),
        1,
        "re-ran although `lists` never changed"
    );
}

async fn next_diff<T>(diffs: &mut livesync::LiveDiff<T>) -> livesync::QueryDiff<T> {
    in_time("a diff", diffs.next())
        .await
        .expect("open")
        .expect("a diff")
}

#[tokio::test]
async fn watch_diff_counts_rows_sharing_an_id_exactly() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.execute("INSERT INTO todos(id, description) VALUES ('1', 'dup')", ())
        .await
        .unwrap();
    // Rows titled "dup…" come back twice: two rows with one id.
    let mut diffs = db
        .query::<(String, String)>(
            "SELECT id, description FROM todos \
             UNION ALL SELECT id, description FROM todos WHERE description LIKE 'dup%' \
             ORDER BY 1, 2",
        )
        .throttle(Duration::ZERO)
        .watch_diff();
    let row = |id: &str, d: &str| (id.to_owned(), d.to_owned());
    let first = next_diff(&mut diffs).await;
    assert_eq!(first.added, [row("1", "dup"), row("1", "dup")]);

    // Another row arrives: only it is new.
    db.execute("INSERT INTO todos(id, description) VALUES ('2', 'x')", ())
        .await
        .unwrap();
    let change = next_diff(&mut diffs).await;
    assert_eq!(change.added, [row("2", "x")], "{change:?}");
    assert!(
        change.updated.is_empty() && change.removed.is_empty(),
        "{change:?}"
    );

    // The pair becomes one row: one of them changed, the other is gone.
    db.execute("UPDATE todos SET description = 'plain' WHERE id = '1'", ())
        .await
        .unwrap();
    let change = next_diff(&mut diffs).await;
    assert_eq!(change.updated, [row("1", "plain")], "{change:?}");
    assert_eq!(change.removed, [row("1", "dup")], "{change:?}");
    assert!(change.added.is_empty(), "{change:?}");

    // And back: one update, one add.
    db.execute("UPDATE todos SET description = 'dup2' WHERE id = '1'", ())
        .await
        .unwrap();
    let change = next_diff(&mut diffs).await;
    assert_eq!(change.updated, [row("1", "dup2")], "{change:?}");
    assert_eq!(change.added, [row("1", "dup2")], "{change:?}");
    assert!(change.removed.is_empty(), "{change:?}");

    // Everything goes: every row is reported removed, duplicates included.
    db.execute("DELETE FROM todos", ()).await.unwrap();
    let change = next_diff(&mut diffs).await;
    assert_eq!(
        change.removed,
        [row("1", "dup2"), row("1", "dup2"), row("2", "x")],
        "{change:?}"
    );
    assert!(change.rows.is_empty() && change.added.is_empty() && change.updated.is_empty());
}

#[tokio::test]
async fn watch_diff_by_matches_rows_by_the_chosen_column() {
    let db = Database::in_memory(lists_and_todos()).await.unwrap();
    db.execute(
        "INSERT INTO todos(id, list_id) VALUES ('1', 'a'), ('2', 'a'), ('3', 'b')",
        (),
    )
    .await
    .unwrap();
    let mut counts = db
        .query::<(String, i64)>(
            "SELECT list_id, count(*) FROM todos GROUP BY list_id ORDER BY list_id",
        )
        .throttle(Duration::ZERO)
        .watch_diff_by("list_id");
    let first = next_diff(&mut counts).await;
    assert_eq!(first.added, [("a".to_owned(), 2), ("b".to_owned(), 1)]);

    db.execute("INSERT INTO todos(id, list_id) VALUES ('4', 'a')", ())
        .await
        .unwrap();
    let change = next_diff(&mut counts).await;
    assert_eq!(change.updated, [("a".to_owned(), 3)], "{change:?}");
    assert!(change.added.is_empty() && change.removed.is_empty());

    db.execute("DELETE FROM todos WHERE list_id = 'b'", ())
        .await
        .unwrap();
    let change = next_diff(&mut counts).await;
    assert_eq!(change.removed, [("b".to_owned(), 1)], "{change:?}");

    // A key column the query does not return is a clear error item.
    let mut wrong = db
        .query::<String>("SELECT list_id FROM todos")
        .watch_diff_by("owner");
    let err = in_time("the error item", wrong.next())
        .await
        .unwrap()
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("\"owner\"") && message.contains("watch_diff_by"),
        "{message}"
    );

    // Keys compare as SQLite values of their type: the text '1' and the integer 1 differ.
    let mut mixed = db
        .query::<(serde_json::Value, String)>(
            "SELECT '1' AS id, 'text' UNION ALL SELECT 1, 'integer'",
        )
        .watch_diff();
    assert_eq!(next_diff(&mut mixed).await.added.len(), 2);
}

/// Re-runs take turns (`OpenOptions::live_query_reruns`): a query waiting for its turn
/// covers every change made meanwhile with one run. The only reader is held busy, so the
/// order of events is fixed: `a`'s re-run holds the one turn while `b` is written five
/// times.
#[tokio::test]
async fn a_rerun_waiting_for_its_turn_covers_every_change_made_meanwhile() {
    let schema = Schema::new([
        Table::new("a", [Column::integer("v")]),
        Table::new("b", [Column::integer("v")]),
    ]);
    let options = livesync::OpenOptions::default()
        .readers(1)
        .live_query_reruns(1);
    let (db, _dir) = common::file_db_with(schema, options).await;
    let count = |table: &str| {
        db.query::<i64>(format!("SELECT count(*) FROM {table}"))
            .throttle(Duration::ZERO)
            .watch()
    };
    let (mut on_a, mut on_b) = (count("a"), count("b"));
    assert_eq!(next(&mut on_a).await.unwrap(), [0]);
    assert_eq!(next(&mut on_b).await.unwrap(), [0]);

    let reader = HeldReader::hold(&db).await;
    let insert = |table: &'static str, id: usize| {
        let db = db.clone();
        async move {
            db.execute(
                format!("INSERT INTO {table}(id, v) VALUES (?1, 1)"),
                (id.to_string(),),
            )
            .await
            .unwrap();
        }
    };
    insert("a", 0).await;
    let mut a_next = Box::pin(on_a.next());
    assert!(
        futures::poll!(&mut a_next).is_pending(),
        "a's re-run holds the turn"
    );
    insert("b", 0).await;
    let mut b_next = Box::pin(on_b.next());
    assert!(
        futures::poll!(&mut b_next).is_pending(),
        "b waits for the turn"
    );
    for id in 1..5 {
        insert("b", id).await;
    }
    reader.release().await;
    assert_eq!(in_time("a's re-run", a_next).await.unwrap().unwrap(), [1]);
    assert_eq!(in_time("b's re-run", b_next).await.unwrap().unwrap(), [5]);
    // One re-run for the five writes: none is left to do.
    assert!(nothing_within(&mut on_b, Duration::from_millis(200)).await);
    assert_eq!(on_b.run_count(), 2, "the first run and one re-run");
}

/// A live query that was polled once after a change and then left alone (kept after a
/// timeout, or in a `select!` branch no longer polled) does not keep its turn: with one
/// turn for all re-runs, the other live queries still get theirs.
#[tokio::test]
async fn a_live_query_left_unpolled_does_not_hold_up_the_others() {
    let schema = Schema::new([
        Table::new("a", [Column::integer("v")]),
        Table::new("b", [Column::integer("v")]),
    ]);
    let options = livesync::OpenOptions::default().live_query_reruns(1);
    let (db, _dir) = common::file_db_with(schema, options).await;
    let count = |table: &str| {
        db.query::<i64>(format!("SELECT count(*) FROM {table}"))
            .throttle(Duration::ZERO)
            .watch()
    };
    let (mut parked, mut active) = (count("a"), count("b"));
    assert_eq!(next(&mut parked).await.unwrap(), [0]);
    assert_eq!(next(&mut active).await.unwrap(), [0]);
    for round in 1..=3_i64 {
        db.execute(
            "INSERT INTO a(id, v) VALUES (?1, 1)",
            (format!("a{round}"),),
        )
        .await
        .unwrap();
        // Polled once (its re-run takes the turn), then never again.
        let _ = futures::poll!(Box::pin(parked.next()));
        db.execute(
            "INSERT INTO b(id, v) VALUES (?1, 1)",
            (format!("b{round}"),),
        )
        .await
        .unwrap();
        assert_eq!(next(&mut active).await.unwrap(), [round]);
    }
    // The parked query's own result was kept for it.
    assert_eq!(next(&mut parked).await.unwrap(), [3]);
}

/// Live queries of the same SQL and parameters share their runs, never handing one a
/// snapshot older than a commit it was told about.
mod shared_runs {
    use super::*;

    fn count_query(db: &Database) -> livesync::Query<i64> {
        db.query::<i64>("SELECT count(*) FROM todos")
            .throttle(Duration::ZERO)
    }

    async fn insert(db: &Database, id: usize) {
        db.execute(
            "INSERT INTO todos(id, description) VALUES (?1, 'x')",
            (id.to_string(),),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn identical_live_queries_run_once_per_change() {
        let db = Database::in_memory(todo_schema()).await.unwrap();
        let mut copies: Vec<_> = (0..5).map(|_| count_query(&db).watch()).collect();
        for live in &mut copies {
            assert_eq!(next(live).await.unwrap(), [0]);
        }
        for i in 1..=20 {
            insert(&db, i).await;
            for live in &mut copies {
                assert_eq!(next(live).await.unwrap(), [i as i64]);
            }
        }
        let runs: u64 = copies.iter().map(LiveQuery::run_count).sum();
        let shared: u64 = copies.iter().map(LiveQuery::shared_run_count).sum();
        assert_eq!(runs, 5 * 21, "each copy got every result");
        assert_eq!(
            runs - shared,
            21,
            "the SQL ran once for the first result and once per insert"
        );
    }

    #[tokio::test]
    async fn a_copy_told_of_a_later_commit_runs_again_instead_of_taking_an_older_run() {
        let db = Database::in_memory(todo_schema()).await.unwrap();
        let (mut first, mut second) = (count_query(&db).watch(), count_query(&db).watch());
        assert_eq!(next(&mut first).await.unwrap(), [0]);
        assert_eq!(next(&mut second).await.unwrap(), [0]);
        insert(&db, 1).await;
        assert_eq!(next(&mut first).await.unwrap(), [1]);
        insert(&db, 2).await;
        // `first`'s run saw one row: `second` was told of both inserts.
        assert_eq!(next(&mut second).await.unwrap(), [2]);
        assert_eq!(
            second.shared_run_count(),
            1,
            "only its first run was shared"
        );
        // ...and `first`, told of the second insert, takes `second`'s newer run.
        assert_eq!(next(&mut first).await.unwrap(), [2]);
        assert_eq!(first.shared_run_count(), 1);
    }

    #[tokio::test]
    async fn different_parameters_do_not_share() {
        let db = Database::in_memory(todo_schema()).await.unwrap();
        insert(&db, 1).await;
        let by_id = |id: &str| {
            db.query::<String>("SELECT id FROM todos WHERE id = ?")
                .bind(id.to_owned())
                .throttle(Duration::ZERO)
                .watch()
        };
        let (mut one, mut two) = (by_id("1"), by_id("2"));
        assert_eq!(next(&mut one).await.unwrap(), ["1"]);
        assert!(next(&mut two).await.unwrap().is_empty());
        assert_eq!(one.shared_run_count() + two.shared_run_count(), 0);
    }

    #[tokio::test]
    async fn a_copy_dropped_while_its_run_is_in_flight_does_not_stall_the_others() {
        let options = livesync::OpenOptions::default().readers(1);
        let (db, _dir) = common::file_db_with(todo_schema(), options).await;
        let mut copies = [(); 3].map(|_| count_query(&db).watch());
        for copy in &mut copies {
            assert_eq!(next(copy).await.unwrap(), [0]);
        }
        let [mut first, mut second, mut third] = copies;
        // The only reader is held busy, so the run `first` starts surely waits: it is
        // in flight when `first` is dropped.
        let reader = HeldReader::hold(&db).await;
        insert(&db, 1).await;
        assert!(futures::FutureExt::now_or_never(first.next()).is_none());
        // `second` joins that run (its snapshot will include the insert) before
        // `first` is dropped, so the run it awaits is one whose owner is gone.
        let shared_before = second.shared_run_count();
        let mut second_next = Box::pin(second.next());
        assert!(futures::poll!(&mut second_next).is_pending());
        drop(first);
        reader.release().await;
        assert_eq!(
            in_time("the joined run", second_next)
                .await
                .unwrap()
                .unwrap(),
            [1]
        );
        assert_eq!(
            second.shared_run_count(),
            shared_before + 1,
            "second took first's run"
        );
        assert_eq!(next(&mut third).await.unwrap(), [1]);
    }

    #[tokio::test]
    async fn copies_each_driven_by_a_task_end_on_the_final_state() {
        let (db, _dir) = file_db(todo_schema()).await;
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let mut live = count_query(&db).watch();
                tokio::spawn(async move {
                    // Bounded: 200 inserts cannot need more items than that.
                    for _ in 0..=200 {
                        let count = next(&mut live).await.unwrap()[0];
                        if count == 200 {
                            return (live.run_count(), live.shared_run_count());
                        }
                    }
                    panic!("never saw the final count");
                })
            })
            .collect();
        for i in 0..200 {
            insert(&db, i).await;
        }
        let (mut executed, mut received) = (0, 0);
        for task in tasks {
            let (runs, shared) = in_time("the final count", task).await.unwrap();
            executed += runs - shared;
            received += runs;
        }
        let fresh: i64 = db
            .query("SELECT count(*) FROM todos")
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(fresh, 200);
        // Without sharing every result received is a run of its own (measured with
        // sharing: about 200 runs for about 4,000 results).
        assert!(
            executed * 4 < received,
            "the SQL ran {executed} times for {received} results"
        );
    }
}
