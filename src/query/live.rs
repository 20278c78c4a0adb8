//! [`LiveQuery`]: a query kept up to date as the tables it reads change.
//!
//! The contract is documented on [`LiveQuery`] itself (it is public API).

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use rusqlite::Connection;
use rusqlite::types::Value;
use tokio::time::Instant;

use super::{FromRow, Query};
use crate::{Error, Result, TableUpdateStream, TableUpdates};

/// A stream of query results that stays current. Built by
/// [`Query::watch`](super::Query::watch).
///
/// # Contract
/// - It subscribes to table changes *before* taking the first snapshot, so a write that
///   lands in between is never missed.
/// - The first item is the current result. Afterwards it re-runs only when a table the
///   query reads changes (found once with `EXPLAIN`: the tables whose B-trees the plan
///   opens, so joins, subqueries, CTEs and views count; `ps_data__x` is reported as `x`),
///   or the tables given to [`Query::triggered_by`](crate::Query::triggered_by).
/// - A run starts no sooner than the throttle after the previous run ended (so results
///   are at least the throttle apart), and a burst of changes is always followed by one
///   run after its last change (trailing edge), so the final state is delivered.
/// - A result equal to the previous one (compared on raw column values, so `T` needs no
///   `PartialEq`) is not emitted.
/// - A failing run is an `Err` item; the stream goes on and runs again on the next change.
/// - It owns everything it uses (no spawned task): dropping it stops all its work and
///   releases its subscription.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use futures::StreamExt;
/// use livesync::{Column, Database, Schema, Table};
///
/// let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("title")])])).await?;
/// let mut titles = db.query::<String>("SELECT title FROM todos ORDER BY title").watch();
/// assert!(titles.next().await.unwrap()?.is_empty());
///
/// db.execute("INSERT INTO todos(id, title) VALUES ('1', 'milk')", ()).await?;
/// assert_eq!(titles.next().await.unwrap()?, ["milk"]);
/// # Ok(()) }
/// ```
#[must_use = "a live query yields nothing unless polled; dropping it unsubscribes"]
pub struct LiveQuery<T> {
    results: BoxStream<'static, Result<Vec<T>>>,
    runs: Arc<AtomicU64>,
}

impl<T> std::fmt::Debug for LiveQuery<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveQuery").finish_non_exhaustive()
    }
}

impl<T> LiveQuery<T> {
    /// How many times the query has run so far (the first run included), whether or not
    /// the result changed: a way to check that unrelated writes cost nothing.
    pub fn run_count(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}

impl<T> Stream for LiveQuery<T> {
    type Item = Result<Vec<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.results.as_mut().poll_next(cx)
    }
}

struct Watch<T> {
    query: Query<T>,
    /// Subscribed when the live query is created, before the first snapshot.
    updates: TableUpdateStream,
    /// Tables that trigger a run (lowercase); `None` until known, or when the plan could
    /// not be read (then every change triggers a run).
    tables: Option<HashSet<String>>,
    /// The last emitted result, as raw values.
    last: Option<Vec<Vec<Value>>>,
    last_run: Option<Instant>,
    started: bool,
    runs: Arc<AtomicU64>,
}

impl<T: FromRow> LiveQuery<T> {
    pub(super) fn new(query: Query<T>) -> Self {
        let (watch, runs) = Watch::start(query);
        let results = futures::stream::unfold(watch, |mut watch| async move {
            let item = watch.next_result().await?;
            Some((item, watch))
        });
        Self {
            results: Box::pin(results),
            runs,
        }
    }
}

impl<T: FromRow> Watch<T> {
    /// Subscribes to table changes (before anything runs) and sets up the run counter.
    fn start(query: Query<T>) -> (Self, Arc<AtomicU64>) {
        let updates = query.db.watch_all_updates();
        let tables = query
            .triggered_by
            .as_ref()
            .map(|tables| tables.iter().map(|t| t.to_ascii_lowercase()).collect());
        let runs = Arc::new(AtomicU64::new(0));
        let watch = Self {
            query,
            updates,
            tables,
            last: None,
            last_run: None,
            started: false,
            runs: Arc::clone(&runs),
        };
        (watch, runs)
    }

    /// The next decoded result to emit, or `None` once the database is closed.
    async fn next_result(&mut self) -> Option<Result<Vec<T>>> {
        let (names, rows) = match self.next_raw().await? {
            Ok(raw) => raw,
            Err(e) => return Some(Err(e)),
        };
        let decoded = decode::<T>(&names, &rows).map_err(|e| e.in_query(self.query.sql()));
        if decoded.is_err() {
            self.last = None; // a later run with the same rows is news again
        }
        Some(decoded)
    }

    /// The next result that differs from the previous one, as raw values with the
    /// column names; `None` once the database is closed.
    async fn next_raw(&mut self) -> Option<Result<(Vec<String>, Vec<Vec<Value>>)>> {
        loop {
            if self.started {
                self.wait_for_change().await?;
            }
            self.started = true;
            if self.tables.is_none() {
                self.tables = source_tables(&self.query.db, self.query.sql()).await;
            }
            let query = self.query.clone();
            self.runs.fetch_add(1, Ordering::Relaxed);
            let raw = self.query.db.read(move |conn| query.raw_on(conn)).await;
            // The throttle counts from the end of a run, so consecutive results are
            // always at least the throttle apart, however long the query takes.
            self.last_run = Some(Instant::now());
            let (names, rows) = match raw {
                Ok(raw) => raw,
                Err(Error::Closed) => return None,
                Err(e) => {
                    self.last = None; // the next successful run is news
                    return Some(Err(e.in_query(self.query.sql())));
                }
            };
            if self.last.as_ref() == Some(&rows) {
                continue; // unchanged: nothing to emit
            }
            self.last = Some(rows.clone());
            return Some(Ok((names, rows)));
        }
    }

    /// Waits until a relevant table changed and the throttle allows a run; `None` once
    /// the database is closed.
    async fn wait_for_change(&mut self) -> Option<()> {
        loop {
            let update = self.updates.next().await?;
            if self.is_relevant(&update) {
                break;
            }
        }
        if let Some(last_run) = self.last_run {
            let due = last_run + self.query.throttle;
            if Instant::now() < due {
                tokio::time::sleep_until(due).await;
            }
        }
        // Changes that arrived while waiting are covered by the run that follows.
        while let Some(Some(_)) = self.updates.next().now_or_never() {}
        Some(())
    }

    fn is_relevant(&self, update: &TableUpdates) -> bool {
        match &self.tables {
            Some(tables) => tables.iter().any(|t| update.contains(t)),
            None => true,
        }
    }
}

/// The public names of the tables the plan of `sql` reads, or `None` if the plan cannot
/// be read (the query itself will then report the problem).
async fn source_tables(db: &crate::Database, sql: &str) -> Option<HashSet<String>> {
    let sql = sql.to_owned();
    let public_names = db.store().public_table_names();
    db.read(move |conn| tables_read_by(conn, &sql, &public_names))
        .await
        .ok()
}

fn decode<T: FromRow>(names: &[String], rows: &[Vec<Value>]) -> Result<Vec<T>> {
    let columns = T::resolve(names)?;
    rows.iter()
        .map(|row| T::from_row(row.as_slice(), &columns))
        .collect()
}

/// The tables whose B-trees the plan of `sql` opens, by public name (lowercase).
pub(crate) fn tables_read_by(
    conn: &Connection,
    sql: &str,
    public_names: &HashMap<String, String>,
) -> Result<HashSet<String>> {
    let mut root_pages: HashMap<i64, String> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT rootpage, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index') AND rootpage > 0",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (page, table) = row?;
            root_pages.insert(page, table);
        }
    }
    let explain = format!("EXPLAIN {sql}");
    let mut stmt = conn
        .prepare(&explain)
        .map_err(|e| Error::sqlite_with_sql(e, sql.to_owned()))?;
    let mut rows = stmt.raw_query();
    let mut tables = HashSet::new();
    while let Some(row) = rows.next()? {
        // EXPLAIN columns: addr, opcode, p1, p2, p3, p4, p5, comment.
        let opcode: String = row.get(1)?;
        let database: i64 = row.get(4)?;
        if (opcode == "OpenRead" || opcode == "OpenWrite") && database == 0 {
            let root: i64 = row.get(3)?;
            if let Some(table) = root_pages.get(&root) {
                tables.insert(public_name(table, public_names).to_ascii_lowercase());
            }
        }
    }
    Ok(tables)
}

fn public_name<'a>(table: &'a str, public_names: &'a HashMap<String, String>) -> &'a str {
    if let Some(name) = public_names.get(&table.to_ascii_lowercase()) {
        return name;
    }
    crate::schema::names::app_table(table).unwrap_or(table)
}

/// One item of [`LiveDiff`]: the full result plus what changed since the previous item,
/// matched by the `id` column.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryDiff<T> {
    /// The whole current result, in query order.
    pub rows: Vec<T>,
    /// Rows whose id was not in the previous result (every row, in the first item).
    pub added: Vec<T>,
    /// Rows of the previous result whose id is gone (their previous values).
    pub removed: Vec<T>,
    /// Rows whose id stayed but whose values changed (their new values).
    pub updated: Vec<T>,
}

/// A live query that reports differences: see [`Query::watch_diff`](super::Query::watch_diff).
#[must_use = "a live diff yields nothing unless polled; dropping it unsubscribes"]
pub struct LiveDiff<T> {
    results: BoxStream<'static, Result<QueryDiff<T>>>,
    runs: Arc<AtomicU64>,
}

impl<T> LiveDiff<T> {
    /// How many times the query has run so far (see [`LiveQuery::run_count`]).
    pub fn run_count(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}

impl<T> std::fmt::Debug for LiveDiff<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveDiff").finish_non_exhaustive()
    }
}

impl<T> Stream for LiveDiff<T> {
    type Item = Result<QueryDiff<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.results.as_mut().poll_next(cx)
    }
}

/// The previous item of a diff stream: each row's raw values and decoded value, by id
/// (the id's debug form, so that the text "1" and the integer 1 stay different ids).
type Previous<T> = HashMap<String, (Vec<Value>, T)>;

impl<T: FromRow + Clone> LiveDiff<T> {
    pub(super) fn new(query: Query<T>) -> Self {
        let (watch, runs) = Watch::start(query);
        let results = futures::stream::unfold(
            (watch, Previous::<T>::new()),
            |(mut watch, mut previous)| async move {
                let item = match watch.next_raw().await? {
                    Ok((names, rows)) => {
                        diff(&names, rows, &mut previous).map_err(|e| e.in_query(watch.query.sql()))
                    }
                    Err(e) => Err(e),
                };
                if item.is_err() {
                    watch.last = None;
                }
                Some((item, (watch, previous)))
            },
        );
        Self {
            results: Box::pin(results),
            runs,
        }
    }
}

/// Decodes `rows` and compares them with `previous` by id, replacing `previous`.
fn diff<T: FromRow + Clone>(
    names: &[String],
    rows: Vec<Vec<Value>>,
    previous: &mut Previous<T>,
) -> Result<QueryDiff<T>> {
    let id_column = super::row::require_column(names, "id")?;
    let columns = T::resolve(names)?;
    let mut current: Previous<T> = HashMap::with_capacity(rows.len());
    let mut out = QueryDiff {
        rows: Vec::with_capacity(rows.len()),
        added: Vec::new(),
        removed: Vec::new(),
        updated: Vec::new(),
    };
    for raw in rows {
        let key = format!("{:?}", raw[id_column]);
        let row = T::from_row(raw.as_slice(), &columns)?;
        match previous.remove(&key) {
            None => out.added.push(row.clone()),
            Some((old_raw, _)) if old_raw != raw => out.updated.push(row.clone()),
            Some(_) => {}
        }
        out.rows.push(row.clone());
        current.insert(key, (raw, row));
    }
    out.removed = previous.drain().map(|(_, (_, row))| row).collect();
    *previous = current;
    Ok(out)
}
