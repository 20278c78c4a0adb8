//! Shared setup for the integration tests: schemas and small helpers.
//!
//! Every test binary compiles this module on its own (`mod common;`) and uses a part of
//! it, hence `dead_code` is allowed. Submodules by concern:
//! - [`wait`]: the one bound for waiting ([`wait::WAIT`]) and the bounded polls;
//! - [`sync`] (feature `testing`): clients of the in-process `TestSyncService`;
//! - [`streams`] (with a Leptos adapter): live values backed by sync streams;
//! - [`tls`]: a TLS server whose certificate nobody trusts.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use livesync::{
    Column, Database, Index, IndexColumn, OpenOptions, Schema, Table, TrackPreviousValues,
};

#[cfg(all(feature = "testing", any(feature = "leptos", feature = "leptos08")))]
pub mod streams;
#[cfg(feature = "testing")]
pub mod sync;
pub mod tls;
pub mod wait;

/// The name (prefix) of every thread on which a test runs a tokio server for a client
/// on another executor ([`sync::ServiceThread`], [`tls::untrusted_server_thread`]);
/// short enough to survive Linux's 15-byte thread names.
pub const SERVICE_THREAD_PREFIX: &str = "tokio-test-svc";

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

/// A file database opened with `options` in a fresh temporary directory (kept alive by
/// the returned guard).
pub async fn file_db_with(schema: Schema, options: OpenOptions) -> (Database, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::open_with(dir.path().join("test.db"), schema, options)
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

/// The first column of `sql`'s rows as strings, converted as in [`rows`].
pub async fn strings(db: &Database, sql: &str) -> Vec<String> {
    rows(db, sql)
        .await
        .into_iter()
        .map(|row| row.into_iter().next().expect("a query with a column"))
        .collect()
}

/// `target/<profile>/examples/<name>`; panics saying how to build it when it is missing
/// (a plain `cargo test --all-features` builds the examples, `--tests` or `--test NAME`
/// alone does not).
#[track_caller]
pub fn example_binary(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let binary = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .join("examples")
        .join(name);
    assert!(
        binary.exists(),
        "{} is missing: run `cargo test --all-features` (which builds the examples) or `cargo build --examples --all-features` first",
        binary.display()
    );
    binary
}
