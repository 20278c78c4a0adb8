//! The local store: one SQLite database with its writer thread, reader pool, change
//! notifications and CRUD capture. It knows nothing of sync; the [`Database`](crate::Database)
//! facade puts it together with the sync engine.
//!
//! # Design
//! A file database runs in WAL mode with one writer thread owning the only read-write
//! connection (`writer.rs`) and a small pool of reader threads with read-only connections
//! (`readers.rs`). Async methods send a closure to the right thread and await the answer
//! on a oneshot channel, so SQLite work never blocks an async worker and no particular
//! runtime is required. An in-memory database has a single connection, on the writer
//! thread, that serves reads too (with `PRAGMA query_only` set while a read runs).

mod change_tracker;
mod crud_functions;
pub(crate) mod in_sync_apply;
mod notify;
#[cfg(target_arch = "wasm32")]
mod open_wasm;
#[cfg(target_arch = "wasm32")]
mod page_storage_wasm;
#[cfg(not(target_arch = "wasm32"))]
mod process_lock;
mod query_tables;
#[cfg(not(target_arch = "wasm32"))]
mod readers;
#[cfg(not(target_arch = "wasm32"))]
mod rerun_lane;
mod sql_functions;
#[cfg(not(target_arch = "wasm32"))]
mod sqlite_config;
#[cfg(target_arch = "wasm32")]
mod tab_lock_wasm;
mod wal_checkpoint;
// In the browser the one connection runs on the caller's thread (see writer_wasm.rs).
#[cfg_attr(target_arch = "wasm32", path = "writer_wasm.rs")]
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

#[cfg(not(target_arch = "wasm32"))]
use rusqlite::OpenFlags;
use rusqlite::{Connection, TransactionBehavior};

use notify::Subscriptions;
#[cfg(not(target_arch = "wasm32"))]
use process_lock::ProcessLock;
// In the browser "another process" is another tab or worker of the app.
#[cfg(target_arch = "wasm32")]
use open_wasm::StorageLease as ProcessLock;

/// Queues `job` on a connection thread's channel (the writer's or the readers'), or
/// fails with [`Error::Closed`] once that channel was closed. The sender is cloned out
/// of the lock, so a refused job is dropped after it is released: dropping a job may
/// drop the last handle on the store, whose close takes this lock.
#[cfg(not(target_arch = "wasm32"))]
fn send_job<J>(jobs: &std::sync::Mutex<Option<std::sync::mpsc::Sender<J>>>, job: J) -> Result<()> {
    let sender = jobs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .ok_or(Error::Closed)?;
    sender.send(job).map_err(|_| Error::Closed)
}

/// Closes a worker queue (no job is accepted any more) and waits until every worker
/// thread exited: each holds a clone of the watch sender, so `changed()` fails once the
/// last one dropped it. Shared by the writer and the reader pool, also for a second,
/// concurrent `close`.
#[cfg(not(target_arch = "wasm32"))]
async fn close_and_wait<T>(
    jobs: &std::sync::Mutex<Option<T>>,
    exited: &tokio::sync::watch::Receiver<()>,
) {
    drop(jobs.lock().unwrap_or_else(PoisonError::into_inner).take());
    let mut exited = exited.clone();
    while exited.changed().await.is_ok() {}
}
pub use notify::{TableUpdateStream, TableUpdates};
pub(crate) use query_tables::{QueryTables, record_reads, schema_version};

use crate::query::SharedRuns;

use crate::schema::{self, CheckedRawTable, CheckedSchema, Schema};
use crate::{Error, Result};
use change_tracker::ChangeTracker;
use crud_functions::CrudIds;
use notify::Publisher;
#[cfg(target_arch = "wasm32")]
use open_wasm::ReaderPool;
#[cfg(not(target_arch = "wasm32"))]
use readers::ReaderPool;
use wal_checkpoint::Checkpointer;
use writer::{Writer, WriterState};

/// Settings for [`Database::open_with`](crate::Database::open_with).
///
/// ```
/// use std::time::Duration;
/// let options = livesync::OpenOptions::default()
///     .readers(2)
///     .busy_timeout(Duration::from_millis(500));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct OpenOptions {
    readers: usize,
    live_query_reruns: Option<usize>,
    busy_timeout: Duration,
    pub(crate) runtime: crate::Runtime,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            readers: 4,
            live_query_reruns: None,
            busy_timeout: Duration::from_secs(5),
            runtime: crate::Runtime::default(),
        }
    }
}

impl OpenOptions {
    /// Number of read-only connections for a file database (at least 1; default 4).
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers.max(1);
        self
    }

    /// How many live queries may re-run after a change at once (at least 1). The
    /// default is one fewer than the machine's cores and than the readers, and at least
    /// 1: with 4 readers on 2 cores, one re-run at a time.
    ///
    /// Why a limit: a commit can make hundreds of live queries stale. Run all at once,
    /// they take every core from the writes (and the reads) the app is waiting for;
    /// queued, each runs once its turn comes, on the data of that moment, so changes
    /// that arrived meanwhile cost no extra run. Every live query still ends on the
    /// latest state. A query's first run takes no turn, and a live query that is not
    /// polled does not hold a turn (turns are handed on by the runs themselves). In
    /// memory, where every read runs on the one connection, re-runs always go one at a
    /// time; in the browser a read runs at once on the caller's thread.
    ///
    /// ```
    /// let options = livesync::OpenOptions::default().readers(8).live_query_reruns(4);
    /// # let _ = options;
    /// ```
    pub fn live_query_reruns(mut self, reruns: usize) -> Self {
        self.live_query_reruns = Some(reruns.max(1));
        self
    }

    /// The limit [`live_query_reruns`](Self::live_query_reruns) describes, for a file
    /// store with `readers` reader connections. (In memory and in the browser re-runs
    /// are reads on the one connection, so they run one at a time whatever is set.)
    #[cfg(not(target_arch = "wasm32"))]
    fn reruns_at_once(&self, readers: usize) -> usize {
        self.live_query_reruns.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            cores.min(readers).saturating_sub(1).max(1)
        })
    }

    /// How long a statement waits for a lock held by another process before failing
    /// with [`Error::Busy`] (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Where the database runs its background work and takes its timers from (default
    /// [`Runtime::default`](crate::Runtime::default): tokio with the `tokio` feature).
    ///
    /// ```
    /// # fn main() -> livesync::Result<()> {
    /// use livesync::{Database, OpenOptions, Runtime, Schema, Task};
    ///
    /// // Any executor: here, a thread per task, driven by `futures`' minimal executor.
    /// let runtime = Runtime::custom(|task: Task| {
    ///     std::thread::spawn(move || futures::executor::block_on(task));
    /// });
    /// let options = OpenOptions::default().runtime(runtime);
    /// futures::executor::block_on(async {
    ///     let db = Database::in_memory_with(Schema::default(), options).await?;
    ///     db.close().await;
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub fn runtime(mut self, runtime: crate::Runtime) -> Self {
        self.runtime = runtime;
        self
    }
}

/// The local store behind a [`Database`](crate::Database): a file database runs one
/// writer thread and a reader pool, an in-memory one a single connection on the writer.
pub(crate) struct Store {
    path: Option<PathBuf>,
    writer: Writer,
    /// `None` for an in-memory database: reads then run on the writer's connection.
    readers: Option<ReaderPool>,
    updates: Subscriptions,
    /// Shared with writer jobs, which update it together with the database.
    schema: Arc<RwLock<(Schema, CheckedSchema)>>,
    /// Data table name (lowercase) → public name, for the schema applied; replaced with it.
    public_names: Arc<RwLock<PublicNames>>,
    /// Which tables live queries read, cached per schema version.
    query_tables: Arc<QueryTables>,
    /// The runs of live queries, shared between those of the same SQL and parameters.
    shared_runs: Arc<SharedRuns>,
    /// The turns live-query re-runs take ([`OpenOptions::live_query_reruns`]). (In the
    /// browser a read runs at once on the caller's thread: nothing to take turns on.)
    #[cfg(not(target_arch = "wasm32"))]
    rerun_lane: Arc<rerun_lane::RerunLane>,
    /// Keeps other processes from opening the file while this store is open.
    process_lock: std::sync::Mutex<Option<ProcessLock>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database file at `path` with `options` and applies `schema`.
    /// (The browser's version is in `open_wasm.rs`.)
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) async fn open(
        path: impl AsRef<Path>,
        schema: Schema,
        options: OpenOptions,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let checked = CheckedSchema::check(&schema)?;
        sqlite_config::before_first_connection();
        let process_lock = ProcessLock::acquire(&path)?;
        let writer = {
            let (path, checked, busy) = (path.clone(), checked.clone(), options.busy_timeout);
            start_writer(move |publisher| {
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&path, flags)
                    .map_err(|e| Error::while_opening(e, &path))?;
                conn.busy_timeout(busy)?;
                // SQLite silently falls back to read-only when the file is not writable;
                // fail now with a clear message rather than at the first write.
                if conn.is_readonly(rusqlite::MAIN_DB)? {
                    return Err(Error::ReadOnly { path });
                }
                // The first statement that reads the file is where "not a database" and
                // "read-only" surface.
                let journal: String = conn
                    .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                    .map_err(|e| Error::while_opening(e, &path))?;
                if !journal.eq_ignore_ascii_case("wal") {
                    tracing::warn!(journal, "the database could not switch to WAL mode");
                }
                // A larger page cache keeps big write transactions from spilling dirty pages
                // to the WAL mid-transaction. (temp_store stays FILE on purpose: its statement
                // journals buffer 64 KiB in one chunk before touching a file, while MEMORY
                // journals allocate per KiB and made every trigger-backed write ~25% dearer.)
                //
                // The writer checkpoints the WAL itself (see `checkpoint`); the WAL file is
                // truncated back to 64 MiB after a checkpoint.
                conn.execute_batch(
                    "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768; \
                     PRAGMA journal_size_limit = 67108864",
                )?;
                prepare_writer(conn, &checked, publisher).map_err(|e| e.on_file(&path))
            })
            .await?
        };
        let readers = ReaderPool::open(&path, options.readers, options.busy_timeout).await?;
        tracing::debug!(path = %path.display(), readers = options.readers, "database opened");
        let reruns = options.reruns_at_once(options.readers);
        let store = Self::assemble(Some(path), writer, Some(readers), schema, checked, reruns);
        *store
            .process_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = process_lock;
        Ok(store)
    }

    /// An in-memory database with one connection, for tests and throwaway state.
    pub(crate) async fn in_memory(schema: Schema) -> Result<Self> {
        let checked = CheckedSchema::check(&schema)?;
        #[cfg(not(target_arch = "wasm32"))]
        sqlite_config::before_first_connection();
        let writer = {
            let checked = checked.clone();
            start_writer(move |publisher| {
                prepare_writer(Connection::open_in_memory()?, &checked, publisher)
            })
            .await?
        };
        // Re-runs are reads on the writer here: one at a time keeps them from queueing
        // ahead of the writes.
        Ok(Self::assemble(None, writer, None, schema, checked, 1))
    }

    fn assemble(
        path: Option<PathBuf>,
        (writer, updates): (Writer, Subscriptions),
        readers: Option<ReaderPool>,
        schema: Schema,
        checked: CheckedSchema,
        reruns_at_once: usize,
    ) -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        let rerun_lane = rerun_lane::RerunLane::new(
            reruns_at_once,
            match &readers {
                Some(readers) => readers.queue(),
                None => writer.read_queue(),
            },
        );
        #[cfg(target_arch = "wasm32")]
        let _ = reruns_at_once;
        Self {
            path,
            writer,
            readers,
            updates,
            public_names: Arc::new(RwLock::new(Arc::new(schema::data_table_view_names(
                &checked,
            )))),
            schema: Arc::new(RwLock::new((schema, checked))),
            query_tables: Arc::default(),
            shared_runs: Arc::default(),
            #[cfg(not(target_arch = "wasm32"))]
            rerun_lane,
            process_lock: std::sync::Mutex::new(None),
        }
    }

    /// [`transaction`](Self::transaction), queued on the writer right away: transactions
    /// queued this way run in call order, and the caller may queue more before awaiting
    /// the first (the sync engine parses the next line while the writer stores this one).
    pub(crate) fn queue_transaction<T, F>(
        &self,
        work: F,
    ) -> impl std::future::Future<Output = Result<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let path = self.path.clone();
        let answer = self.writer.submit(move |state| {
            let tx = state
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
        });
        async move {
            answer.await.map_err(|e| match &path {
                Some(path) => e.on_file(path),
                None => e,
            })
        }
    }

    /// The id the next recorded local write will get (changes with every local write).
    pub(crate) async fn crud_counter(&self) -> Result<i64> {
        self.on_writer(|state| Ok(state.crud_ids.next_crud_id()))
            .await
    }

    /// [`transaction`](Self::transaction), also given [`crud_counter`](Self::crud_counter)
    /// as of the start of the transaction.
    pub(crate) async fn transaction_with_crud_counter<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>, i64) -> Result<T> + Send + 'static,
    {
        self.on_writer(move |state| {
            let counter = state.crud_ids.next_crud_id();
            let tx = state
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = work(&tx, counter)?;
            tx.commit()?;
            Ok(value)
        })
        .await
    }

    /// The file path, or `None` for an in-memory database.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The schema currently applied.
    pub(crate) fn schema(&self) -> Schema {
        self.schema
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    /// Runs one statement with `params` on the writer and returns the number of changed
    /// rows. `params` is anything rusqlite accepts that can move to another thread: `()`,
    /// a tuple, an array, or [`rusqlite::params_from_iter`].
    pub(crate) async fn execute(
        &self,
        sql: impl Into<String>,
        params: impl rusqlite::Params + Send + 'static,
    ) -> Result<usize> {
        let sql = sql.into();
        self.on_writer(move |state| {
            state
                .conn
                .prepare_cached(&sql)
                .and_then(|mut stmt| stmt.execute(params))
                .map_err(|e| Error::sqlite_with_sql(e, sql))
        })
        .await
    }

    /// Runs several `;`-separated statements without parameters on the writer.
    pub(crate) async fn execute_batch(&self, sql: impl Into<String>) -> Result<()> {
        let sql = sql.into();
        self.on_writer(move |state| {
            state
                .conn
                .execute_batch(&sql)
                .map_err(|e| Error::sqlite_with_sql(e, sql))
        })
        .await
    }

    /// Runs `read` on a read-only connection. It sees the latest committed data and runs
    /// concurrently with writes; a write attempted inside fails.
    pub(crate) async fn read<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        match &self.readers {
            Some(readers) => readers.run(read).await.map_err(|e| self.on_file(e)),
            None => {
                self.writer
                    .read(move |conn| read_on_writer(conn, read))
                    .await
            }
        }
    }

    /// Runs `write` on the writer connection. Each statement commits on its own unless
    /// the closure manages a transaction; prefer [`transaction`](Self::transaction) for
    /// several statements. A transaction left open is rolled back.
    pub(crate) async fn write<T, F>(&self, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.on_writer(move |state| write(&state.conn)).await
    }

    /// Runs `work` in one write transaction: committed when it returns `Ok`, rolled back
    /// when it returns `Err` or panics. Watchers get one event for the whole transaction.
    pub(crate) async fn transaction<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.on_writer(move |state| {
            let tx = state
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = work(&tx)?; // an early return drops `tx`, which rolls back
            tx.commit()?;
            Ok(value)
        })
        .await
    }

    /// Applies a new schema in one transaction. Existing rows are kept: columns can be
    /// added or removed freely, a dropped synced table's rows are parked and come back when
    /// the table returns (see the [`schema`](crate::schema) module).
    pub(crate) async fn update_schema(&self, schema: Schema) -> Result<()> {
        let checked = CheckedSchema::check(&schema)?;
        let current = Arc::clone(&self.schema);
        let public_names = Arc::clone(&self.public_names);
        self.on_writer(move |state| {
            let names = apply_in_transaction(state, &checked)?;
            // Recorded on the writer, so concurrent updates are recorded in the order
            // they were applied.
            *current.write().unwrap_or_else(PoisonError::into_inner) = (schema, checked);
            *public_names.write().unwrap_or_else(PoisonError::into_inner) = names;
            Ok(())
        })
        .await
    }

    /// The raw tables of the schema currently applied.
    pub(crate) fn raw_tables(&self) -> Vec<CheckedRawTable> {
        self.schema
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .raw_tables
            .clone()
    }

    /// Gets the raw tables ready after their SQLite tables were created or altered
    /// ([`Database::prepare_raw_tables`](crate::Database::prepare_raw_tables)).
    pub(crate) async fn prepare_raw_tables(&self) -> Result<()> {
        let raw_tables = self.raw_tables();
        self.transaction(move |tx| crate::sync::raw_rows::prepare(tx, &raw_tables, true))
            .await
    }

    /// Data table name (lowercase) → public name, for reporting tables by the names app
    /// code uses.
    pub(crate) fn public_table_names(&self) -> PublicNames {
        Arc::clone(
            &self
                .public_names
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Which tables live queries read, shared by all of them.
    pub(crate) fn query_tables(&self) -> &Arc<QueryTables> {
        &self.query_tables
    }

    /// The runs of live queries, shared between those of the same SQL and parameters.
    pub(crate) fn shared_runs(&self) -> &Arc<SharedRuns> {
        &self.shared_runs
    }

    /// [`read`](Self::read) for a live query's re-run: it waits for its turn
    /// ([`OpenOptions::live_query_reruns`], `rerun_lane.rs`), and runs on the data of the
    /// moment the turn comes. The read runs even if the future is not polled meanwhile.
    pub(crate) async fn read_in_turn<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let result = match &self.readers {
                Some(_) => self.rerun_lane.run(read).await,
                None => {
                    let read = move |conn: &Connection| read_on_writer(conn, read);
                    self.rerun_lane.run(read).await
                }
            };
            result.map_err(|e| self.on_file(e))
        }
        #[cfg(target_arch = "wasm32")]
        {
            self.read(read).await
        }
    }

    /// How many table-change subscriptions are alive ([`watch_tables`](Self::watch_tables)
    /// streams, live queries). Useful to check that UI code releases what it watches.
    pub(crate) fn active_watchers(&self) -> usize {
        self.updates.receiver_count()
    }

    /// Names of the insert-only tables, as a JSON array (for SQL `json_each`).
    pub(crate) fn insert_only_tables(&self) -> String {
        let schema = self.schema.read().unwrap_or_else(PoisonError::into_inner);
        let names: Vec<&str> = schema
            .1
            .tables
            .iter()
            .filter(|t| t.insert_only)
            .map(|t| t.name.as_str())
            .collect();
        serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned())
    }

    /// The persistent client id (a UUID created with the database, kept across clears).
    pub(crate) async fn client_id(&self) -> Result<String> {
        self.read(|conn| {
            schema::client_id(conn)?.ok_or_else(|| {
                Error::UnexpectedData("the database has no client_id in ps_kv".into())
            })
        })
        .await
    }

    /// A stream with one [`TableUpdates`] per committed transaction that changed any of
    /// `tables` (names as used in SQL: view names, or internal names such as `ps_crud`).
    /// Events list only the watched tables that changed. Nothing is reported for a
    /// rolled-back transaction.
    pub(crate) fn watch_tables<I, S>(&self, tables: I) -> TableUpdateStream
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tables = tables.into_iter().map(Into::into).collect();
        TableUpdateStream::new(&self.updates, Some(tables), Vec::new())
    }

    /// A stream with one [`TableUpdates`] per committed write transaction, whatever it
    /// changed.
    pub(crate) fn watch_all_updates(&self) -> TableUpdateStream {
        let mut all: Vec<String> = {
            let schema = self.schema.read().unwrap_or_else(PoisonError::into_inner);
            schema.1.tables.iter().map(|t| t.view.to_string()).collect()
        };
        all.push("ps_crud".to_owned());
        TableUpdateStream::new(&self.updates, None, all)
    }

    /// Like [`watch_all_updates`](Self::watch_all_updates), for a live query until its
    /// first run narrows it to the tables it reads: without the list of every table that
    /// only an initial event needs (with a thousand tables, that list was most of a
    /// mounted live query's memory).
    pub(crate) fn watch_all_updates_until_retargeted(&self) -> TableUpdateStream {
        TableUpdateStream::new(&self.updates, None, Vec::new())
    }

    /// Closes the database: waits for queued work, then closes every connection. Every
    /// handle (all clones) then fails with [`Error::Closed`] and watch streams end.
    pub(crate) async fn close(&self) {
        if let Some(readers) = &self.readers {
            readers.close().await;
        }
        self.writer.close().await;
        // Another process may open the file now.
        self.process_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        tracing::debug!(path = ?self.path, "database closed");
    }

    async fn on_writer<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut WriterState) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.writer.run(job).await.map_err(|e| self.on_file(e))
    }

    /// Checkpoints the WAL less often while a large sync download runs (`true`), or
    /// as usual again (`false`); see `checkpoint`.
    pub(crate) async fn set_bulk_writes(&self, bulk: bool) -> Result<()> {
        self.on_writer(move |state| {
            state.checkpointer.set_bulk(bulk);
            Ok(())
        })
        .await
    }

    /// The writer's current WAL checkpoint threshold, in pages.
    #[cfg(test)]
    pub(crate) async fn checkpoint_threshold(&self) -> Result<i32> {
        self.on_writer(|state| Ok(state.checkpointer.threshold()))
            .await
    }

    fn on_file(&self, error: Error) -> Error {
        match &self.path {
            Some(path) => error.on_file(path),
            None => error,
        }
    }
}

/// Data table name (lowercase) → public name (see [`Store::public_table_names`]).
pub(crate) type PublicNames = Arc<std::collections::HashMap<String, String>>;

/// Runs `read` on the writer connection (a store without readers) with writes refused
/// while it runs. The pragmas are cached statements: a live query's re-run on an
/// in-memory database is a read like this, and compiling them afresh cost more than
/// many a query.
fn read_on_writer<T>(conn: &Connection, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.prepare_cached("PRAGMA query_only = 1")?.execute([])?;
    // Rolls back a transaction the read left open (the connection is every write's too)
    // and restores writes, even if the read panics.
    let _restore = QueryOnlyGuard(conn);
    read(conn)
}

/// Ends an in-memory read, even if it panicked: rolls back a transaction it left open,
/// then restores write access.
struct QueryOnlyGuard<'a>(&'a Connection);

impl Drop for QueryOnlyGuard<'_> {
    fn drop(&mut self) {
        // Also when the read panicked: the next write must not run inside its transaction.
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
        if let Ok(mut restore) = self.0.prepare_cached("PRAGMA query_only = 0") {
            let _ = restore.execute([]);
        }
    }
}

async fn start_writer(
    open: impl FnOnce(Publisher) -> Result<WriterState> + Send + 'static,
) -> Result<(Writer, Subscriptions)> {
    let (publisher, updates) = Publisher::new();
    let writer = Writer::start("livesync-writer", move || open(publisher)).await?;
    Ok((writer, updates))
}

/// Installs hooks and functions on a fresh writer connection and applies the schema.
fn prepare_writer(
    mut conn: Connection,
    schema: &CheckedSchema,
    publisher: Publisher,
) -> Result<WriterState> {
    let tracker = Arc::new(ChangeTracker::default());
    let crud_ids = Arc::new(CrudIds::default());
    crud_ids.register(&conn)?;
    tracker.install(&mut conn, &crud_ids)?;
    let checkpointer = Checkpointer::install(&mut conn)?;
    let mut state = WriterState {
        conn,
        tracker,
        crud_ids,
        publisher,
        checkpointer,
    };
    apply_in_transaction(&mut state, schema)?;
    state.crud_ids.load_counters(&state.conn)?;
    // Setting up the schema is not an app change worth announcing.
    state.tracker.take_committed();
    Ok(state)
}

/// Applies `schema`; returns its public names (also given to the publisher).
fn apply_in_transaction(state: &mut WriterState, schema: &CheckedSchema) -> Result<PublicNames> {
    let tx = state
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    schema::apply_schema(&tx, schema)?;
    tx.commit()?;
    let names = Arc::new(schema::data_table_view_names(schema));
    state.publisher.set_public_names(Arc::clone(&names));
    Ok(names)
}
