//! Writing synced rows into raw tables (docs/sync-protocol.md §9.5). Inferred statements
//! run set-based (one `INSERT … SELECT json_extract(…)` upsert and one `DELETE` per
//! table and apply, built from the table's columns at apply time); the app's own
//! statements run once per row, with their parameters bound from the row's JSON.
//!
//! Everything here runs under [`SyncApply`], so the table's upload triggers do not
//! record what sync writes.

use std::collections::HashMap;

use rusqlite::{Connection, Statement};
use serde_json::{Map, Value};

use crate::schema::raw_triggers::{self, raw_error};
use crate::schema::sql::TriggerSql;
use crate::schema::{CheckedRawTable, PendingStatement, PendingStatementValue, names};
use crate::store::in_sync_apply::SyncApply;
use crate::{Error, Result};

/// Writes every row `select` yields into `table`; `select` yields `row_id` and `data`
/// (`NULL`: delete the row) with `?1` bound to the table's type. Returns how many rows
/// were written.
pub(crate) fn write_selected(
    conn: &Connection,
    table: &CheckedRawTable,
    select: &str,
) -> Result<usize> {
    match (&table.put, &table.delete) {
        (Some(put), Some(delete)) => write_each(conn, table, put, delete, select),
        _ => write_inferred(conn, table, select),
    }
}

/// The inferred statements, set-based: one `INSERT … SELECT` taking each synced column
/// from the row's JSON (`json_extract` maps JSON types exactly as
/// [`PendingStatementValue`] documents), and one `DELETE`. Row data reaches the op log
/// only as checked JSON object text (`protocol.rs`), so the extraction cannot fail on it.
fn write_inferred(conn: &Connection, table: &CheckedRawTable, select: &str) -> Result<usize> {
    let Some(columns) = raw_triggers::table_columns(conn, table)? else {
        return Err(raw_error(
            table,
            format!(
                "its table {:?} does not exist: create it (then call Database::prepare_raw_tables) before syncing; the synced rows wait in the op log meanwhile",
                table.table.as_str()
            ),
        ));
    };
    let quoted = table.table.quoted();
    let mut names = "\"id\"".to_owned();
    let mut values = "s.row_id".to_owned();
    let mut updates = Vec::with_capacity(columns.synced.len());
    for column in &columns.synced {
        names.push_str(&format!(", {}", column.quoted()));
        values.push_str(&format!(", json_extract(s.data, '$.{}')", column.as_str()));
        updates.push(format!("{q} = excluded.{q}", q = column.quoted()));
    }
    // Only the synced columns are set: the table's own columns keep their values.
    let on_conflict = if updates.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    let put = format!(
        "INSERT INTO {quoted}({names}) SELECT {values} FROM ({select}) s WHERE s.data IS NOT NULL \
         ON CONFLICT(\"id\") {on_conflict}"
    );
    let delete = format!(
        "DELETE FROM {quoted} WHERE \"id\" IN (SELECT s.row_id FROM ({select}) s WHERE s.data IS NULL)"
    );
    let _applying = SyncApply::enter();
    let mut written = 0;
    for (what, sql) in [("put", put), ("delete", delete)] {
        written += conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.execute([&table.name]))
            .map_err(|e| {
                raw_error(
                    table,
                    format!(
                        "writing synced rows with its inferred {what} statement failed: {} (check that \"id\" is its primary key or unique)",
                        Error::from(e)
                    ),
                )
            })?;
    }
    Ok(written)
}

/// Prepares `statement`, checking that it has one parameter per value.
fn prepare_statement<'c>(
    conn: &'c Connection,
    table: &CheckedRawTable,
    what: &str,
    statement: &PendingStatement,
) -> Result<rusqlite::CachedStatement<'c>> {
    let prepared = conn.prepare_cached(&statement.sql).map_err(|e| {
        raw_error(
            table,
            format!(
                "its {what} statement does not compile: {} (statement: {})",
                Error::from(e),
                statement.sql
            ),
        )
    })?;
    if prepared.parameter_count() != statement.params.len() {
        return Err(raw_error(
            table,
            format!(
                "its {what} statement has {} parameters but {} values to bind (statement: {})",
                prepared.parameter_count(),
                statement.params.len(),
                statement.sql
            ),
        ));
    }
    Ok(prepared)
}

/// Writes synced rows one by one into a raw table with statements of the app's own.
struct RawWriter<'c> {
    table: &'c CheckedRawTable,
    put: rusqlite::CachedStatement<'c>,
    put_params: Vec<PendingStatementValue>,
    delete: rusqlite::CachedStatement<'c>,
    _applying: SyncApply,
}

impl<'c> RawWriter<'c> {
    fn new(
        conn: &'c Connection,
        table: &'c CheckedRawTable,
        put: &PendingStatement,
        delete: &PendingStatement,
    ) -> Result<Self> {
        Ok(Self {
            table,
            put: prepare_statement(conn, table, "put", put)?,
            put_params: put.params.clone(),
            delete: prepare_statement(conn, table, "delete", delete)?,
            _applying: SyncApply::enter(),
        })
    }

    /// Writes row `id`: `Some(data)` (the op's JSON text) puts it, `None` deletes it.
    fn write(&mut self, id: &str, data: Option<&str>) -> Result<()> {
        let result = match data {
            None => {
                for i in 1..=self.delete.parameter_count() {
                    self.delete.raw_bind_parameter(i, id)?;
                }
                self.delete.raw_execute()
            }
            Some(data) => {
                let row = parse_row(self.table, id, data);
                bind_put(&mut self.put, &self.put_params, id, &row)?;
                self.put.raw_execute()
            }
        };
        result.map(|_| ()).map_err(|e| {
            let what = if data.is_some() { "put" } else { "delete" };
            raw_error(
                self.table,
                format!(
                    "its {what} statement failed for row {id:?}: {}",
                    Error::from(e)
                ),
            )
        })
    }
}

/// The row's JSON object. Data that is not one (the service never sends that) binds
/// as an empty row rather than stopping sync; a warning says which row.
fn parse_row(table: &CheckedRawTable, id: &str, data: &str) -> Map<String, Value> {
    match serde_json::from_str::<Map<String, Value>>(data) {
        Ok(row) => row,
        Err(_) => {
            tracing::warn!(table = %table.name, id, "synced row data is not a JSON object; its columns are bound as NULL");
            Map::new()
        }
    }
}

fn bind_put(
    stmt: &mut Statement<'_>,
    params: &[PendingStatementValue],
    id: &str,
    row: &Map<String, Value>,
) -> rusqlite::Result<()> {
    for (i, param) in params.iter().enumerate() {
        let index = i + 1;
        match param {
            PendingStatementValue::Id => stmt.raw_bind_parameter(index, id)?,
            PendingStatementValue::Column(column) => bind_json(stmt, index, row.get(column))?,
            PendingStatementValue::Rest => {
                let rest: Map<String, Value> = row
                    .iter()
                    .filter(|(key, _)| {
                        !params
                            .iter()
                            .any(|p| matches!(p, PendingStatementValue::Column(c) if c == *key))
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                stmt.raw_bind_parameter(index, Value::Object(rest).to_string())?
            }
        }
    }
    Ok(())
}

/// Binds a JSON value as SQLite stores it (see [`PendingStatementValue`]), borrowing
/// strings rather than copying them.
fn bind_json(
    stmt: &mut Statement<'_>,
    index: usize,
    value: Option<&Value>,
) -> rusqlite::Result<()> {
    match value {
        None | Some(Value::Null) => stmt.raw_bind_parameter(index, rusqlite::types::Null),
        Some(Value::Bool(b)) => stmt.raw_bind_parameter(index, i64::from(*b)),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => stmt.raw_bind_parameter(index, i),
            (None, Some(f)) => stmt.raw_bind_parameter(index, f),
            (None, None) => stmt.raw_bind_parameter(index, rusqlite::types::Null),
        },
        Some(Value::String(text)) => stmt.raw_bind_parameter(index, text.as_str()),
        Some(nested) => stmt.raw_bind_parameter(index, nested.to_string()),
    }
}

/// [`write_selected`] with the app's own statements, row by row.
fn write_each(
    conn: &Connection,
    table: &CheckedRawTable,
    put: &PendingStatement,
    delete: &PendingStatement,
    select: &str,
) -> Result<usize> {
    let mut writer = RawWriter::new(conn, table, put, delete)?;
    let mut rows = conn.prepare_cached(select)?;
    let mut rows = rows.query([&table.name])?;
    let mut written = 0;
    while let Some(row) = rows.next()? {
        let id = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        let data = row
            .get_ref(1)?
            .as_str_or_null()
            .map_err(rusqlite::Error::from)?;
        writer.write(id, data)?;
        written += 1;
    }
    Ok(written)
}

/// Runs the raw tables' clear statements (signing out).
pub(crate) fn clear(conn: &Connection, tables: &[CheckedRawTable]) -> Result<()> {
    let _applying = SyncApply::enter();
    for table in tables {
        if let Some(sql) = &table.clear {
            conn.execute_batch(sql).map_err(|e| {
                raw_error(
                    table,
                    format!(
                        "its clear statement failed: {} (statement: {sql})",
                        Error::from(e)
                    ),
                )
            })?;
        }
    }
    Ok(())
}

/// Gets raw tables ready after their SQLite tables were created or altered: (re)creates
/// the upload triggers, and moves rows synced while the type had no table (parked in
/// `ps_untyped`, e.g. a JSON table turned raw) into the table. `strict`: a raw table
/// whose SQLite table does not exist is an error (when asked for explicitly), rather
/// than skipped (when a schema is applied).
///
/// Triggers that already read as wanted are left alone: rewriting them would change the
/// schema (and discard every connection's prepared statements) at each open.
pub(crate) fn prepare(conn: &Connection, tables: &[CheckedRawTable], strict: bool) -> Result<()> {
    let mut existing: HashMap<String, (String, String)> = conn
        .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND name GLOB ?1")?
        .query_map([format!("{}*", raw_triggers::TRIGGER_PREFIX)], |r| {
            let name: String = r.get(0)?;
            Ok((name.to_ascii_lowercase(), (name, r.get(1)?)))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut wanted = Vec::new();
    for table in tables {
        let Some(columns) = raw_triggers::table_columns(conn, table)? else {
            if strict {
                return Err(raw_error(
                    table,
                    format!(
                        "its table {:?} does not exist; create it first",
                        table.table.as_str()
                    ),
                ));
            }
            tracing::debug!(table = %table.name, "raw table not created yet; its triggers wait for Database::prepare_raw_tables");
            continue;
        };
        if table.capture_writes {
            wanted.extend(raw_triggers::triggers(table, &columns)?);
        }
    }
    let keep = |existing: &mut HashMap<String, (String, String)>, trigger: &TriggerSql| {
        existing
            .remove(&trigger.name.to_ascii_lowercase())
            .is_some_and(|(_, sql)| sql == trigger.sql)
    };
    let mut create = Vec::new();
    for trigger in &wanted {
        if !keep(&mut existing, trigger) {
            conn.execute_batch(&format!(
                "DROP TRIGGER IF EXISTS {}",
                names::quote(&trigger.name)
            ))?;
            create.push(trigger);
        }
    }
    // What is left belongs to tables that are no longer raw (or no longer captured).
    for (name, _) in existing.values() {
        conn.execute_batch(&format!("DROP TRIGGER IF EXISTS {}", names::quote(name)))?;
    }
    for trigger in create {
        conn.execute_batch(&trigger.sql)
            .map_err(|e| Error::sqlite_with_sql(e, trigger.sql.clone()))?;
    }
    for table in tables {
        adopt_parked_rows(conn, table)?;
    }
    Ok(())
}

/// Moves the rows of `table`'s type parked in `ps_untyped` into the table, if it exists.
fn adopt_parked_rows(conn: &Connection, table: &CheckedRawTable) -> Result<()> {
    let parked: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM ps_untyped WHERE type = ?1)")?
        .query_row([&table.name], |r| r.get(0))?;
    if !parked || raw_triggers::table_columns(conn, table)?.is_none() {
        return Ok(());
    }
    let moved = write_selected(
        conn,
        table,
        "SELECT id AS row_id, data FROM ps_untyped WHERE type = ?1",
    )?;
    conn.prepare_cached("DELETE FROM ps_untyped WHERE type = ?1")?
        .execute([&table.name])?;
    tracing::debug!(table = %table.name, moved, "moved parked synced rows into the raw table");
    Ok(())
}
