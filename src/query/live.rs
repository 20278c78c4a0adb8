//! [`LiveQuery`]: a query kept up to date as the tables it reads change.
//!
//! The contract is documented on [`LiveQuery`] itself (it is public API).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use crate::runtime::Instant;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use rusqlite::Connection;
use rusqlite::types::Value;

use super::shared_run::{RunKey, SharedRun};
use super::{FromRow, Query, RawRows};
use crate::store::{QueryTables, record_reads, schema_version};
use crate::{Error, Result, TableUpdateStream};

/// A stream of query results that stays current. Built by
/// [`Query::watch`](super::Query::watch).
///
/// # Contract
/// - It subscribes to table changes *before* taking the first snapshot, so a write that
///   lands in between is never missed.
/// - The first item is the current result. Afterwards it re-runs only when a table the
///   query reads changes (found while SQLite compiles it: every table it reads a column
///   or a row count of, so joins, subqueries, CTEs and views count; `ps_data__x` is
///   reported as `x`), or the
///   tables given to [`Query::triggered_by`](crate::Query::triggered_by). Commits to other
///   tables do not even wake it: the database delivers each commit only to the queries of
///   the tables it touched. The lookup happens in the same trip to a reader as the first
///   run and is cached per schema version (live queries of the same SQL share it); after
///   a schema change (a table created, a view redefined) the next run looks again. When
///   the statement does not compile (a table it names does not exist yet), every change triggers
///   a run until the schema changes.
/// - A run starts no sooner than the throttle after the previous run ended (so results
///   are at least the throttle apart), and a burst of changes is always followed by one
///   run after its last change (trailing edge), so the final state is delivered.
/// - A result equal to the previous one (compared on raw column values, so `T` needs no
///   `PartialEq`) is not emitted.
/// - A failing run is an `Err` item; the stream goes on and runs again on the next change.
/// - Live queries of the same SQL and parameters (and [`Query::triggered_by`] tables)
///   share their runs: when a commit wakes fifty of them, the first to run starts the
///   run and the others take its result, unless they need a later snapshot than it
///   took. Each still decodes and compares its own copy. See
///   [`shared_run_count`](Self::shared_run_count).
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
    counts: Arc<RunCounts>,
}

/// How often a live query ran, and how many of those runs another live query did.
#[derive(Default)]
struct RunCounts {
    runs: AtomicU64,
    shared: AtomicU64,
}

impl<T> std::fmt::Debug for LiveQuery<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveQuery").finish_non_exhaustive()
    }
}

impl<T> LiveQuery<T> {
    /// How many times the query has run so far (the first run included), whether or not
    /// the result changed: a way to check that unrelated writes cost nothing.
    ///
    /// A run taken from an identical live query counts too (see
    /// [`shared_run_count`](Self::shared_run_count)).
    pub fn run_count(&self) -> u64 {
        self.counts.runs.load(Ordering::Relaxed)
    }

    /// How many of its runs were another live query's run of the same SQL and
    /// parameters, taken instead of running again. Across live queries of one SQL, the
    /// times it actually ran are the sum of `run_count() - shared_run_count()`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use futures::StreamExt;
    /// use livesync::{Column, Database, Schema, Table};
    ///
    /// let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("title")])])).await?;
    /// let query = db.query::<String>("SELECT title FROM todos");
    /// let (mut first, mut second) = (query.clone().watch(), query.watch());
    /// first.next().await.unwrap()?;
    /// second.next().await.unwrap()?; // nothing committed since: the first run serves
    /// assert_eq!(second.shared_run_count(), 1);
    /// # Ok(()) }
    /// ```
    pub fn shared_run_count(&self) -> u64 {
        self.counts.shared.load(Ordering::Relaxed)
    }
}

impl<T> Stream for LiveQuery<T> {
    type Item = Result<Vec<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.results.as_mut().poll_next(cx)
    }
}

/// What a live query knows about the tables it reads.
#[derive(Clone)]
enum Sources {
    /// Not looked up yet (before the first run).
    Unknown,
    /// Given by [`Query::triggered_by`]: never looked up.
    Fixed,
    /// Changes to these tables (public names, lowercase) trigger a run; found at this
    /// schema version.
    Tables { version: i64, tables: Arc<[String]> },
    /// The statement could not be prepared at this schema version (a table it names
    /// does not exist yet, say): every change triggers a run until the schema changes.
    Unreadable { version: i64 },
}

impl Sources {
    /// The schema version the sources were found at (`None`: look them up, or never).
    fn version(&self) -> Option<i64> {
        match self {
            Self::Tables { version, .. } | Self::Unreadable { version } => Some(*version),
            Self::Unknown | Self::Fixed => None,
        }
    }
}

struct Watch<T> {
    query: Query<T>,
    /// The runs of live queries of the same key (`None`: a parameter failed to bind).
    shared: Option<SharedRun>,
    /// Subscribed when the live query is created, before the first snapshot: to every
    /// table until the first run found which ones the query reads.
    updates: TableUpdateStream,
    /// Which changes trigger a run.
    sources: Sources,
    /// The last emitted result, as raw values.
    last: Option<Vec<Vec<Value>>>,
    last_run: Option<Instant>,
    started: bool,
    counts: Arc<RunCounts>,
    /// How often the tables read were looked up (not found in the cache), for tests.
    lookups: u64,
}

impl<T: FromRow> LiveQuery<T> {
    pub(super) fn new(query: Query<T>) -> Self {
        let (watch, counts) = Watch::start(query);
        let results = futures::stream::unfold(watch, |mut watch| async move {
            let item = watch.next_result().await?;
            Some((item, watch))
        });
        Self {
            results: Box::pin(results),
            counts,
        }
    }
}

/// One run's outcome: the rows, and what triggers the query as of this run.
pub(super) struct Run {
    raw: Result<RawRows>,
    /// The sources in effect for this run (`None`: given, never looked up).
    sources: Option<Sources>,
    /// Whether this run looked the sources up (not found in the cache).
    looked_up: bool,
    /// The commits published before this run's snapshot was taken (all in it).
    stamp: u64,
}

impl<T: FromRow> Watch<T> {
    /// Subscribes to table changes (before anything runs) and sets up the run counter.
    fn start(query: Query<T>) -> (Self, Arc<RunCounts>) {
        let (updates, sources) = match &query.triggered_by {
            Some(tables) => (query.db.watch_tables(tables.clone()), Sources::Fixed),
            None => (
                query.db.store().watch_all_updates_until_retargeted(),
                Sources::Unknown,
            ),
        };
        let counts = Arc::new(RunCounts::default());
        let shared = RunKey::new(
            &query.sql,
            &query.params,
            query.bind_error.as_deref(),
            query.triggered_by.as_deref(),
        )
        .map(|key| query.db.store().shared_runs().join(key));
        let watch = Self {
            query,
            shared,
            updates,
            sources,
            last: None,
            last_run: None,
            started: false,
            counts: Arc::clone(&counts),
            lookups: 0,
        };
        (watch, counts)
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
    async fn next_raw(&mut self) -> Option<Result<RawRows>> {
        loop {
            // A re-run waits for its turn (`OpenOptions::live_query_reruns`); the first
            // run of a query does not.
            let in_turn = self.started;
            if self.started {
                self.wait_for_change().await?;
            }
            self.started = true;
            // Every commit this query was told about (and every one before it
            // subscribed) must be in the snapshot it runs on.
            let needed = self.updates.covered_through();
            let (outcome, joined) = match &self.shared {
                Some(shared) => {
                    let updates = &self.updates;
                    shared
                        .run(
                            needed,
                            || updates.publications(),
                            || self.start_run(in_turn),
                        )
                        .await
                }
                None => (Arc::new(self.start_run(in_turn).await), false),
            };
            // The throttle counts from the end of a run, so consecutive results are
            // always at least the throttle apart, however long the query takes.
            self.last_run = Some(self.query.db.runtime().now());
            // Counted once it ran, with what it found recorded just below (no await in
            // between), so a test that sees the count move sees the lookup too.
            self.counts.runs.fetch_add(1, Ordering::Relaxed);
            if joined {
                self.counts.shared.fetch_add(1, Ordering::Relaxed);
            }
            match &*outcome {
                Err(Error::Closed)
                | Ok(Run {
                    raw: Err(Error::Closed),
                    ..
                }) => return None,
                Ok(run) => {
                    // Changes this query was told of while its run waited for its turn
                    // (or before the run it joined began) are in the run's snapshot.
                    self.updates.discard_covered(run.stamp);
                    self.lookups += u64::from(run.looked_up && !joined);
                    self.adopt(run.sources.as_ref());
                    if let Ok((_, rows)) = &run.raw
                        && self.last.as_ref() == Some(rows)
                    {
                        continue; // unchanged: nothing to emit
                    }
                }
                Err(_) => {}
            }
            // Owned when the run was this query's alone; copied from a shared one.
            let raw = match Arc::try_unwrap(outcome) {
                Ok(Ok(run)) => run.raw,
                Ok(Err(e)) => Err(e),
                Err(shared) => match &*shared {
                    Ok(run) => run.raw.clone(),
                    Err(e) => Err(e.clone()),
                },
            };
            return match raw {
                Ok((names, rows)) => {
                    self.last = Some(rows.clone());
                    Some(Ok((names, rows)))
                }
                Err(e) => {
                    self.last = None; // the next successful run is news
                    Some(Err(e.in_query(self.query.sql())))
                }
            };
        }
    }

    /// Starts one run of the query on a reader (with the lookup of the tables it reads
    /// when the schema changed since `sources` were found); `in_turn` for a re-run,
    /// which waits for its turn (`store/rerun_lane.rs`).
    fn start_run(&self, in_turn: bool) -> BoxFuture<'static, Result<Run>> {
        let query = self.query.clone();
        let sources = self.sources.clone();
        let cache = Arc::clone(self.query.db.store().query_tables());
        let public_names = self.query.db.store().public_table_names();
        let publications = self.updates.publication_counter();
        let db = self.query.db.clone();
        let run = move |conn: &Connection| {
            // Read before the run's snapshot is taken: it includes these commits.
            let stamp = publications.get();
            let mut run = run_on(conn, &query, &sources, &cache, &public_names);
            run.stamp = stamp;
            Ok(run)
        };
        async move {
            if in_turn {
                db.store().read_in_turn(run).await
            } else {
                db.read(run).await
            }
        }
        .boxed()
    }

    /// Takes the sources a run found (or another live query's run had) when they are
    /// newer than this query's, and watches their tables from now on.
    fn adopt(&mut self, sources: Option<&Sources>) {
        let Some(sources) = sources else { return };
        if matches!(self.sources, Sources::Fixed) || sources.version() == self.sources.version() {
            return;
        }
        self.updates.retarget(match sources {
            Sources::Tables { tables, .. } => Some(tables.to_vec()),
            _ => None,
        });
        self.sources = sources.clone();
    }

    /// Waits until a table the query reads changed and the throttle allows a run;
    /// `None` once the database is closed. Only commits touching those tables reach
    /// this stream (the publisher routes by table), so every event is a reason to run.
    async fn wait_for_change(&mut self) -> Option<()> {
        self.updates.next().await?;
        if let Some(last_run) = self.last_run {
            let due = last_run + self.query.throttle;
            let runtime = self.query.db.runtime();
            if runtime.now() < due {
                runtime.sleep_until(due).await;
            }
        }
        // Changes that arrived while waiting are covered by the run that follows.
        while let Some(Some(_)) = self.updates.next().now_or_never() {}
        Some(())
    }
}

/// One run of `query` on a reader connection. When the schema changed since `sources`
/// were found (or they never were), the run also finds the tables the query reads: from
/// the cache when another live query of the same SQL found them at this schema version,
/// otherwise recorded while this very run compiles the statement (see
/// `store/query_tables.rs`). So a new live query costs one trip to a reader and one
/// compilation, like a `fetch_all`.
fn run_on<T: FromRow>(
    conn: &Connection,
    query: &Query<T>,
    sources: &Sources,
    cache: &QueryTables,
    public_names: &HashMap<String, String>,
) -> Run {
    let rerun = |sources: Option<Sources>| Run {
        raw: query.raw_on(conn),
        sources,
        looked_up: false,
        stamp: 0,
    };
    if matches!(sources, Sources::Fixed) {
        return rerun(None);
    }
    let version = match schema_version(conn) {
        Ok(version) => version,
        Err(e) => {
            return Run {
                raw: Err(e.into()),
                sources: None,
                looked_up: false,
                stamp: 0,
            };
        }
    };
    if sources.version() == Some(version) {
        return rerun(Some(sources.clone()));
    }
    if let Some(raw_names) = cache.get(version, &query.sql) {
        let tables = public_names_of(&raw_names, public_names);
        return rerun(Some(Sources::Tables { version, tables }));
    }
    // Compiled and run inside the recording, so that a re-compilation SQLite may do
    // while stepping (the schema changed meanwhile) is recorded too.
    let ((compiled, raw), raw_names) = record_reads(|| match query.prepare_fresh(conn) {
        Ok(mut stmt) => (true, query.raw_from(&mut stmt)),
        Err(e) => (false, Err(e)),
    });
    let found = if compiled {
        let raw_names: Arc<[String]> = raw_names.into();
        cache.remember(version, &query.sql, Arc::clone(&raw_names));
        let tables = public_names_of(&raw_names, public_names);
        Sources::Tables { version, tables }
    } else {
        // The statement does not compile (a table it names does not exist yet, say):
        // the error is the run's result, and every change triggers a run.
        Sources::Unreadable { version }
    };
    Run {
        raw,
        sources: Some(found),
        looked_up: true,
        stamp: 0,
    }
}

/// The public names (lowercase, sorted, deduplicated) of raw table names.
fn public_names_of(raw_names: &[String], public_names: &HashMap<String, String>) -> Arc<[String]> {
    let mut names: Vec<String> = raw_names
        .iter()
        .map(|table| public_name(table, public_names).to_ascii_lowercase())
        .collect();
    names.sort_unstable();
    names.dedup();
    names.into()
}

fn decode<T: FromRow>(names: &[String], rows: &[Vec<Value>]) -> Result<Vec<T>> {
    let columns = T::resolve(names)?;
    rows.iter()
        .map(|row| T::from_row(row.as_slice(), &columns))
        .collect()
}

fn public_name<'a>(table: &'a str, public_names: &'a HashMap<String, String>) -> &'a str {
    if let Some(name) = public_names.get(&table.to_ascii_lowercase()) {
        return name;
    }
    crate::schema::names::app_table(table).unwrap_or(table)
}

/// One item of [`LiveDiff`]: the full result plus what changed since the previous item,
/// rows matched by their key column (`id` unless
/// [`Query::watch_diff_by`](super::Query::watch_diff_by) chose another).
///
/// Rows sharing a key are matched as a multiset: first with identical rows of the
/// previous result (unchanged), then the rest pairwise in query order (updated); what is
/// left over was added or removed. So the counts always add up: with duplicates,
/// `rows.len() == previous rows.len() + added.len() - removed.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryDiff<T> {
    /// The whole current result, in query order.
    pub rows: Vec<T>,
    /// Rows whose key was not in the previous result, or that outnumber the previous
    /// rows with their key (every row, in the first item), in query order.
    pub added: Vec<T>,
    /// Rows of the previous result whose key is gone, or that outnumber the current rows
    /// with their key (their previous values), in the previous result's order.
    pub removed: Vec<T>,
    /// Rows whose key stayed but whose values changed (their new values), in query order.
    pub updated: Vec<T>,
}

/// A live query that reports differences: see [`Query::watch_diff`](super::Query::watch_diff).
#[must_use = "a live diff yields nothing unless polled; dropping it unsubscribes"]
pub struct LiveDiff<T> {
    results: BoxStream<'static, Result<QueryDiff<T>>>,
    counts: Arc<RunCounts>,
}

impl<T> LiveDiff<T> {
    /// How many times the query has run so far (see [`LiveQuery::run_count`]).
    pub fn run_count(&self) -> u64 {
        self.counts.runs.load(Ordering::Relaxed)
    }

    /// How many of its runs were another live query's (see
    /// [`LiveQuery::shared_run_count`]).
    pub fn shared_run_count(&self) -> u64 {
        self.counts.shared.load(Ordering::Relaxed)
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

/// The previous item of a diff stream: each row's raw values and decoded value, in
/// query order.
type Previous<T> = Vec<(Vec<Value>, T)>;

impl<T: FromRow + Clone> LiveDiff<T> {
    pub(super) fn new(query: Query<T>, key_column: String) -> Self {
        let (watch, counts) = Watch::start(query);
        let results = futures::stream::unfold(
            (watch, Previous::<T>::new()),
            move |(mut watch, mut previous)| {
                let key_column = key_column.clone();
                async move {
                    let item = match watch.next_raw().await? {
                        Ok((names, rows)) => diff(&names, rows, &mut previous, &key_column)
                            .map_err(|e| e.in_query(watch.query.sql())),
                        Err(e) => Err(e),
                    };
                    if item.is_err() {
                        watch.last = None;
                    }
                    Some((item, (watch, previous)))
                }
            },
        );
        Self {
            results: Box::pin(results),
            counts,
        }
    }
}

/// A value compared by type and content, hashable: the text `'1'` and the integer `1`
/// differ, reals compare by their bits (with `-0.0` as `0.0`).
#[derive(Clone, Copy)]
struct Exact<'a>(&'a Value);

fn real_bits(r: f64) -> u64 {
    if r == 0.0 { 0 } else { r.to_bits() }
}

impl PartialEq for Exact<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.0, other.0) {
            (Value::Null, Value::Null) => true,
            (Value::Integer(a), Value::Integer(b)) => a == b,
            (Value::Real(a), Value::Real(b)) => real_bits(*a) == real_bits(*b),
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Blob(a), Value::Blob(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Exact<'_> {}

impl std::hash::Hash for Exact<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self.0 {
            Value::Null => state.write_u8(0),
            Value::Integer(i) => {
                state.write_u8(1);
                state.write_i64(*i);
            }
            Value::Real(r) => {
                state.write_u8(2);
                state.write_u64(real_bits(*r));
            }
            Value::Text(t) => {
                state.write_u8(3);
                t.hash(state);
            }
            Value::Blob(b) => {
                state.write_u8(4);
                b.hash(state);
            }
        }
    }
}

/// A whole row, compared and hashed value by value like [`Exact`].
struct ExactRow<'a>(&'a [Value]);

impl PartialEq for ExactRow<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0)
                .all(|(a, b)| Exact(a) == Exact(b))
    }
}

impl Eq for ExactRow<'_> {}

impl std::hash::Hash for ExactRow<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.len());
        for value in self.0 {
            Exact(value).hash(state);
        }
    }
}

/// Indexes of `items` grouped by `key`, each group in reverse order so that `pop` hands
/// out the earliest first.
fn groups<K: std::hash::Hash + Eq>(
    items: impl DoubleEndedIterator<Item = (usize, K)>,
) -> HashMap<K, Vec<usize>> {
    let mut groups: HashMap<K, Vec<usize>> = HashMap::new();
    for (index, key) in items.rev() {
        groups.entry(key).or_default().push(index);
    }
    groups
}

/// Decodes `rows` and compares them with `previous` by the key column, replacing
/// `previous` (only when the whole result decoded).
fn diff<T: FromRow + Clone>(
    names: &[String],
    rows: Vec<Vec<Value>>,
    previous: &mut Previous<T>,
    key_column: &str,
) -> Result<QueryDiff<T>> {
    let key = super::row::column_index(names, key_column).ok_or_else(|| Error::Decode {
        column: key_column.to_owned(),
        message: format!(
            "watch_diff matches rows by the column {key_column:?}, which the query does not return (it returns {names:?}): select it, or choose the key column with watch_diff_by"
        ),
        sql: None,
    })?;
    let columns = T::resolve(names)?;
    let decoded = rows
        .iter()
        .map(|raw| T::from_row(raw.as_slice(), &columns))
        .collect::<Result<Vec<T>>>()?;

    #[derive(Clone, Copy)]
    enum Match {
        Pending,
        Unchanged,
        Updated,
        Added,
    }
    let mut matched = vec![Match::Pending; rows.len()];
    let mut previous_taken = vec![false; previous.len()];
    // Identical rows first, so that rows sharing a key pair up with their own selves.
    let mut identical = groups(
        previous
            .iter()
            .enumerate()
            .map(|(i, (raw, _))| (i, ExactRow(raw))),
    );
    for (index, raw) in rows.iter().enumerate() {
        if let Some(earlier) = identical.get_mut(&ExactRow(raw)).and_then(Vec::pop) {
            previous_taken[earlier] = true;
            matched[index] = Match::Unchanged;
        }
    }
    // Then the remaining rows by key, in order.
    let mut by_key = groups(
        previous
            .iter()
            .enumerate()
            .filter(|(i, _)| !previous_taken[*i])
            .map(|(i, (raw, _))| (i, Exact(&raw[key]))),
    );
    for (index, raw) in rows.iter().enumerate() {
        if !matches!(matched[index], Match::Pending) {
            continue;
        }
        matched[index] = match by_key.get_mut(&Exact(&raw[key])).and_then(Vec::pop) {
            Some(earlier) => {
                previous_taken[earlier] = true;
                Match::Updated
            }
            None => Match::Added,
        };
    }

    let mut out = QueryDiff {
        rows: decoded.clone(),
        added: Vec::new(),
        removed: Vec::new(),
        updated: Vec::new(),
    };
    for (row, how) in decoded.iter().zip(&matched) {
        match how {
            Match::Added => out.added.push(row.clone()),
            Match::Updated => out.updated.push(row.clone()),
            Match::Unchanged | Match::Pending => {}
        }
    }
    let old = std::mem::take(previous);
    out.removed = old
        .into_iter()
        .zip(previous_taken)
        .filter(|(_, taken)| !taken)
        .map(|((_, row), _)| row)
        .collect();
    *previous = rows.into_iter().zip(decoded).collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Column, Database, Schema, Table};

    /// Runs until the run counter moved (the result may be unchanged, so no item).
    async fn one_more_run<T: FromRow>(watch: &mut Watch<T>, counts: &RunCounts) {
        let runs = &counts.runs;
        let before = runs.load(Ordering::Relaxed);
        tokio::select! {
            _ = watch.next_raw() => {}
            _ = async {
                while runs.load(Ordering::Relaxed) == before {
                    tokio::task::yield_now().await;
                }
            } => {}
        }
    }

    #[tokio::test]
    async fn the_tables_read_are_looked_up_once_per_schema_version() {
        let db = Database::in_memory(Schema::new([Table::new("t", [Column::text("a")])]))
            .await
            .unwrap();
        let query = db
            .query::<i64>("SELECT count(*) > 100 FROM t")
            .throttle(std::time::Duration::ZERO);
        let (mut watch, runs) = Watch::start(query);
        watch.next_raw().await.unwrap().unwrap();
        for i in 0..3 {
            db.execute(&format!("INSERT INTO t(id, a) VALUES ('{i}', 'x')"), ())
                .await
                .unwrap();
            one_more_run(&mut watch, &runs).await;
        }
        assert_eq!(runs.runs.load(Ordering::Relaxed), 4);
        assert_eq!(
            watch.lookups, 1,
            "the tables were looked up again without a schema change"
        );
        db.execute_batch("CREATE TABLE unrelated(x)").await.unwrap();
        db.execute("INSERT INTO t(id, a) VALUES ('3', 'x')", ())
            .await
            .unwrap();
        one_more_run(&mut watch, &runs).await;
        assert_eq!(
            watch.lookups, 2,
            "a schema change must invalidate what was found"
        );
    }

    #[tokio::test]
    async fn a_live_query_does_not_keep_the_list_of_every_table() {
        let schema = Schema::new((0..50).map(|t| Table::new(format!("t{t}"), [Column::text("a")])));
        let db = Database::in_memory(schema).await.unwrap();
        // A plain all-tables stream keeps the list for its initial event...
        assert!(db.watch_all_updates().all_tables_kept() > 50);
        // ...a live query's (all tables until its first run) does not: with a thousand
        // tables that list was most of a mounted live query's memory.
        let (mut watch, _) = Watch::start(db.query::<String>("SELECT a FROM t1"));
        assert_eq!(watch.updates.all_tables_kept(), 0);
        watch.next_raw().await.unwrap().unwrap();
        assert_eq!(watch.updates.all_tables_kept(), 0);
    }

    #[tokio::test]
    async fn live_queries_of_the_same_sql_share_one_lookup() {
        let db = Database::in_memory(Schema::new([Table::new("t", [Column::text("a")])]))
            .await
            .unwrap();
        let sql = "SELECT a FROM t ORDER BY a";
        let (mut first, _) = Watch::start(db.query::<String>(sql));
        first.next_raw().await.unwrap().unwrap();
        let (mut second, _) = Watch::start(db.query::<String>(sql));
        second.next_raw().await.unwrap().unwrap();
        assert_eq!((first.lookups, second.lookups), (1, 0));
        assert_eq!(db.store().query_tables().cached_queries(), 1);
    }

    #[tokio::test]
    async fn the_key_of_identical_live_queries_is_forgotten_with_the_last_of_them() {
        let db = Database::in_memory(Schema::new([Table::new("t", [Column::text("a")])]))
            .await
            .unwrap();
        let query = db.query::<String>("SELECT a FROM t");
        let (first, _) = Watch::start(query.clone());
        let (second, _) = Watch::start(query.clone());
        let (other, _) = Watch::start(query.bind(1)); // other parameters: another key
        assert_eq!(db.store().shared_runs().keys(), 2);
        drop(first);
        assert_eq!(db.store().shared_runs().keys(), 2);
        drop((second, other));
        assert_eq!(db.store().shared_runs().keys(), 0);
    }
}
