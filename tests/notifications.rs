//! Table-change notifications: one event per committed transaction, user-facing names,
//! nothing for rollbacks, bounded memory for slow watchers, and visibility to readers.

mod common;

use std::time::Duration;

use common::wait::in_time;
use common::{file_db, todo_schema, tv12_schema};
use futures::StreamExt;
use livesync::{Database, Error, TableUpdates};

async fn next(stream: &mut livesync::TableUpdateStream) -> TableUpdates {
    in_time("an event", stream.next())
        .await
        .expect("stream still open")
}

fn names(update: &TableUpdates) -> Vec<&str> {
    update.tables().collect()
}

#[tokio::test]
async fn one_event_per_committed_transaction_with_user_facing_names() {
    let db = Database::in_memory(tv12_schema()).await.unwrap();
    let mut all = db.watch_all_updates();
    db.transaction(|tx| {
        for i in 0..10 {
            tx.execute(
                "INSERT INTO my_todos(id, description) VALUES (?1, 'x')",
                [i.to_string()],
            )?;
        }
        tx.execute("INSERT INTO drafts(id, body) VALUES ('d', 'b')", [])?;
        Ok(())
    })
    .await
    .unwrap();
    db.execute("INSERT INTO drafts(id, body) VALUES ('e', 'b')", ())
        .await
        .unwrap();

    let first = next(&mut all).await;
    assert_eq!(names(&first), ["drafts", "my_todos", "ps_crud"]);
    assert!(!first.is_lagged());
    assert_eq!(names(&next(&mut all).await), ["drafts"]);
}

#[tokio::test]
async fn rolled_back_transactions_and_unrelated_tables_produce_nothing() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.execute_batch("CREATE TABLE other(x)").await.unwrap();
    let mut todos = db.watch_tables(["todos"]);

    let err = db
        .transaction(|tx| {
            tx.execute(
                "INSERT INTO todos(id, description) VALUES ('gone', 'x')",
                [],
            )?;
            Err::<(), _>(Error::UnexpectedData("changed my mind".into()))
        })
        .await;
    assert!(err.is_err());
    let panicked = db
        .transaction(|tx| -> livesync::Result<()> {
            tx.execute(
                "INSERT INTO todos(id, description) VALUES ('gone2', 'x')",
                [],
            )?;
            panic!("boom");
        })
        .await;
    assert!(matches!(panicked, Err(Error::Panicked { .. })));
    db.execute("INSERT INTO other VALUES (1)", ())
        .await
        .unwrap();
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('kept', 'x')",
        (),
    )
    .await
    .unwrap();

    // The first event is the committed insert; nothing came before it.
    assert_eq!(names(&next(&mut todos).await), ["todos"]);
    let nothing = tokio::time::timeout(Duration::from_millis(50), todos.next()).await;
    assert!(nothing.is_err(), "no further event expected");
}

#[tokio::test]
async fn initial_event_lists_the_watched_tables() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    let mut updates = db.watch_tables(["todos", "ps_crud"]).with_initial_event();
    assert_eq!(names(&next(&mut updates).await), ["ps_crud", "todos"]);
    db.execute("INSERT INTO todos(id) VALUES ('1')", ())
        .await
        .unwrap();
    assert_eq!(names(&next(&mut updates).await), ["ps_crud", "todos"]);
}

#[tokio::test]
async fn a_lagging_watcher_gets_merged_events_but_never_misses_a_change() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.execute_batch("CREATE TABLE other(x)").await.unwrap();
    let mut slow = db.watch_tables(["todos", "other"]);
    let mut fast = db.watch_tables(["todos"]);
    // Far more commits than the channel holds, none read by `slow` meanwhile.
    for i in 0..1000 {
        db.execute("INSERT INTO other VALUES (?1)", [i])
            .await
            .unwrap();
        if i % 100 == 0 {
            db.execute("INSERT INTO todos(id) VALUES (?1)", [i.to_string()])
                .await
                .unwrap();
            assert_eq!(names(&next(&mut fast).await), ["todos"]);
        }
    }
    db.execute("INSERT INTO todos(id) VALUES ('last')", ())
        .await
        .unwrap();

    let first = next(&mut slow).await;
    assert!(first.is_lagged(), "the overflow is reported");
    assert_eq!(names(&first), ["other", "todos"], "exactly what changed");
    // Events still queued were covered by the merged report; anything after is new.
    let mut received = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), slow.next()).await {
        received += 1;
        assert!(received <= 256, "memory is bounded by the channel capacity");
    }
    assert_eq!(names(&next(&mut fast).await), ["todos"]);
    db.execute("INSERT INTO other VALUES ('after')", ())
        .await
        .unwrap();
    assert_eq!(names(&next(&mut slow).await), ["other"]);
}

#[tokio::test]
async fn a_lagging_watcher_of_an_untouched_table_hears_nothing() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.execute_batch("CREATE TABLE other(x)").await.unwrap();
    let mut quiet = db.watch_tables(["todos"]);
    let mut everything = db.watch_all_updates();
    for i in 0..600 {
        db.execute("INSERT INTO other VALUES (?1)", [i])
            .await
            .unwrap();
    }
    // Both fell behind; the merged report names only what changed.
    let merged = next(&mut everything).await;
    assert!(merged.is_lagged());
    assert_eq!(names(&merged), ["other"]);
    let nothing = tokio::time::timeout(Duration::from_millis(100), quiet.next()).await;
    assert!(
        nothing.is_err(),
        "no event for a table nobody wrote: {nothing:?}"
    );
    db.execute("INSERT INTO todos(id) VALUES ('t')", ())
        .await
        .unwrap();
    assert_eq!(names(&next(&mut quiet).await), ["todos"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_woken_by_an_event_sees_the_change() {
    let (db, _dir) = file_db(todo_schema()).await;
    let mut updates = db.watch_tables(["todos"]);
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                db.execute(
                    "INSERT INTO todos(id, done) VALUES (?1, ?2)",
                    (i.to_string(), i),
                )
                .await
                .unwrap();
            }
        })
    };
    for seen in 1..=300 {
        let update = next(&mut updates).await;
        let count: i64 = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM todos", [], |r| r.get(0))?))
            .await
            .unwrap();
        // Each event stands for one commit; a lagged one for many. Either way every
        // commit announced so far is visible to a reader connection.
        if !update.is_lagged() {
            assert!(
                count >= seen,
                "event {seen} announced a commit the reader cannot see ({count} rows)"
            );
        }
        if count == 300 {
            break;
        }
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn streams_end_when_the_database_closes() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    let mut updates = db.watch_all_updates();
    db.close().await;
    assert!(
        in_time("the end of the stream", updates.next())
            .await
            .is_none()
    );
}

#[tokio::test]
async fn writes_to_an_apps_without_rowid_table_are_announced() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.execute_batch("CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID")
        .await
        .unwrap();
    let mut kv = db.watch_tables(["kv"]);
    db.execute("INSERT INTO kv VALUES ('a', 1)", ())
        .await
        .unwrap();
    assert_eq!(names(&next(&mut kv).await), ["kv"]);
    db.execute("UPDATE kv SET v = 2 WHERE k = 'a'", ())
        .await
        .unwrap();
    assert_eq!(names(&next(&mut kv).await), ["kv"]);
    db.execute("DELETE FROM kv", ()).await.unwrap();
    assert_eq!(names(&next(&mut kv).await), ["kv"]);
}

#[tokio::test]
async fn deleting_every_row_of_a_plain_table_is_announced_and_live_queries_follow() {
    let (db, _dir) = file_db(todo_schema()).await;
    db.execute_batch("CREATE TABLE log(x); INSERT INTO log VALUES (1), (2), (3)")
        .await
        .unwrap();
    let mut log = db.watch_tables(["log"]);
    let mut count = db
        .query::<i64>("SELECT count(*) FROM log")
        .throttle(Duration::ZERO)
        .watch();
    assert_eq!(
        in_time("the first count", count.next())
            .await
            .unwrap()
            .unwrap(),
        [3]
    );
    // A `DELETE` without `WHERE` is where SQLite would truncate the table in one step.
    db.execute("DELETE FROM log", ()).await.unwrap();
    assert_eq!(names(&next(&mut log).await), ["log"]);
    assert_eq!(
        in_time("the live query re-runs after the truncate", count.next())
            .await
            .unwrap()
            .unwrap(),
        [0]
    );
}
