//! Creating and removing many schema objects in time linear in the size of the schema.
//!
//! # Why
//! SQLite's DDL is linear per statement in the size of the schema: every `CREATE` runs
//! `SELECT * FROM sqlite_schema WHERE …` (a full scan: the schema table has no index) to
//! load the new object, and every schema change walks all tables in memory
//! (`sqlite3FkClearTriggerCache`). A table here is five objects (data table, view, three
//! triggers), so creating a schema of N tables one statement at a time costs O(N²): about
//! 40 s for 2,000 tables, far more for 10,000.
//!
//! # How
//! All of it happens inside the caller's write transaction, so a failure (or a crash)
//! leaves the file as it was.
//!
//! - **Creating** ([`create`]): the rows of `sqlite_schema` are moved into memory and the
//!   table is emptied (`PRAGMA writable_schema`), and the in-memory schema is reloaded, so
//!   it is empty too. Then every object is created with its ordinary `CREATE` statement,
//!   one app table at a time; after each table the rows SQLite wrote are moved out again,
//!   and every [`BATCH`] tables the in-memory schema is reloaded (empty) again. So each
//!   statement sees a schema of a few objects, whatever the size of the database.
//!   Finally the rows go back in their order (the existing objects first, then the new
//!   ones, each object after the ones it depends on), SQLite reloads the whole schema
//!   once, and any row that does not load back fails the transaction. Every row is the
//!   one SQLite itself wrote for the statement; only its position in `sqlite_schema`
//!   (its rowid) changes, which nothing depends on. Objects that own b-tree pages are
//!   never removed this way, so no page can be lost or shared.
//! - **Removing** views and their triggers ([`remove`]), which own no pages: their rows
//!   are deleted from `sqlite_schema`, the schema version is bumped (so other
//!   connections reload) and the schema is reloaded once.
//!
//! Both need `PRAGMA writable_schema`; when SQLite refuses it (a build with
//! `SQLITE_DBCONFIG_DEFENSIVE`), they report `false` and the caller runs the statements
//! one by one instead.

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;
use rusqlite::types::Value;

use crate::{Error, Result};

/// App tables created between two reloads of the in-memory schema: bounds the schema
/// each statement sees (and SQLite walks) to a few hundred objects.
const BATCH: usize = 64;

/// The statements that create one app table's objects.
pub(super) struct Unit {
    /// An existing data table (lowercase name) the statements need in the in-memory
    /// schema: the table of a new index.
    pub(super) depends_on: Option<String>,
    /// `CREATE` statements, each object after the ones it depends on.
    pub(super) statements: Vec<String>,
}

/// One row of `sqlite_schema`: type, name, tbl_name, rootpage, sql, as stored.
type SchemaRow = [Value; 5];

/// `PRAGMA writable_schema` for as long as it lives; dropping it turns it off and
/// reloads the schema (also when an error cuts the work short: the caller then rolls
/// back, and the schema is read again from the restored file).
struct WritableSchema<'c>(&'c Connection);

impl<'c> WritableSchema<'c> {
    /// `None` when SQLite refuses to make the schema writable.
    fn enable(conn: &'c Connection) -> Result<Option<Self>> {
        conn.execute_batch("PRAGMA writable_schema = ON")?;
        let enabled: bool = conn.query_row("PRAGMA writable_schema", [], |row| row.get(0))?;
        Ok(enabled.then_some(Self(conn)))
    }

    /// Makes SQLite read the schema again (from what `sqlite_schema` holds now) before
    /// the next statement.
    fn reload(&self) -> Result<()> {
        self.0
            .execute_batch("PRAGMA writable_schema = RESET; PRAGMA writable_schema = ON")?;
        Ok(())
    }
}

impl Drop for WritableSchema<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.execute_batch("PRAGMA writable_schema = RESET") {
            tracing::warn!(error = %e, "could not turn PRAGMA writable_schema off");
        }
    }
}

/// Removes the views and triggers stored in the `sqlite_schema` rows `rowids`. `false`
/// when SQLite does not allow it (nothing was changed).
pub(super) fn remove(conn: &Connection, rowids: &[i64]) -> Result<bool> {
    let Some(writable) = WritableSchema::enable(conn)? else {
        return Ok(false);
    };
    {
        let mut delete = conn.prepare(
            "DELETE FROM sqlite_schema WHERE rowid = ?1 AND type IN ('view', 'trigger') AND rootpage = 0",
        )?;
        for rowid in rowids {
            delete.execute([rowid])?;
        }
    }
    // Other connections notice a schema change by its version.
    let version: i64 = conn.query_row("PRAGMA schema_version", [], |row| row.get(0))?;
    conn.execute_batch(&format!("PRAGMA schema_version = {}", version + 1))?;
    drop(writable);
    load_back(conn)?;
    Ok(true)
}

/// Runs every unit's statements, each seeing a schema of a few objects (see the module
/// documentation). `false` when SQLite does not allow it (nothing was changed).
pub(super) fn create(conn: &Connection, units: &[Unit]) -> Result<bool> {
    let Some(writable) = WritableSchema::enable(conn)? else {
        return Ok(false);
    };
    let needed: HashSet<&str> = units
        .iter()
        .filter_map(|u| u.depends_on.as_deref())
        .collect();

    // Everything SQLite has, in order, and where the rows of needed tables are.
    let mut kept: Vec<Option<SchemaRow>> = read_rows(conn)?.into_iter().map(Some).collect();
    let mut rows_of: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, row) in kept.iter().enumerate() {
        if let Some([_, _, Value::Text(table), _, _]) = row {
            let table = table.to_ascii_lowercase();
            if needed.contains(table.as_str()) {
                rows_of.entry(table).or_default().push(index);
            }
        }
    }
    clear(conn)?;
    writable.reload()?;

    let mut created: Vec<SchemaRow> = Vec::new();
    let mut since_reload = 0;
    for unit in units {
        if let Some(table) = &unit.depends_on {
            // The table (with its indexes) moves along with its new objects, so it still
            // comes before them.
            let moved: Vec<SchemaRow> = rows_of
                .remove(table)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|index| kept[index].take())
                .collect();
            if !moved.is_empty() {
                insert_rows(conn, &moved)?;
                writable.reload()?;
                since_reload = 0;
            }
        }
        for statement in &unit.statements {
            conn.execute_batch(statement)
                .map_err(|e| Error::sqlite_with_sql(e, statement.as_str()))?;
        }
        created.extend(read_rows(conn)?);
        clear(conn)?;
        since_reload += 1;
        if since_reload == BATCH {
            writable.reload()?;
            since_reload = 0;
        }
    }

    let kept: Vec<SchemaRow> = kept.into_iter().flatten().collect();
    insert_rows(conn, &kept)?;
    insert_rows(conn, &created)?;
    drop(writable);
    load_back(conn)?;
    Ok(true)
}

fn read_rows(conn: &Connection) -> Result<Vec<SchemaRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema ORDER BY rowid",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok([
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
        ])
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn clear(conn: &Connection) -> Result<()> {
    conn.prepare_cached("DELETE FROM sqlite_schema")?
        .execute([])?;
    Ok(())
}

fn insert_rows(conn: &Connection, rows: &[SchemaRow]) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO sqlite_schema(type, name, tbl_name, rootpage, sql) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for row in rows {
        insert.execute(rusqlite::params_from_iter(row))?;
    }
    Ok(())
}

/// Makes SQLite load the whole schema now, so a row that does not load back fails the
/// transaction here, as a schema error (never as a corrupt file: the caller rolls back).
fn load_back(conn: &Connection) -> Result<()> {
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| {
        row.get::<_, i64>(0)
    })
    .map(drop)
    .map_err(|e| {
        Error::schema(format!(
            "internal error: the schema objects livesync wrote do not load back ({e}); nothing was changed, please report this"
        ))
    })
}
