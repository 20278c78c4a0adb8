//! Writing synced rows into raw tables (docs/sync-protocol.md §9.5): each row goes
//! through the table's put statement (an upsert) or delete statement, given or inferred
//! from the table's columns, with its parameters bound from the row's JSON.
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

/// The put and delete statements of one raw table, resolved for the table as it is now.
struct Statements {
    put: PendingStatement,
    delete: PendingStatement,
}

fn statements(conn: &Connection, table: &CheckedRawTable) -> Result<Statements> {
    if let (Some(put), Some(delete)) = (&table.put, &table.delete) {
        return Ok(Statements {
            put: put.clone(),
            delete: delete.clone(),
        });
    }
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
    let mut put_sql = format!("INSERT INTO {quoted}(\"id\"");
    let mut values = "?1".to_owned();
    let mut updates = Vec::with_capacity(columns.synced.len());
    let mut params = vec![PendingStatementValue::Id];
    for (i, column) in columns.synced.iter().enumerate() {
        put_sql.push_str(", ");
        put_sql.push_str(&column.quoted());
        values.push_str(&format!(", ?{}", i + 2));
        updates.push(format!("{q} = excluded.{q}", q = column.quoted()));
        params.push(PendingStatementValue::Column(column.as_str().to_owned()));
    }
    // Only the synced columns are set: the table's own columns keep their values.
    let on_conflict = if updates.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    put_sql.push_str(&format!(
        ") VALUES ({values}) ON CONFLICT(\"id\") {on_conflict}"
    ));
    Ok(Statements {
        put: PendingStatement {
            sql: put_sql,
            params,
        },
        delete: PendingStatement {
            sql: format!("DELETE FROM {quoted} WHERE \"id\" = ?1"),
            params: vec![PendingStatementValue::Id],
        },
    })
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

/// Writes synced rows into one raw table.
pub(crate) struct RawWriter<'c> {
    table: &'c CheckedRawTable,
    put: rusqlite::CachedStatement<'c>,
    put_params: Vec<PendingStatementValue>,
    delete: rusqlite::CachedStatement<'c>,
    _applying: SyncApply,
}

impl<'c> RawWriter<'c> {
    pub(crate) fn new(conn: &'c Connection, table: &'c CheckedRawTable) -> Result<Self> {
        let statements = statements(conn, table)?;
        Ok(Self {
            table,
            put: prepare_statement(conn, table, "put", &statements.put)?,
            put_params: statements.put.params,
            delete: prepare_statement(conn, table, "delete", &statements.delete)?,
            _applying: SyncApply::enter(),
        })
    }

    /// Writes row `id`: `Some(data)` (the op's JSON text) puts it, `None` deletes it.
    pub(crate) fn write(&mut self, id: &str, data: Option<&str>) -> Result<()> {
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

/// Writes every row `select` yields (`row_id, data`, bound to `?1` = the table's type)
/// into `table`.
pub(crate) fn write_selected(
    conn: &Connection,
    table: &CheckedRawTable,
    select: &str,
) -> Result<usize> {
    let mut writer = RawWriter::new(conn, table)?;
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
        "SELECT id, data FROM ps_untyped WHERE type = ?1",
    )?;
    conn.prepare_cached("DELETE FROM ps_untyped WHERE type = ?1")?
        .execute([&table.name])?;
    tracing::debug!(table = %table.name, moved, "moved parked synced rows into the raw table");
    Ok(())
}
