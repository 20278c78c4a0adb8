//! # livesync
//!
//! An embedded reactive store for async Rust UIs. The app keeps its data in a local SQLite
//! database; livesync records every local write for upload, announces every committed
//! change, and (in later layers) keeps the database in step with a backend speaking the
//! PowerSync sync protocol and turns queries into live, typed streams.
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

#![warn(
    missing_docs,
    unreachable_pub,
    clippy::await_holding_lock,
    clippy::todo
)]

mod crud;
mod db;
mod error;
pub mod schema;

pub use crud::{CrudBatch, CrudEntry, CrudTransaction, UpdateType};
pub use db::{Database, OpenOptions, TableUpdateStream, TableUpdates};
pub use error::{Error, Result};
pub use schema::{
    Column, ColumnType, Identifier, Index, IndexColumn, Schema, Table, TrackPreviousValues,
};

/// The SQLite bindings livesync uses, for the types that appear in its API
/// (`Connection`, `Transaction`, `params!`, ...).
pub use rusqlite;

/// The `User-Agent` livesync sends with sync requests: `livesync/<version> (<os>; <arch>)`.
pub const USER_AGENT: &str = env!("LIVESYNC_USER_AGENT");
