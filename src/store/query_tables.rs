//! Which tables a query reads, from its plan, with the lookups cached per schema version.
//!
//! `EXPLAIN` of the query lists every B-tree its plan opens (`OpenRead` / `OpenWrite`
//! on the main database, by root page), through joins, subqueries, CTEs and views, so
//! the tables behind those root pages are exactly those whose contents can change the
//! result. Two things depend on the schema only, and are kept for the current
//! `PRAGMA schema_version` in a [`QueryTables`] shared by every live query of a database:
//! - root page → table, read from `sqlite_schema` once per schema version (it used to be
//!   read whole for every live query, which made creating one cost as much as ten
//!   `fetch_all`s and grew with the schema);
//! - SQL text → the tables it reads, so the many live queries of one SQL (a list shown
//!   by many components) share one `EXPLAIN`.
//!
//! Any schema change (a table created, a view redefined) bumps the schema version and
//! drops both at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;

use crate::{Error, Result};

/// The schema version a connection sees (SQLite bumps it with every schema change).
pub(crate) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA schema_version")?
        .query_row([], |row| row.get(0))
}

/// SQL texts kept before the cache starts over (apps have a bounded set of queries; this
/// only stops a generator of distinct SQL from growing it forever).
const CACHED_QUERIES: usize = 4096;

/// The per-schema-version caches of one database (see the module docs).
#[derive(Default)]
pub(crate) struct QueryTables {
    state: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    version: i64,
    /// Root page → raw table name, at `version` (`None`: not read yet).
    root_pages: Option<Arc<HashMap<i64, String>>>,
    /// SQL text → the raw names of the tables it reads, at `version`.
    by_sql: HashMap<Arc<str>, Arc<[String]>>,
}

impl Cached {
    /// Makes `version` current if it is newer (a reader may briefly see an older one).
    fn advance(&mut self, version: i64) {
        if version > self.version {
            *self = Self {
                version,
                ..Self::default()
            };
        }
    }
}

impl QueryTables {
    fn cached(&self) -> std::sync::MutexGuard<'_, Cached> {
        // Every update is a plain assignment: a panic cannot leave it half done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The raw names of the tables `sql` reads, looked up on `conn`, whose schema is at
    /// `version`; the second value says whether `EXPLAIN` had to run (a cache miss).
    /// An error means the plan cannot be read (a table it names does not exist, say).
    pub(crate) fn tables_read_by(
        &self,
        conn: &Connection,
        version: i64,
        sql: &Arc<str>,
    ) -> Result<(Arc<[String]>, bool)> {
        let root_pages = {
            let mut cached = self.cached();
            cached.advance(version);
            if cached.version == version
                && let Some(tables) = cached.by_sql.get(sql)
            {
                return Ok((Arc::clone(tables), false));
            }
            cached
                .root_pages
                .as_ref()
                .filter(|_| cached.version == version)
                .cloned()
        };
        let root_pages = match root_pages {
            Some(pages) => pages,
            None => {
                let pages = Arc::new(read_root_pages(conn)?);
                let mut cached = self.cached();
                if cached.version == version {
                    cached.root_pages = Some(Arc::clone(&pages));
                }
                pages
            }
        };
        let tables: Arc<[String]> = plan_tables(conn, sql, &root_pages)?.into();
        let mut cached = self.cached();
        if cached.version == version {
            if cached.by_sql.len() >= CACHED_QUERIES {
                cached.by_sql.clear();
            }
            cached.by_sql.insert(Arc::clone(sql), Arc::clone(&tables));
        }
        Ok((tables, true))
    }

    /// How many SQL texts are cached (for tests).
    #[cfg(test)]
    pub(crate) fn cached_queries(&self) -> usize {
        self.cached().by_sql.len()
    }
}

fn read_root_pages(conn: &Connection) -> Result<HashMap<i64, String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT rootpage, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index') AND rootpage > 0",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The raw names of the tables whose B-trees the plan of `sql` opens, sorted.
fn plan_tables(
    conn: &Connection,
    sql: &str,
    root_pages: &HashMap<i64, String>,
) -> Result<Vec<String>> {
    let explain = format!("EXPLAIN {sql}");
    // Not through the statement cache: each text is explained once per schema version.
    let mut stmt = conn
        .prepare(&explain)
        .map_err(|e| Error::sqlite_with_sql(e, sql.to_owned()))?;
    let mut rows = stmt.raw_query();
    let mut tables = Vec::new();
    while let Some(row) = rows.next()? {
        // EXPLAIN columns: addr, opcode, p1, p2, p3, p4, p5, comment.
        let opcode = row.get_ref(1)?.as_str().unwrap_or_default();
        if (opcode == "OpenRead" || opcode == "OpenWrite") && row.get::<_, i64>(4)? == 0 {
            let root: i64 = row.get(3)?;
            if let Some(table) = root_pages.get(&root) {
                tables.push(table.clone());
            }
        }
    }
    tables.sort_unstable();
    tables.dedup();
    Ok(tables)
}
