//! Which tables a query reads, recorded while SQLite compiles it, with the results cached
//! per schema version.
//!
//! # Recording reads
//! While SQLite compiles a statement it asks the connection's authorizer about every
//! table column the statement reads (`SQLITE_READ`; a table read for its row count only,
//! as in `SELECT count(*) FROM t`, is reported with an empty column name). That covers
//! joins, subqueries, CTEs and views (a view's own `SELECT` is compiled into the query,
//! so the tables behind it are reported too), and virtual tables. So a live query finds
//! its tables in the very `prepare` it needs to run at all: [`record_reads`] arms a
//! per-thread recorder around that `prepare`, and the authorizer of every connection
//! notes each read into it. There is no second compilation (the earlier design ran
//! `EXPLAIN` of the query beside it and mapped the plan's root pages back to tables,
//! which made creating a live query cost about twice a `fetch_all`).
//!
//! The recorder is per thread because a connection's work always runs on one thread
//! (a writer or reader thread, or the caller's in the browser), and it lets the
//! authorizer be installed once: SQLite discards every prepared statement of a connection
//! whose authorizer changes.
//!
//! # Caching
//! What a SQL text reads depends on the schema only, so the tables found are kept per
//! SQL text for the current `PRAGMA schema_version` in a [`QueryTables`] shared by every
//! live query of a database: many live queries of one SQL (a list shown by many
//! components) share one lookup. Any schema change (a table created, a view redefined)
//! bumps the schema version and drops the cache.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext};

/// The schema version a connection sees (SQLite bumps it with every schema change).
pub(crate) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA schema_version")?
        .query_row([], |row| row.get(0))
}

thread_local! {
    /// The raw names of the tables read by statements compiled on this thread while
    /// [`record_reads`] runs (`None`: not recording).
    static RECORDED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Runs `compile` (which prepares, and may run, a statement on a connection with a
/// recording authorizer: [`install_read_recorder`], or the writer's change tracker) and
/// returns its outcome with the raw names of the main database's tables the compiled
/// statements read, sorted and deduplicated.
pub(crate) fn record_reads<T>(compile: impl FnOnce() -> T) -> (T, Vec<String>) {
    /// Stops recording even when `compile` panics, so a later prepare on this thread
    /// does not record into a stale list.
    struct Disarm;
    impl Drop for Disarm {
        fn drop(&mut self) {
            RECORDED.with(|recorded| recorded.borrow_mut().take());
        }
    }
    RECORDED.with(|recorded| *recorded.borrow_mut() = Some(Vec::new()));
    let disarm = Disarm;
    let outcome = compile();
    let mut tables = RECORDED
        .with(|recorded| recorded.borrow_mut().take())
        .unwrap_or_default();
    drop(disarm);
    tables.sort_unstable();
    tables.dedup();
    (outcome, tables)
}

/// Notes a read the authorizer was asked about, when this thread is recording (a cheap
/// no-op otherwise). Only the main database counts: what `temp` and attached databases
/// hold is never announced as changed.
pub(crate) fn note_read(context: &AuthContext<'_>) {
    let AuthAction::Read { table_name, .. } = context.action else {
        return;
    };
    if context.database_name.is_some_and(|db| db != "main") {
        return;
    }
    RECORDED.with(|recorded| {
        if let Some(tables) = recorded.borrow_mut().as_mut()
            && tables.last().is_none_or(|last| last != table_name)
        {
            tables.push(table_name.to_owned());
        }
    });
}

/// Installs the recording authorizer on a connection that has no authorizer of its own
/// (the readers; the writer's change tracker calls [`note_read`] from its own). It
/// allows everything. (In the browser the one connection is the writer's.)
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn install_read_recorder(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.authorizer(Some(|context: AuthContext<'_>| {
        note_read(&context);
        rusqlite::hooks::Authorization::Allow
    }))
}

/// SQL texts kept before the cache starts over (apps have a bounded set of queries; this
/// only stops a generator of distinct SQL from growing it forever).
const CACHED_QUERIES: usize = 4096;

/// The tables each SQL text reads, at the current schema version (see the module docs).
#[derive(Default)]
pub(crate) struct QueryTables {
    state: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    version: i64,
    /// SQL text → the raw names of the tables it reads, at `version`.
    by_sql: HashMap<Arc<str>, Arc<[String]>>,
}

impl QueryTables {
    fn cached(&self) -> std::sync::MutexGuard<'_, Cached> {
        // Every update is a plain assignment or insert: a panic cannot leave it half done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The raw names of the tables `sql` reads at schema `version`, if already found.
    pub(crate) fn get(&self, version: i64, sql: &str) -> Option<Arc<[String]>> {
        let cached = self.cached();
        (cached.version == version)
            .then(|| cached.by_sql.get(sql).cloned())
            .flatten()
    }

    /// Keeps what `sql` was found to read at schema `version` (a newer version starts the
    /// cache over; a reader that still saw an older one keeps nothing).
    pub(crate) fn remember(&self, version: i64, sql: &Arc<str>, tables: Arc<[String]>) {
        let mut cached = self.cached();
        if version > cached.version {
            *cached = Cached {
                version,
                by_sql: HashMap::new(),
            };
        }
        if cached.version != version {
            return;
        }
        if cached.by_sql.len() >= CACHED_QUERIES {
            cached.by_sql.clear();
        }
        cached.by_sql.insert(Arc::clone(sql), tables);
    }

    /// How many SQL texts are cached (for tests).
    #[cfg(test)]
    pub(crate) fn cached_queries(&self) -> usize {
        self.cached().by_sql.len()
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn connection() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        install_read_recorder(&mut conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE ps_data__todos(id TEXT PRIMARY KEY, data TEXT);
             CREATE VIEW todos AS SELECT id, json_extract(data, '$.title') AS title FROM ps_data__todos;
             CREATE TABLE lists(id TEXT PRIMARY KEY, name TEXT);
             CREATE TABLE tags(id TEXT PRIMARY KEY, todo TEXT);
             CREATE TEMP TABLE scratch(x);",
        )
        .unwrap();
        conn
    }

    fn reads(conn: &Connection, sql: &str) -> Vec<String> {
        let (prepared, tables) = record_reads(|| conn.prepare(sql).map(drop));
        prepared.unwrap();
        tables
    }

    #[test]
    fn reads_are_found_through_views_joins_subqueries_and_ctes() {
        let conn = connection();
        assert_eq!(reads(&conn, "SELECT count(*) FROM lists"), ["lists"]);
        // A view is reported beside the tables behind it (its public name is the same).
        assert_eq!(
            reads(&conn, "SELECT title FROM todos"),
            ["ps_data__todos", "todos"]
        );
        assert_eq!(
            reads(
                &conn,
                "SELECT l.name FROM lists l JOIN tags t ON t.id = l.id \
                 WHERE l.id IN (SELECT id FROM todos)"
            ),
            ["lists", "ps_data__todos", "tags", "todos"]
        );
        assert_eq!(
            reads(
                &conn,
                "WITH recent AS (SELECT todo FROM tags) SELECT count(*) FROM recent"
            ),
            ["tags"]
        );
        assert!(reads(&conn, "SELECT 1").is_empty());
        assert!(
            reads(&conn, "SELECT x FROM scratch").is_empty(),
            "temp tables are not watched"
        );
    }

    #[test]
    fn nothing_is_recorded_outside_record_reads() {
        let conn = connection();
        conn.prepare("SELECT name FROM lists").unwrap();
        let (_, tables) = record_reads(|| ());
        assert!(tables.is_empty());
        // A failed prepare records what it got to, and recording still stops after it.
        let (prepared, _) = record_reads(|| conn.prepare("SELECT nope FROM lists").map(drop));
        assert!(prepared.is_err());
        assert_eq!(reads(&conn, "SELECT id FROM tags"), ["tags"]);
    }

    #[test]
    fn the_cache_keeps_the_newest_schema_version_only() {
        let cache = QueryTables::default();
        let sql: Arc<str> = Arc::from("SELECT 1");
        cache.remember(3, &sql, Arc::from(vec!["a".to_owned()]));
        assert_eq!(cache.get(3, &sql).as_deref(), Some(&["a".to_owned()][..]));
        assert!(cache.get(4, &sql).is_none());
        cache.remember(2, &sql, Arc::from(vec!["old".to_owned()]));
        assert_eq!(cache.get(3, &sql).as_deref(), Some(&["a".to_owned()][..]));
        cache.remember(4, &sql, Arc::from(vec!["b".to_owned()]));
        assert!(cache.get(3, &sql).is_none());
        assert_eq!(cache.cached_queries(), 1);
    }
}
