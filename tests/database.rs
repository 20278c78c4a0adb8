//! The Database handle: WAL isolation, transactions, the async API, and a clear error
//! for every kind of bad input.

mod common;

use std::time::Duration;

use common::{file_db, rows, todo_schema};
use livesync::{Database, Error, OpenOptions, Schema};

#[test]
fn database_is_a_cheap_send_sync_handle() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Database>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_run_during_a_write_and_see_only_committed_data() {
    let (db, _dir) = file_db(todo_schema()).await;
    let (inserted_tx, inserted) = tokio::sync::oneshot::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let write = tokio::spawn({
        let db = db.clone();
        async move {
            db.transaction(move |tx| {
                tx.execute("INSERT INTO todos(id, description) VALUES ('a', 'x')", [])?;
                inserted_tx.send(()).unwrap();
                // Hold the transaction open until the reader has looked.
                released.recv_timeout(Duration::from_secs(10)).unwrap();
                Ok(())
            })
            .await
        }
    });
    inserted.await.unwrap();
    // The write transaction is open and holds the writer: a read still runs, and does
    // not see the uncommitted row.
    assert_eq!(
        rows(&db, "SELECT count(*) FROM todos").await,
        vec![vec!["0"]]
    );
    release.send(()).unwrap();
    write.await.unwrap().unwrap();
    assert_eq!(
        rows(&db, "SELECT count(*) FROM todos").await,
        vec![vec!["1"]]
    );
}

#[tokio::test]
async fn transaction_commits_on_ok_and_rolls_back_on_err_or_panic() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    let err = db
        .transaction(|tx| {
            tx.execute("INSERT INTO todos(id) VALUES ('a')", [])?;
            tx.execute("INSERT INTO todos(id) VALUES ('a')", [])?; // duplicate id
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    let err = db
        .transaction(|tx| -> livesync::Result<()> {
            tx.execute("INSERT INTO todos(id) VALUES ('b')", [])?;
            panic!("closure bug");
        })
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Panicked { message } if message == "closure bug"));
    // Nothing of either reached the data or the upload queue, and the tx ids were rolled back.
    assert!(rows(&db, "SELECT * FROM todos").await.is_empty());
    assert!(rows(&db, "SELECT * FROM ps_crud").await.is_empty());
    db.transaction(|tx| Ok(tx.execute("INSERT INTO todos(id) VALUES ('c')", [])?))
        .await
        .unwrap();
    let entry = db.get_next_crud_transaction().await.unwrap().unwrap();
    assert_eq!(entry.transaction_id, Some(1));
}

#[tokio::test]
async fn a_transaction_left_open_by_a_write_closure_is_rolled_back() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.write(|conn| {
        conn.execute_batch("BEGIN; INSERT INTO todos(id) VALUES ('x');")?;
        Ok(())
    })
    .await
    .unwrap();
    assert!(rows(&db, "SELECT * FROM todos").await.is_empty());
    db.execute("INSERT INTO todos(id) VALUES ('y')", ())
        .await
        .unwrap();
    assert_eq!(rows(&db, "SELECT id FROM todos").await, vec![vec!["y"]]);
}

#[tokio::test]
async fn reads_cannot_write_on_file_or_memory_databases() {
    let (file, _dir) = file_db(todo_schema()).await;
    let memory = Database::in_memory(todo_schema()).await.unwrap();
    for db in [file, memory] {
        let err = db
            .read(|conn| Ok(conn.execute("INSERT INTO todos(id) VALUES ('x')", [])?))
            .await
            .unwrap_err();
        assert!(err.to_string().to_lowercase().contains("read"), "{err}");
        // The database stays writable afterwards.
        db.execute("INSERT INTO todos(id) VALUES ('y')", ())
            .await
            .unwrap();
        // A read that leaves a transaction open does not leave it to the next write
        // (in memory the read ran on the writer's own connection).
        db.read(|conn| Ok(conn.execute_batch("BEGIN; SELECT count(*) FROM todos")?))
            .await
            .unwrap();
        db.execute("INSERT INTO todos(id) VALUES ('z')", ())
            .await
            .unwrap();
        let count = db
            .query::<i64>("SELECT count(*) FROM todos")
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(count, 2);
        // Nor does one that panics inside it.
        let panicked = db
            .read(|conn| -> livesync::Result<()> {
                conn.execute_batch("BEGIN; SELECT count(*) FROM todos")?;
                panic!("a read that fails half way")
            })
            .await;
        assert!(
            matches!(panicked, Err(Error::Panicked { .. })),
            "{panicked:?}"
        );
        db.execute("INSERT INTO todos(id) VALUES ('after the panic')", ())
            .await
            .unwrap();
        let count = db
            .query::<i64>("SELECT count(*) FROM todos")
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(count, 3);
    }
}

#[tokio::test]
async fn invalid_sql_is_an_error_naming_the_statement() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    let err = db.execute("SELEC * FROM todos", ()).await.unwrap_err();
    assert!(matches!(err, Error::Sqlite { .. }));
    assert!(err.to_string().contains("SELEC * FROM todos"), "{err}");
    let err = db
        .execute_batch("INSERT INTO nowhere VALUES (1)")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
    let err = db
        .execute("INSERT INTO todos(description) VALUES ('no id')", ())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("id is required"), "{err}");
    let err = db
        .execute("INSERT INTO todos(id) VALUES (5)", ())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("id should be text"), "{err}");
    db.execute("INSERT INTO todos(id) VALUES ('a')", ())
        .await
        .unwrap();
    let err = db
        .execute("UPDATE todos SET id = 'b'", ())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Cannot update id"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "these are not the pages you are looking for ".repeat(200),
    )
    .unwrap();
    let err = Database::open(&path, todo_schema()).await.unwrap_err();
    assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
}

#[tokio::test]
async fn a_locked_database_times_out_with_a_busy_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    // livesync first, so SQLite is configured by it before this test's own connection
    // (see sqlite_memory_statistics_are_off).
    drop(Database::in_memory(todo_schema()).await.unwrap());
    let other = livesync::rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("PRAGMA journal_mode = WAL; BEGIN EXCLUSIVE; CREATE TABLE hold(x);")
        .unwrap();
    let options = OpenOptions::default().busy_timeout(Duration::from_millis(100));
    let err = Database::open_with(&path, todo_schema(), options.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert!(err.to_string().contains("busy_timeout"), "{err}");
    other.execute_batch("COMMIT").unwrap();
    let db = Database::open_with(&path, todo_schema(), options)
        .await
        .unwrap();
    db.execute("INSERT INTO todos(id) VALUES ('1')", ())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_read_only_database_is_reported_as_such() {
    let (db, dir) = file_db(todo_schema()).await;
    db.close().await;
    // Permission bits do not stop root, so open through SQLite's read-only URI mode,
    // which fails the same way a read-only file does.
    let uri = format!("file:{}?mode=ro", dir.path().join("test.db").display());
    let err = Database::open(&uri, todo_schema()).await.unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    assert!(err.to_string().contains("permissions"), "{err}");
}

#[tokio::test]
async fn a_missing_directory_cannot_be_opened() {
    let err = Database::open("/nonexistent-dir/sub/app.db", Schema::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CannotOpen { .. }), "{err:?}");
}

#[tokio::test]
async fn a_closed_database_refuses_work_on_every_handle() {
    let (db, _dir) = file_db(todo_schema()).await;
    let clone = db.clone();
    db.close().await;
    assert!(matches!(
        clone.execute("SELECT 1", ()).await,
        Err(Error::Closed)
    ));
    assert!(matches!(clone.read(|_| Ok(())).await, Err(Error::Closed)));
    assert!(matches!(
        db.get_next_crud_transaction().await,
        Err(Error::Closed)
    ));
    db.close().await; // closing twice is fine
}

#[tokio::test]
async fn the_client_id_is_a_uuid_that_survives_reopening() {
    let (db, dir) = file_db(todo_schema()).await;
    let id = db.client_id().await.unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(id.as_bytes()[14], b'4', "version 4: {id}");
    db.close().await;
    let db = Database::open(dir.path().join("test.db"), todo_schema())
        .await
        .unwrap();
    assert_eq!(db.client_id().await.unwrap(), id);
}

#[tokio::test]
async fn file_databases_use_wal_and_normal_sync() {
    let (db, _dir) = file_db(todo_schema()).await;
    let mode: String = db
        .write(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = db
        .write(|c| Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(sync, 1, "NORMAL");
}

/// The writer checkpoints the WAL itself (after answering a write): the WAL file is
/// reused from its start instead of growing with everything ever written.
#[tokio::test]
async fn the_wal_stays_bounded_under_many_small_writes() {
    let (db, dir) = file_db(todo_schema()).await;
    let description = "x".repeat(4_000);
    // ~24 MB through the WAL (each row, its CRUD entry) in 3,000 transactions.
    for i in 0..3_000 {
        db.execute(
            "INSERT INTO todos(id, description) VALUES (?1, ?2)",
            (format!("t{i}"), description.clone()),
        )
        .await
        .unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("test.db-wal"))
        .unwrap()
        .len();
    // 1,000 pages of 4 KiB between checkpoints, plus one transaction's worth.
    assert!(wal < 6 * 1024 * 1024, "WAL grew to {wal} bytes");
    assert_eq!(
        rows(&db, "SELECT count(*) FROM todos").await,
        [["3000".to_string()]]
    );
}

#[test]
fn the_store_needs_no_particular_async_runtime() {
    // Everything runs on livesync's own threads: a plain executor is enough.
    futures::executor::block_on(async {
        use futures::StreamExt;
        let db = Database::in_memory(todo_schema()).await.unwrap();
        let mut updates = db.watch_tables(["todos"]);
        db.execute("INSERT INTO todos(id) VALUES ('x')", ())
            .await
            .unwrap();
        assert!(updates.next().await.unwrap().contains("todos"));
        db.close().await;
    });
}

#[test]
fn the_user_agent_names_the_crate_version_and_platform() {
    assert!(livesync::USER_AGENT.starts_with(&format!("livesync/{} (", env!("CARGO_PKG_VERSION"))));
    assert!(
        livesync::USER_AGENT.contains(std::env::consts::ARCH),
        "{}",
        livesync::USER_AGENT
    );
}

#[tokio::test]
async fn close_waits_for_every_connection_so_the_wal_is_folded_back() {
    let (db, dir) = file_db(todo_schema()).await;
    db.execute("INSERT INTO todos(id) VALUES ('x')", ())
        .await
        .unwrap();
    let _ = rows(&db, "SELECT * FROM todos").await; // a reader connection was used
    assert!(dir.path().join("test.db-wal").exists());
    db.close().await;
    // SQLite checkpoints and removes the WAL when the last connection closes.
    assert!(
        !dir.path().join("test.db-wal").exists(),
        "a connection was still open after close()"
    );
}

#[tokio::test]
async fn one_file_has_one_handle_per_process_and_another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = Database::open(&path, todo_schema()).await.unwrap();
    let b = Database::open(&path, todo_schema()).await.unwrap();
    assert!(a == b, "a second open in one process shares the handle");
    a.close().await;

    // Another process holding the file's lock (simulated with a lock of our own).
    let lock = std::fs::File::create(dir.path().join("shared.db-livesync-lock")).unwrap();
    lock.try_lock().unwrap();
    let err = Database::open(&path, todo_schema()).await.unwrap_err();
    assert!(
        matches!(err, livesync::Error::OpenInAnotherProcess { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("another process"), "{err}");
}

#[tokio::test]
async fn sqlite_errors_name_app_tables_not_internal_data_tables() {
    use std::error::Error as _;
    let schema = Schema::new([
        livesync::Table::new("todos", [livesync::Column::text("description")]),
        livesync::Table::new("drafts", [livesync::Column::text("body")]).local_only(),
    ]);
    let (db, _dir) = file_db(schema).await;
    for table in ["todos", "drafts"] {
        let insert = format!("INSERT INTO {table}(id) VALUES ('1')");
        db.execute(insert.clone(), ()).await.unwrap();
        let err = db.execute(insert.clone(), ()).await.unwrap_err();
        assert!(matches!(err, Error::Sqlite { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("UNIQUE constraint failed: {table}.id")),
            "{message}"
        );
        assert!(!message.contains("ps_data"), "{message}");
        assert!(
            message.contains(&insert),
            "the statement is kept: {message}"
        );
        // The original SQLite error stays available as the source.
        let source = err.source().expect("source").to_string();
        assert!(source.contains("ps_data"), "{source}");
    }
    // The same through a typed query (a write inside a read is refused first, so use
    // a write job) and through a transaction.
    let err = db
        .transaction(|tx| {
            tx.execute("INSERT INTO todos(id) VALUES ('1')", [])?;
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("todos.id") && !err.to_string().contains("ps_data"),
        "{err}"
    );
    // Names that merely contain the prefix are left alone.
    let err = db
        .execute("SELECT * FROM xps_data__todos", ())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no such table: xps_data__todos"), "{err}");
}

/// `xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`, lowercase hex.
fn is_uuid_v4(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            14 => *b == b'4',
            19 => b"89ab".contains(b),
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
        })
}

#[tokio::test]
async fn the_uuid_sql_function_gives_random_version_4_ids_on_every_connection() {
    let (db, _dir) = file_db(todo_schema()).await;
    // On a reader.
    let (a, b): (String, String) = db.query("SELECT uuid(), uuid()").fetch_one().await.unwrap();
    assert!(is_uuid_v4(&a) && is_uuid_v4(&b), "{a} {b}");
    assert_ne!(a, b);
    // In a write through a view (the writer), as PowerSync's docs write it.
    for _ in 0..3 {
        db.execute(
            "INSERT INTO todos(id, description, done) VALUES (uuid(), 'milk', 0)",
            (),
        )
        .await
        .unwrap();
    }
    let ids: Vec<String> = db.query("SELECT id FROM todos").fetch_all().await.unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| is_uuid_v4(id)), "{ids:?}");
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 3);
    // In an app table's DEFAULT and an app trigger (schema objects), and per row of one
    // statement (not deterministic: SQLite must not reuse one value).
    db.execute_batch(
        "CREATE TABLE notes(id TEXT PRIMARY KEY DEFAULT (uuid()), body TEXT);
         CREATE TABLE note_log(entry TEXT);
         CREATE TRIGGER note_logged AFTER INSERT ON notes BEGIN
           INSERT INTO note_log(entry) VALUES (uuid());
         END;
         INSERT INTO notes(body) VALUES ('a'), ('b');",
    )
    .await
    .unwrap();
    let notes: Vec<String> = db.query("SELECT id FROM notes").fetch_all().await.unwrap();
    let log: Vec<String> = db
        .query("SELECT entry FROM note_log")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!((notes.len(), log.len()), (2, 2));
    assert!(notes.iter().chain(&log).all(|id| is_uuid_v4(id)));
    assert_ne!(notes[0], notes[1]);
    let per_row: Vec<String> = db
        .query("SELECT uuid() FROM (SELECT 1 UNION ALL SELECT 2)")
        .fetch_all()
        .await
        .unwrap();
    assert_ne!(per_row[0], per_row[1]);
    // In-memory databases have it too.
    let memory = Database::in_memory(Schema::default()).await.unwrap();
    let id: String = memory.query("SELECT uuid()").fetch_one().await.unwrap();
    assert!(is_uuid_v4(&id), "{id}");
}

#[tokio::test]
async fn a_corrupted_file_is_reported_as_corrupt_at_open_or_on_the_first_query() {
    use std::io::{Seek, SeekFrom, Write};
    let schema = Schema::new([
        livesync::Table::new("drafts", [livesync::Column::text("body")]).local_only(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drafts.db");
    let db = Database::open(&path, schema.clone()).await.unwrap();
    db.transaction(|tx| {
        for i in 0..3000 {
            tx.execute(
                "INSERT INTO drafts(id, body) VALUES (?1, ?2)",
                (format!("{i:05}"), "some draft text ".repeat(8)),
            )?;
        }
        Ok(())
    })
    .await
    .unwrap();
    db.close().await; // folds the WAL back into the file
    let pages = std::fs::metadata(&path).unwrap().len() / 4096;
    assert!(pages > 50, "{pages} pages");
    // Garbage over a page in the middle; the header and the schema stay intact.
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(pages / 2 * 4096)).unwrap();
    file.write_all(&[0xA5; 4096]).unwrap();
    drop(file);

    let err = match Database::open(&path, schema).await {
        Err(err) => err,
        Ok(db) => db
            .query::<(String, String)>("SELECT id, body FROM drafts ORDER BY id")
            .fetch_all()
            .await
            .expect_err("a query over every page meets the garbage"),
    };
    assert!(
        matches!(&err, Error::Corrupt { path: p } if p == &path),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("drafts.db") && message.contains("backup") && message.contains("delete"),
        "{message}"
    );
}

#[tokio::test]
async fn a_full_storage_is_a_storage_full_error_and_keeps_what_was_written() {
    let (db, _dir) = file_db(todo_schema()).await;
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('kept', 'x')",
        (),
    )
    .await
    .unwrap();
    // A quota on the writer's connection: a few pages more than the file has now.
    db.transaction(|tx| {
        let pages: i64 = tx.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        tx.query_row(
            &format!("PRAGMA max_page_count = {}", pages + 2),
            [],
            |_| Ok(()),
        )?;
        Ok(())
    })
    .await
    .unwrap();
    let err = db
        .transaction(|tx| {
            for i in 0..100 {
                tx.execute(
                    "INSERT INTO todos(id, description) VALUES (?1, printf('%.4000c', 'x'))",
                    [format!("big{i}")],
                )?;
            }
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StorageFull { .. }), "{err:?}");
    assert!(err.to_string().contains("storage is full"), "{err}");
    // The failed transaction is gone, what came before is readable.
    assert_eq!(
        rows(&db, "SELECT id FROM todos").await,
        vec![vec!["kept".to_owned()]]
    );
    // With room again, writes go on.
    db.transaction(|tx| {
        tx.query_row("PRAGMA max_page_count = 1073741823", [], |_| Ok(()))?;
        Ok(())
    })
    .await
    .unwrap();
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('after', 'x')",
        (),
    )
    .await
    .unwrap();
}

/// SQLite's memory statistics (one process-wide mutex on every allocation) are off once
/// livesync opened a database before anything else used SQLite: no test in this binary
/// opens a connection of its own.
#[tokio::test]
async fn sqlite_memory_statistics_are_off() {
    let db = Database::in_memory(todo_schema()).await.unwrap();
    db.execute("INSERT INTO todos(id, description) VALUES ('1', 'x')", ())
        .await
        .unwrap();
    #[allow(unsafe_code)]
    // SAFETY: a plain read of SQLite's counter, callable from any thread.
    let used = unsafe { livesync::rusqlite::ffi::sqlite3_memory_used() };
    assert_eq!(used, 0, "SQLite still counts its memory");
}
