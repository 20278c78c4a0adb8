//! # livesync
//!
//! An embedded reactive store for async Rust UIs. The app keeps its data in a local SQLite
//! database; livesync records every local write for upload, announces every committed
//! change, keeps the database in step with a backend speaking the PowerSync sync protocol,
//! and turns queries into live, typed streams.
//!
//! ## Guide
//! 1. Describe the tables with a [`Schema`] (or load PowerSync schema JSON with
//!    [`Schema::from_json`]).
//! 2. [`Database::open`] a file (or [`Database::in_memory`]) with that schema.
//! 3. Read and write the tables with plain SQL: [`Database::execute`],
//!    [`Database::read`], [`Database::transaction`].
//! 4. React to changes with [`Database::watch_tables`].
//! 5. Upload local writes: [`Database::get_next_crud_transaction`], then
//!    [`CrudTransaction::complete`].
//! 6. Sync: implement [`BackendConnector`] (credentials, and step 5 inside
//!    `upload_data`), then [`Database::connect`]; observe [`Database::status`] /
//!    [`Database::watch_status`]. Tests and demos can use the in-process
//!    `testing::TestSyncService` (feature `testing`).
//! 7. Choose what to sync with sync streams: [`Database::sync_stream`] and
//!    [`SyncStream::subscribe`] (the data stays while the handle lives, then for a TTL);
//!    per-stream state is in [`SyncStatus::streams`].
//! 8. Pick the executor: tokio by default; smol or any other through a [`Runtime`] given
//!    to [`OpenOptions::runtime`]. Live queries work under any executor; sync under smol
//!    (feature `smol`), or any executor with feature `async-io-http`, starts no tokio
//!    runtime (its requests use hyper over `async-io` instead of reqwest).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
//! use futures::StreamExt;
//! use livesync::{Column, Database, Schema, Table};
//!
//! let schema = Schema::new([Table::new("todos", [Column::text("title"), Column::integer("done")])]);
//! let db = Database::in_memory(schema).await?;
//! let mut changes = db.watch_tables(["todos"]);
//!
//! db.execute("INSERT INTO todos(id, title, done) VALUES ('1', 'write docs', 0)", ()).await?;
//! assert!(changes.next().await.unwrap().contains("todos"));
//!
//! let upload = db.get_next_crud_transaction().await?.unwrap();
//! assert_eq!(upload.crud[0].data.as_ref().unwrap()["title"], "write docs");
//! # Ok(()) }
//! ```
//!
//! ## Design
//! One writer thread owns the only read-write connection; a few reader threads own
//! read-only connections (WAL mode), so reads never wait for writes. Async methods send
//! closures to those threads and await the answer, so SQLite never blocks an async
//! worker. Local writes go through views whose `INSTEAD OF` triggers store the row as
//! JSON and append to the upload queue in the same transaction. Change notifications are
//! collected by SQLite hooks and published only after the commit is visible to readers.
//! The sync engine's two background tasks and every timer come from the database's
//! [`Runtime`]: nothing in the core assumes a particular executor.

// Lints are set once for the workspace, in Cargo.toml's `[workspace.lints]`.
// On docs.rs, items behind a feature say which feature they need.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod connector;
mod crud;
mod database;
#[cfg(feature = "dioxus")]
#[cfg_attr(docsrs, doc(cfg(feature = "dioxus")))]
pub mod dioxus;
mod endpoint;
mod error;
mod http_client;
// Native only for now: in the browser reqwest's futures are not `Send`, which
// `BackendConnector` requires there too (the browser work lifts that).
#[cfg(not(target_arch = "wasm32"))]
mod http_connector;
#[cfg(feature = "leptos")]
#[cfg_attr(docsrs, doc(cfg(feature = "leptos")))]
pub mod leptos;
#[cfg(feature = "leptos08")]
#[cfg_attr(docsrs, doc(cfg(feature = "leptos08")))]
pub mod leptos08;
pub mod query;
mod runtime;
pub mod schema;
mod service_codes;
mod store;
mod sync;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(any(feature = "leptos", feature = "leptos08"))]
mod ui_feed;

pub use connector::{BackendConnector, Credentials};
pub use crud::{CrudBatch, CrudEntry, CrudTransaction, UpdateType, UploadQueueStats};
pub use database::Database;
pub use error::{Error, Result, TransportFailure};
#[cfg(not(target_arch = "wasm32"))]
pub use http_connector::{HttpConnector, HttpConnectorBuilder, RejectedUpload};
pub use query::{ColumnValue, FromRow, LiveDiff, LiveQuery, Query, QueryDiff, RowValues, Serde};
pub use runtime::{Delay, Runtime, Spawner, Task, Timer};
pub use store::{OpenOptions, TableUpdateStream, TableUpdates};
pub use sync::{
    CheckpointMode, CheckpointRequest, DEFAULT_STREAM_TTL, DownloadProgress, FULL_SYNC,
    MAX_STREAM_TTL, PriorityProgress, PriorityStatus, StreamProgress, SubscribeOptions, SyncError,
    SyncMode, SyncOptions, SyncStatus, SyncStream, SyncStreamStatus, SyncStreamSubscription,
};

/// Derives [`FromRow`] for a struct with named fields: each field is read from the
/// column of the same name (looked up once per statement, not per row).
///
/// Field types: `String`, integers, `f64`, `bool` (0/1), `Vec<u8>`, `Option<T>` for
/// nullable columns, `serde_json::Value`, and any `Deserialize` type marked
/// `#[row(json)]` (a JSON text column). Field options: `#[row(rename = "column")]`,
/// `#[row(default)]` (a missing column gives `Default::default()`). On the struct,
/// `#[row(table = "todos")]` also generates `fn table() -> Table`, so the schema can be
/// built from the row types.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use livesync::{Database, Row, Schema};
///
/// #[derive(Row, Debug, PartialEq)]
/// #[row(table = "todos")]
/// struct Todo {
///     id: String,
///     #[row(rename = "description")]
///     text: String,
///     done: bool,
///     #[row(json)]
///     tags: Vec<String>,
///     #[row(default)]
///     rank: Option<i64>,
/// }
///
/// let db = Database::in_memory(Schema::new([Todo::table()])).await?;
/// db.execute(
///     r#"INSERT INTO todos(id, description, done, tags) VALUES ('1', 'milk', 1, '["shop"]')"#,
///     (),
/// )
/// .await?;
/// let todo: Todo = db.query("SELECT * FROM todos").fetch_one().await?;
/// assert_eq!(todo.tags, ["shop"]);
/// assert!(todo.done && todo.rank.is_none());
/// # Ok(()) }
/// ```
pub use livesync_macros::Row;

/// Items the `Row` derive expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::query::row::{
        column_index, decode_column, decode_json_column, missing_column, require_column,
    };
}
pub use schema::{
    Column, ColumnType, Identifier, Index, IndexColumn, PendingStatement, PendingStatementValue,
    RawTable, Schema, Table, TrackPreviousValues,
};

// The README's Rust snippets compile (and the runnable ones run) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The SQLite bindings livesync uses, for the types that appear in its API
/// (`Connection`, `Transaction`, `params!`, ...).
pub use rusqlite;

/// The `User-Agent` livesync sends with sync requests: `livesync/<version> (<os>; <arch>)`.
pub const USER_AGENT: &str = env!("LIVESYNC_USER_AGENT");
