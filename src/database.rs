//! The [`Database`] facade: the whole public API of a livesync database in one place,
//! each method a short delegation to the layer that does the work — the local store
//! (`store/`), the upload queue (`crud.rs`), typed and live queries (`query/`) and the
//! sync engine (`sync/`). See `docs/architecture.md`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use futures::Stream;
use futures::stream::BoxStream;
use rusqlite::Connection;
use serde_json::Value;

use crate::crud::{self, CrudBatch, CrudTransaction, UploadQueueStats};
use crate::query::{FromRow, Query};
use crate::runtime::{BackgroundTask, MaybeSend, TaskCount};
use crate::schema::Schema;
use crate::store::{OpenOptions, Store, TableUpdateStream};
use crate::sync::{self, SyncOptions, SyncSlot, SyncStatus, SyncStream};
use crate::{BackendConnector, Result, Runtime};

/// A local livesync database: a cheap, cloneable, `Send + Sync` handle.
///
/// App code reads and writes the schema's tables with plain SQL; every write to a synced
/// table is queued for upload (see [`get_next_crud_transaction`](Self::get_next_crud_transaction)),
/// and every committed transaction is announced to [`watch_tables`](Self::watch_tables)
/// streams.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use livesync::{Column, Database, Schema, Table};
///
/// let schema = Schema::new([Table::new("todos", [Column::text("title"), Column::integer("done")])]);
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::open(dir.path().join("app.db"), schema).await?;
///
/// db.execute("INSERT INTO todos(id, title, done) VALUES (?1, ?2, 0)", ("t1", "buy milk")).await?;
/// let title: String = db
///     .read(|conn| Ok(conn.query_row("SELECT title FROM todos WHERE id = 't1'", [], |r| r.get(0))?))
///     .await?;
/// assert_eq!(title, "buy milk");
///
/// let pending = db.get_next_crud_transaction().await?.expect("the insert is queued");
/// assert_eq!(pending.crud[0].table, "todos");
/// pending.complete().await?;
/// db.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    sync: SyncSlot,
    runtime: Runtime,
    /// The background tasks spawned for this database that still exist.
    tasks: TaskCount,
}

/// The file databases open in this process, by canonical path: opening a file that is
/// open already returns that handle (two handles on one file would each count upload ids
/// on their own and miss each other's changes).
static OPEN_FILES: LazyLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Serialises opening, so two tasks opening one file at once get one handle.
static OPENING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The key of `path` in [`OPEN_FILES`]; `None` for an SQLite URI (not shared).
fn open_file_key(path: &Path) -> Option<PathBuf> {
    if path.to_str().is_some_and(|p| p.starts_with("file:")) {
        return None;
    }
    // Browser databases are names in OPFS, not paths of a file system.
    #[cfg(target_arch = "wasm32")]
    return Some(path.to_path_buf());
    #[cfg(not(target_arch = "wasm32"))]
    return canonical_file_key(path);
}

#[cfg(not(target_arch = "wasm32"))]
fn canonical_file_key(path: &Path) -> Option<PathBuf> {
    if let Ok(canonical) = std::fs::canonicalize(path) {
        return Some(canonical);
    }
    // Not created yet: canonicalise the directory.
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(parent).ok()?;
    Some(dir.join(path.file_name()?))
}

/// Handles are equal when they are clones of one opened database (so a `Database` can
/// be a prop of a Dioxus or Leptos component).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// let a = livesync::Database::in_memory(livesync::Schema::default()).await?;
/// let b = livesync::Database::in_memory(livesync::Schema::default()).await?;
/// assert!(a == a.clone() && a != b);
/// # Ok(()) }
/// ```
impl PartialEq for Database {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Database {}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

/// Opening and closing.
impl Database {
    /// Opens (or creates) the database file at `path` and applies `schema`, with default
    /// [`OpenOptions`]. The path may also be an SQLite URI (`file:app.db?mode=ro`).
    ///
    /// One database file has one handle per process: opening a file that is open already
    /// returns a clone of that handle (with the same schema; a different schema is an
    /// [`Error::Schema`](crate::Error::Schema)). Another process that has the file open
    /// makes this fail with [`Error::OpenInAnotherProcess`](crate::Error::OpenInAnotherProcess).
    ///
    /// In the browser (wasm32) `path` is a name in the origin's private file system
    /// (OPFS), which needs a dedicated worker (elsewhere:
    /// [`Error::StorageUnavailable`](crate::Error::StorageUnavailable)); another tab
    /// holding livesync's storage makes it fail with
    /// [`Error::OpenInAnotherTab`](crate::Error::OpenInAnotherTab).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use livesync::{Column, Database, Schema, Table};
    /// let schema = Schema::new([Table::new("todos", [Column::text("title")])]);
    /// let dir = tempfile::tempdir().unwrap();
    /// let a = Database::open(dir.path().join("app.db"), schema.clone()).await?;
    /// let b = Database::open(dir.path().join("app.db"), schema).await?;
    /// assert!(a == b);
    /// # Ok(()) }
    /// ```
    pub async fn open(path: impl AsRef<Path>, schema: Schema) -> Result<Self> {
        Self::open_with(path, schema, OpenOptions::default()).await
    }

    /// Opens (or creates) the database file at `path` with `options`. When the file is
    /// open in this process already, that handle is returned and `options` are not used.
    pub async fn open_with(
        path: impl AsRef<Path>,
        schema: Schema,
        options: OpenOptions,
    ) -> Result<Self> {
        let path = path.as_ref();
        let runtime = options.runtime.clone();
        let Some(key) = open_file_key(path) else {
            return Self::assemble(Store::open(path, schema, options).await?, runtime).await;
        };
        let _opening = OPENING.lock().await;
        let open = OPEN_FILES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .and_then(Weak::upgrade);
        if let Some(inner) = open {
            let db = Self { inner };
            if db.schema() != schema {
                return Err(crate::Error::schema(format!(
                    "{} is already open in this process with another schema: use that handle (Database::update_schema changes its schema)",
                    path.display()
                )));
            }
            return Ok(db);
        }
        let db = Self::assemble(Store::open(path, schema, options).await?, runtime).await?;
        let mut open = OPEN_FILES.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|_, handle| handle.strong_count() > 0);
        open.insert(key, Arc::downgrade(&db.inner));
        Ok(db)
    }

    /// An in-memory database with one connection, for tests and throwaway state.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
    /// db.execute_batch("CREATE TABLE t(x)").await?;
    /// assert_eq!(db.execute("INSERT INTO t VALUES (1), (2)", ()).await?, 2);
    /// # Ok(()) }
    /// ```
    pub async fn in_memory(schema: Schema) -> Result<Self> {
        Self::in_memory_with(schema, OpenOptions::default()).await
    }

    /// An in-memory database with `options`; of those only
    /// [`runtime`](OpenOptions::runtime) applies (there are no readers and no other
    /// process to wait for).
    ///
    /// ```
    /// # fn main() -> livesync::Result<()> {
    /// use livesync::{Database, OpenOptions, Runtime, Schema};
    /// futures::executor::block_on(async {
    ///     let options = OpenOptions::default().runtime(Runtime::none());
    ///     let db = Database::in_memory_with(Schema::default(), options).await?;
    ///     assert_eq!(db.query::<i64>("SELECT 6 * 7").fetch_one().await?, 42);
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub async fn in_memory_with(schema: Schema, options: OpenOptions) -> Result<Self> {
        Self::assemble(Store::in_memory(schema).await?, options.runtime).await
    }

    async fn assemble(store: Store, runtime: Runtime) -> Result<Self> {
        let db = Self {
            inner: Arc::new(Inner {
                store,
                sync: SyncSlot::new(),
                runtime,
                tasks: TaskCount::default(),
            }),
        };
        sync::load_offline_status(&db).await?;
        Ok(db)
    }

    /// Closes the database: disconnects, waits for queued work, then closes every
    /// connection. Every handle (all clones) then fails with [`Error::Closed`](crate::Error::Closed)
    /// and watch streams end.
    pub async fn close(&self) {
        self.disconnect().await;
        self.sync_slot().status.close();
        // Opening the file again makes a new handle (this one stays closed).
        OPEN_FILES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, handle| !std::ptr::eq(handle.as_ptr(), Arc::as_ptr(&self.inner)));
        self.store().close().await;
    }

    /// The file path, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.store().path()
    }

    /// The schema currently applied.
    pub fn schema(&self) -> Schema {
        self.store().schema()
    }

    /// Applies a new schema in one transaction. Existing rows are kept: columns can be
    /// added or removed freely, a dropped synced table's rows are parked and come back when
    /// the table returns (see the [`schema`](crate::schema) module).
    pub async fn update_schema(&self, schema: Schema) -> Result<()> {
        self.store().update_schema(schema).await
    }

    /// Gets the schema's [`RawTable`](crate::RawTable)s ready once their SQLite tables
    /// exist: call it after creating or altering them. It (re)creates the triggers that
    /// record local writes for upload (their column lists are fixed when they are made),
    /// and moves rows synced while a table did not exist yet (parked, as rows of unknown
    /// types are) into it. Opening the database and [`update_schema`](Self::update_schema)
    /// do the same for the raw tables that exist then.
    ///
    /// Fails, naming the table, when a raw table's SQLite table is missing, has no `id`
    /// column, or lacks a column listed in `synced_columns`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use livesync::{Database, Error, RawTable, Schema};
    /// let db = Database::in_memory(Schema::default().raw_table(RawTable::new("notes"))).await?;
    /// assert!(matches!(db.prepare_raw_tables().await, Err(Error::RawTable { .. })));
    /// db.execute_batch("CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, body TEXT)").await?;
    /// db.prepare_raw_tables().await?;
    /// db.execute("INSERT INTO notes(id, body) VALUES ('n1', 'hi')", ()).await?;
    /// assert_eq!(db.upload_queue_stats().await?.count, 1);
    /// # Ok(()) }
    /// ```
    pub async fn prepare_raw_tables(&self) -> Result<()> {
        self.store().prepare_raw_tables().await
    }

    /// The persistent client id (a UUID created with the database, kept across clears).
    pub async fn client_id(&self) -> Result<String> {
        self.store().client_id().await
    }
}

/// Reading and writing with SQL.
impl Database {
    /// Runs one statement with `params` on the writer and returns the number of changed
    /// rows. `params` is anything rusqlite accepts that can move to another thread: `()`,
    /// a tuple, an array, or [`rusqlite::params_from_iter`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// # let db = livesync::Database::in_memory(Default::default()).await?;
    /// db.execute_batch("CREATE TABLE t(a, b)").await?;
    /// assert_eq!(db.execute("INSERT INTO t VALUES (?1, ?2)", (1, "x".to_string())).await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn execute(
        &self,
        sql: impl Into<String>,
        params: impl rusqlite::Params + Send + 'static,
    ) -> Result<usize> {
        self.store().execute(sql, params).await
    }

    /// Runs several `;`-separated statements without parameters on the writer.
    pub async fn execute_batch(&self, sql: impl Into<String>) -> Result<()> {
        self.store().execute_batch(sql).await
    }

    /// Runs `read` on a read-only connection. It sees the latest committed data and runs
    /// concurrently with writes; a write attempted inside fails.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// # let db = livesync::Database::in_memory(Default::default()).await?;
    /// let n: i64 = db.read(|conn| Ok(conn.query_row("SELECT 40 + 2", [], |r| r.get(0))?)).await?;
    /// assert_eq!(n, 42);
    /// # Ok(()) }
    /// ```
    pub async fn read<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.store().read(read).await
    }

    /// Runs `write` on the writer connection. Each statement commits on its own unless
    /// the closure manages a transaction; prefer [`transaction`](Self::transaction) for
    /// several statements. A transaction left open is rolled back.
    pub async fn write<T, F>(&self, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.store().write(write).await
    }

    /// Runs `work` in one write transaction: committed when it returns `Ok`, rolled back
    /// when it returns `Err` or panics. Watchers get one event for the whole transaction.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use livesync::{Column, Database, Schema, Table};
    /// let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("title")])])).await?;
    /// db.transaction(|tx| {
    ///     tx.execute("INSERT INTO todos(id, title) VALUES ('a', 'one')", [])?;
    ///     tx.execute("INSERT INTO todos(id, title) VALUES ('b', 'two')", [])?;
    ///     Ok(())
    /// })
    /// .await?;
    /// let entries = db.get_next_crud_transaction().await?.unwrap().crud;
    /// assert_eq!(entries.len(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.store().transaction(work).await
    }

    /// A query returning rows of `T`: a `#[derive(Row)]` struct, a tuple, a single value,
    /// or [`Serde<T>`](crate::Serde) for any `Deserialize` type. See [`Query`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
    /// let answer: i64 = db.query("SELECT ? * 2").bind(21).fetch_one().await?;
    /// assert_eq!(answer, 42);
    /// # Ok(()) }
    /// ```
    pub fn query<T: FromRow>(&self, sql: impl Into<String>) -> Query<T> {
        Query::new(self.clone(), sql.into())
    }
}

/// Change notifications.
impl Database {
    /// A stream with one [`TableUpdates`](crate::TableUpdates) per committed transaction
    /// that changed any of `tables` (names as used in SQL: view names, or internal names
    /// such as `ps_crud`). Events list only the watched tables that changed. Nothing is
    /// reported for a rolled-back transaction.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use futures::StreamExt;
    /// use livesync::{Column, Database, Schema, Table};
    /// let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("title")])])).await?;
    /// let mut changes = db.watch_tables(["todos"]);
    /// db.execute("INSERT INTO todos(id, title) VALUES ('1', 'milk')", ()).await?;
    /// assert!(changes.next().await.unwrap().contains("todos"));
    /// # Ok(()) }
    /// ```
    pub fn watch_tables<I, S>(&self, tables: I) -> TableUpdateStream
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.store().watch_tables(tables)
    }

    /// A stream with one [`TableUpdates`](crate::TableUpdates) per committed write
    /// transaction, whatever it changed.
    pub fn watch_all_updates(&self) -> TableUpdateStream {
        self.store().watch_all_updates()
    }

    /// How many table-change subscriptions are alive ([`watch_tables`](Self::watch_tables)
    /// streams, live queries). Useful to check that UI code releases what it watches.
    pub fn active_watchers(&self) -> usize {
        self.store().active_watchers()
    }
}

/// The upload queue.
impl Database {
    /// The oldest queued local transaction, or `None` when nothing waits for upload.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use livesync::{Column, Database, Schema, Table};
    /// let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("title")])])).await?;
    /// db.execute("INSERT INTO todos(id, title) VALUES ('1', 'milk')", ()).await?;
    /// let tx = db.get_next_crud_transaction().await?.expect("one queued write");
    /// assert_eq!(tx.crud[0].id, "1");
    /// tx.complete().await?;
    /// assert!(db.get_next_crud_transaction().await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn get_next_crud_transaction(&self) -> Result<Option<CrudTransaction>> {
        crud::next_transaction(self).await
    }

    /// Up to `limit` of the oldest queued writes (across transaction boundaries), or
    /// `None` when the queue is empty.
    pub async fn get_crud_batch(&self, limit: usize) -> Result<Option<CrudBatch>> {
        crud::batch(self, limit).await
    }

    /// Every queued transaction in order, read lazily. The stream ends at the end of the
    /// queue; it does not remove anything (call [`CrudTransaction::complete`] for that).
    pub fn crud_transactions(
        &self,
    ) -> impl Stream<Item = Result<CrudTransaction>> + Send + 'static {
        crud::transactions(self)
    }

    /// How many writes wait for upload, and their approximate size.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use livesync::{Column, Database, Schema, Table};
    /// let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("title")])])).await?;
    /// db.execute("INSERT INTO todos(id, title) VALUES ('1', 'milk')", ()).await?;
    /// let stats = db.upload_queue_stats().await?;
    /// assert_eq!(stats.count, 1);
    /// assert!(stats.size_bytes > 0);
    /// # Ok(()) }
    /// ```
    pub async fn upload_queue_stats(&self) -> Result<UploadQueueStats> {
        crud::queue_stats(self).await
    }
}

/// Syncing.
impl Database {
    /// Starts syncing with the service `connector` points at: downloads run in a
    /// background task that reconnects after failures, and local writes are uploaded
    /// through `connector`. Connecting again first stops the previous connection. The
    /// two tasks run on the database's [`Runtime`] (by default the tokio runtime
    /// current here; [`Error::NoExecutor`](crate::Error::NoExecutor) when there is
    /// none); returns once they are started (watch [`status`](Self::status) or await
    /// [`wait_for_first_sync`](Self::wait_for_first_sync)).
    ///
    /// The background tasks hold a handle to the database, so syncing continues after
    /// the app drops its own handles: call [`disconnect`](Self::disconnect) or
    /// [`close`](Self::close) to stop it.
    ///
    /// ```no_run
    /// # async fn run(db: livesync::Database, connector: impl livesync::BackendConnector) -> livesync::Result<()> {
    /// db.connect(connector, livesync::SyncOptions::default()).await?;
    /// db.wait_for_first_sync().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect<C: BackendConnector>(
        &self,
        connector: C,
        options: SyncOptions,
    ) -> Result<()> {
        sync::connect(self, connector, options).await
    }

    /// Stops syncing: the stream is closed, uploads stop (an upload in progress is
    /// abandoned and retried at the next connect; nothing is lost), and no task keeps
    /// running. Local data stays. Does nothing when not connected.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
    /// db.disconnect().await;
    /// assert!(!db.status().connected && !db.status().connecting);
    /// # Ok(()) }
    /// ```
    pub async fn disconnect(&self) {
        sync::disconnect(self).await;
    }

    /// How many background tasks of this database exist on its executor: 2 while
    /// connected (the download and upload loops; 1 in
    /// [`SyncMode::UploadOnly`](crate::SyncMode::UploadOnly)), 0 once
    /// [`disconnect`](Self::disconnect) or [`close`](Self::close) returned. A task
    /// counts until the executor has dropped it, with everything it held.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
    /// assert_eq!(db.background_tasks(), 0);
    /// # Ok(()) }
    /// ```
    pub fn background_tasks(&self) -> usize {
        self.inner.tasks.get()
    }

    /// Disconnects, then deletes all synced data, sync state and queued uploads (for
    /// signing out). With `clear_local`, local-only tables are emptied too. The client id
    /// stays.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use livesync::{Column, Database, Schema, Table};
    /// let schema = Schema::new([Table::new("todos", [Column::text("title")])]);
    /// let db = Database::in_memory(schema).await?;
    /// db.execute("INSERT INTO todos(id, title) VALUES ('1', 'queued for upload')", ()).await?;
    /// db.disconnect_and_clear(false).await?;
    /// assert!(db.get_next_crud_transaction().await?.is_none());
    /// let left: i64 = db.read(|c| Ok(c.query_row("SELECT count(*) FROM todos", [], |r| r.get(0))?)).await?;
    /// assert_eq!(left, 0);
    /// # Ok(()) }
    /// ```
    pub async fn disconnect_and_clear(&self, clear_local: bool) -> Result<()> {
        sync::disconnect_and_clear(self, clear_local).await
    }

    /// The current sync status (the persisted part, such as `has_synced`, is loaded when
    /// the database opens).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
    /// let status = db.status();
    /// assert!(!status.has_synced && status.any_error().is_none());
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> SyncStatus {
        self.sync_slot().status.get()
    }

    /// The current sync status, then every change of it, in order. A consumer that
    /// falls more than 64 changes behind skips to the current status.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use futures::StreamExt;
    /// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
    /// let mut statuses = db.watch_status();
    /// assert!(!statuses.next().await.unwrap().connected);
    /// # Ok(()) }
    /// ```
    pub fn watch_status(&self) -> BoxStream<'static, SyncStatus> {
        self.sync_slot().status.watch()
    }

    /// Waits until a complete checkpoint has been applied (at once if that happened in
    /// an earlier session). Combine with a timeout when offline start-up must not wait.
    ///
    /// ```no_run
    /// # async fn run(db: livesync::Database) -> livesync::Result<()> {
    /// use std::time::Duration;
    /// if tokio::time::timeout(Duration::from_secs(5), db.wait_for_first_sync()).await.is_err() {
    ///     println!("still downloading; showing what is local");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_first_sync(&self) -> Result<()> {
        self.sync_slot().status.wait_for_first_sync().await
    }

    /// Asks the service for a checkpoint covering everything it has now, and returns a
    /// [`CheckpointRequest`](crate::CheckpointRequest) whose
    /// [`wait_for_sync`](crate::CheckpointRequest::wait_for_sync) completes once a
    /// checkpoint at or after it is applied locally: the way to make sure the local data
    /// has caught up with the backend (pull to refresh, or a test). Needs a connection
    /// made with [`CheckpointMode::Requests`](crate::CheckpointMode::Requests) to a
    /// PowerSync Service 1.24.0 or later; the id is the next one this database allocates
    /// (`POST /sync/checkpoint-request`, docs/sync-protocol.md §5.3). While the
    /// connection is starting, this waits (up to 30 s) until it is up.
    ///
    /// # Errors
    /// [`Error::Disconnected`](crate::Error::Disconnected) when not connected (or the
    /// connection is between attempts, or upload-only),
    /// [`Error::CheckpointRequestsDisabled`](crate::Error::CheckpointRequestsDisabled)
    /// in legacy mode,
    /// [`Error::CheckpointRequestsUnsupported`](crate::Error::CheckpointRequestsUnsupported)
    /// when the service is older than 1.24.0, and the request's own HTTP or transport
    /// error.
    ///
    /// ```no_run
    /// # async fn run(db: livesync::Database, connector: impl livesync::BackendConnector) -> livesync::Result<()> {
    /// use livesync::{CheckpointMode, SyncOptions};
    /// db.connect(connector, SyncOptions::default().checkpoint_mode(CheckpointMode::Requests)).await?;
    /// let refresh = db.request_checkpoint().await?;
    /// refresh.wait_for_sync().await?; // everything the service had is local now
    /// # Ok(()) }
    /// ```
    pub async fn request_checkpoint(&self) -> Result<crate::CheckpointRequest> {
        sync::request_checkpoint(self).await
    }

    /// The sync stream `name` with `parameters` (a JSON object, or `None`). Nothing is
    /// subscribed until [`SyncStream::subscribe`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use serde_json::json;
    /// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
    /// let stream = db.sync_stream("lists", json!({"owner": "u1"}));
    /// assert_eq!(stream.name(), "lists");
    /// let everything = db.sync_stream("global", None);
    /// assert!(everything.parameters().is_none());
    /// # Ok(()) }
    /// ```
    pub fn sync_stream(
        &self,
        name: impl Into<String>,
        parameters: impl Into<Option<Value>>,
    ) -> SyncStream {
        SyncStream::new(self.clone(), name.into(), parameters.into())
    }
}

/// The layers, for the crate's own modules.
impl Database {
    /// The local store.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The sync engine's status and tasks.
    pub(crate) fn sync_slot(&self) -> &SyncSlot {
        &self.inner.sync
    }

    /// The executor and timers this database was opened with.
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Starts `future` on the database's runtime, counted in
    /// [`background_tasks`](Self::background_tasks) until it is gone.
    pub(crate) fn spawn(
        &self,
        future: impl std::future::Future<Output = ()> + MaybeSend + 'static,
    ) -> Result<BackgroundTask> {
        self.inner.runtime.spawn(&self.inner.tasks, future)
    }

    /// Starts a short job that ends by itself (storing a released subscription), not
    /// counted in [`background_tasks`](Self::background_tasks) and never cancelled.
    pub(crate) fn spawn_short(
        &self,
        future: impl std::future::Future<Output = ()> + MaybeSend + 'static,
    ) -> Result<()> {
        self.inner
            .runtime
            .spawn(&TaskCount::default(), future)
            .map(drop)
    }
}
