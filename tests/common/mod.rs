//! Shared setup for the integration tests: schemas and small helpers.
#![allow(dead_code, unreachable_pub)]

use livesync::{Column, Database, Index, IndexColumn, Schema, Table, TrackPreviousValues};

/// `todos(description TEXT, done INTEGER)`, the schema of the protocol spec's test vectors.
pub fn todo_schema() -> Schema {
    Schema::new([Table::new(
        "todos",
        [Column::text("description"), Column::integer("done")],
    )])
}

/// The schema of docs/sync-protocol.md §11 TV12: every table option at once.
pub fn tv12_schema() -> Schema {
    Schema::new([
        Table::new(
            "todos",
            [
                Column::text("description"),
                Column::integer("done"),
                Column::real("score"),
            ],
        )
        .view_name("my_todos")
        .index(Index::new(
            "by_desc",
            [IndexColumn::descending("description")],
        ))
        .track_metadata()
        .ignore_empty_update()
        .track_previous_values(TrackPreviousValues::columns(["description"]).only_when_changed()),
        Table::new("logs", [Column::text("msg")]).insert_only(),
        Table::new("drafts", [Column::text("body")]).local_only(),
    ])
}

/// A file database in a fresh temporary directory (kept alive by the returned guard).
pub async fn file_db(schema: Schema) -> (Database, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::open(dir.path().join("test.db"), schema)
        .await
        .expect("open database");
    (db, dir)
}

/// Rows of `sql` as strings (NULL as "NULL"), read through the public read API.
pub async fn rows(db: &Database, sql: &str) -> Vec<Vec<String>> {
    let sql = sql.to_owned();
    db.read(move |conn| {
        let mut stmt = conn.prepare(&sql)?;
        let n = stmt.column_count();
        let rows = stmt.query_map([], |row| {
            (0..n)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        livesync::rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                        livesync::rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        livesync::rusqlite::types::ValueRef::Real(v) => v.to_string(),
                        livesync::rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        livesync::rusqlite::types::ValueRef::Blob(b) => format!("{b:?}"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await
    .expect("query")
}

/// Two clients of one in-process sync service (feature `testing`).
#[cfg(feature = "testing")]
pub mod synced {
    use std::time::Duration;

    use livesync::testing::{BucketRule, TestSyncService};
    use livesync::{Column, Database, Schema, SyncOptions, Table};

    /// Upper bound for anything a test waits for (bounded loops, never a hang).
    pub const WAIT: Duration = Duration::from_secs(10);

    /// `todos(description, owner_id)` and `lists(name)`.
    pub fn schema() -> Schema {
        Schema::new([
            Table::new(
                "todos",
                [Column::text("description"), Column::text("owner_id")],
            ),
            Table::new("lists", [Column::text("name")]),
        ])
    }

    /// A service that sends every `todos` and `lists` row to every user.
    pub async fn service() -> TestSyncService {
        TestSyncService::builder()
            .rule(BucketRule::global("todos", ["todos"]))
            .rule(BucketRule::global("lists", ["lists"]))
            .start()
            .await
            .expect("service starts")
    }

    /// An in-memory client connected as `user`, synced once.
    pub async fn client(service: &TestSyncService, user: &str) -> Database {
        let db = Database::in_memory(schema()).await.expect("open database");
        let options = SyncOptions::default()
            .retry_delay(Duration::from_millis(50))
            .crud_upload_throttle(Duration::from_millis(5));
        db.connect(service.connector(user), options)
            .await
            .expect("connect");
        tokio::time::timeout(WAIT, db.wait_for_first_sync())
            .await
            .expect("first sync in time")
            .expect("first sync");
        db
    }

    /// Polls `check` until it holds (every 5 ms, bounded by `WAIT`); the pauses let
    /// tasks on the current `LocalSet` run.
    pub async fn until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
