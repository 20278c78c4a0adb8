//! Applying a schema to a database: internal migrations, then creating, keeping or
//! dropping each managed object so the database matches the schema (idempotent).

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension};

use super::sql::{self, VIEW_MARKER};
use super::validate::{CheckedSchema, data_table_name};
use crate::{Error, Result};

/// The internal layout version this build creates (see `sql::INTERNAL_TABLES_V1`).
const INTERNAL_VERSION: i64 = 3;

/// Brings `conn` in line with `schema`. The caller wraps the call in one write
/// transaction, so a failure leaves the database exactly as it was.
pub(crate) fn apply_schema(conn: &Connection, schema: &CheckedSchema) -> Result<()> {
    run_internal_migrations(conn)?;
    let objects = Inventory::read(conn)?;

    // Which views (with their triggers) must be (re)created. Views go first: dropping a
    // view drops its triggers, and nothing may still point at a data table dropped below.
    let mut wanted_views = HashSet::new();
    let mut views_to_create = Vec::new();
    for table in &schema.tables {
        let view_sql = sql::view(table);
        let triggers = sql::triggers(table);
        let name = table.view.folded();
        wanted_views.insert(name.clone());
        match objects.views.get(&name) {
            Some(current) if current.matches(&view_sql, &triggers) => continue,
            Some(_) => exec(conn, &format!("DROP VIEW {}", table.view.quoted()))?,
            None => {
                if let Some(kind) = objects.unmanaged.get(&name) {
                    return Err(Error::schema(format!(
                        "table {:?} needs a view named {:?}, but the database already has a {kind} of that name that livesync does not manage; rename one of them (Table::view_name)",
                        table.name.as_str(),
                        table.view.as_str()
                    )));
                }
            }
        }
        views_to_create.push((view_sql, triggers));
    }
    for (name, view) in &objects.views {
        if !wanted_views.contains(name) {
            exec(conn, &format!("DROP VIEW \"{}\"", view.name))?;
        }
    }

    // Data tables: keep (rows preserved: JSON keeps every key), create, or retire.
    let mut wanted_tables = HashSet::new();
    for table in &schema.tables {
        let data_table = table.data_table();
        // SQLite names are case-insensitive: `Todos` renamed `todos` keeps its table.
        wanted_tables.insert(data_table.to_ascii_lowercase());
        if let Some(existing) = objects.data_tables.get(&data_table.to_ascii_lowercase()) {
            if *existing != data_table {
                // Renamed only by case: give the data table the new spelling, since the
                // sync engine routes rows by exact object type (two steps, as SQLite
                // sees both spellings as the same name).
                exec(
                    conn,
                    &format!(
                        "ALTER TABLE \"{existing}\" RENAME TO \"{data_table}__renaming\";\n\
                         ALTER TABLE \"{data_table}__renaming\" RENAME TO \"{data_table}\""
                    ),
                )?;
            }
            continue;
        }
        exec(conn, &sql::create_data_table(&data_table))?;
        if !table.local_only {
            // Rows synced before the schema knew this table move in.
            let name = table.name.as_str();
            exec(
                conn,
                &format!(
                    "INSERT INTO \"{data_table}\"(id, data) SELECT id, data FROM ps_untyped WHERE type = '{name}';\n\
                     DELETE FROM ps_untyped WHERE type = '{name}'"
                ),
            )?;
        }
    }
    for (folded, data_table) in &objects.data_tables {
        if wanted_tables.contains(folded) {
            continue;
        }
        if let Some(name) = super::names::synced_type(data_table) {
            // Synced rows are parked, not lost: re-adding the table brings them back.
            let park = format!(
                "INSERT OR REPLACE INTO ps_untyped(type, id, data) SELECT ?1, id, data FROM {}",
                super::names::quote(data_table)
            );
            conn.execute(&park, [name])
                .map_err(|e| Error::sqlite_with_sql(e, park.clone()))?;
        }
        exec(conn, &format!("DROP TABLE \"{data_table}\""))?;
    }

    // Indexes: drop the ones no longer wanted or changed, create the missing ones.
    let mut wanted_indexes = HashMap::new();
    for table in &schema.tables {
        for index in &table.indexes {
            let name = sql::index_name(table, index).to_ascii_lowercase();
            wanted_indexes.insert(name, sql::index(table, index));
        }
    }
    let mut kept_indexes = HashSet::new();
    for (name, existing) in &objects.indexes {
        if !wanted_tables.contains(&existing.table.to_ascii_lowercase()) {
            continue; // dropped with its table
        }
        if wanted_indexes.get(name) == Some(&existing.sql) {
            kept_indexes.insert(name.clone());
        } else {
            exec(conn, &format!("DROP INDEX \"{}\"", existing.name))?;
        }
    }
    for (name, index_sql) in &wanted_indexes {
        if !kept_indexes.contains(name) {
            exec(conn, index_sql)?;
        }
    }

    for (view_sql, triggers) in views_to_create {
        exec(conn, &view_sql)?;
        for trigger in triggers {
            exec(conn, &trigger.sql)?;
        }
    }
    Ok(())
}

/// User-facing names of the data tables of `schema`, keyed by the lowercase data table
/// name: `ps_data__todos` → `todos` (or the view name override), used to report table
/// changes under the names app code queries.
pub(crate) fn data_table_view_names(schema: &CheckedSchema) -> HashMap<String, String> {
    schema
        .tables
        .iter()
        .map(|t| {
            (
                data_table_name(t.name.as_str(), t.local_only),
                t.view.to_string(),
            )
        })
        .collect()
}

fn exec(conn: &Connection, sql: &str) -> Result<()> {
    conn.execute_batch(sql)
        .map_err(|e| Error::sqlite_with_sql(e, sql))
}

fn run_internal_migrations(conn: &Connection) -> Result<()> {
    let has_migrations: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'ps_migration'",
        [],
        |row| row.get(0),
    )?;
    let version: i64 = if has_migrations {
        conn.query_row("SELECT ifnull(max(id), 0) FROM ps_migration", [], |row| {
            row.get(0)
        })?
    } else {
        exec(
            conn,
            "CREATE TABLE ps_migration(id INTEGER PRIMARY KEY, down_migrations TEXT)",
        )?;
        0
    };
    if version > INTERNAL_VERSION {
        return Err(Error::schema(format!(
            "the database was written by a newer livesync (internal layout {version}, this build knows up to {INTERNAL_VERSION}); upgrade livesync"
        )));
    }
    if version < 1 {
        exec(conn, sql::INTERNAL_TABLES_V1)?;
        exec(conn, sql::NEW_CLIENT_ID)?;
        exec(
            conn,
            "INSERT INTO ps_migration(id, down_migrations) VALUES (1, '[]')",
        )?;
    }
    if version < 2 {
        exec(conn, sql::INTERNAL_TABLES_V2)?;
    }
    if version < 3 {
        exec(conn, sql::INTERNAL_TABLES_V3)?;
    }
    Ok(())
}

/// A managed view and its triggers, as found in `sqlite_schema`.
struct ExistingView {
    name: String,
    sql: String,
    /// Lowercase trigger name → SQL.
    triggers: HashMap<String, String>,
}

impl ExistingView {
    fn matches(&self, view_sql: &str, triggers: &[sql::TriggerSql]) -> bool {
        self.sql == view_sql
            && self.triggers.len() == triggers.len()
            && triggers
                .iter()
                .all(|t| self.triggers.get(&t.name.to_ascii_lowercase()) == Some(&t.sql))
    }
}

/// A managed index, as found in `sqlite_schema`.
struct ExistingIndex {
    name: String,
    table: String,
    sql: String,
}

/// The managed objects currently in the database (keys are lowercase names).
struct Inventory {
    /// Lowercase name → name as stored.
    data_tables: HashMap<String, String>,
    views: HashMap<String, ExistingView>,
    indexes: HashMap<String, ExistingIndex>,
    /// Lowercase name → kind, for objects livesync must not touch.
    unmanaged: HashMap<String, String>,
}

impl Inventory {
    fn read(conn: &Connection) -> Result<Self> {
        let mut inventory = Inventory {
            data_tables: HashMap::new(),
            views: HashMap::new(),
            indexes: HashMap::new(),
            unmanaged: HashMap::new(),
        };
        let mut stmt =
            conn.prepare("SELECT type, name, tbl_name, ifnull(sql, '') FROM sqlite_schema")?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })?;
        let mut triggers = Vec::new();
        for row in rows {
            let (kind, name, table, object_sql) = row?;
            let folded = name.to_ascii_lowercase();
            match kind.as_str() {
                "table" if super::names::is_data_table(&name) => {
                    inventory.data_tables.insert(folded, name);
                }
                "view" if object_sql.ends_with(VIEW_MARKER) => {
                    inventory.views.insert(
                        folded,
                        ExistingView {
                            name,
                            sql: object_sql,
                            triggers: HashMap::new(),
                        },
                    );
                }
                "index" if super::names::is_data_table(&table) && !object_sql.is_empty() => {
                    let index = ExistingIndex {
                        name,
                        table,
                        sql: object_sql,
                    };
                    inventory.indexes.insert(folded, index);
                }
                "trigger" if name.starts_with("ps_view_") => {
                    triggers.push((table.to_ascii_lowercase(), folded, object_sql));
                }
                _ => {
                    inventory.unmanaged.insert(folded, kind);
                }
            }
        }
        for (view, name, trigger_sql) in triggers {
            if let Some(existing) = inventory.views.get_mut(&view) {
                existing.triggers.insert(name, trigger_sql);
            }
        }
        Ok(inventory)
    }
}

/// Reads the persistent client id created by the first migration.
pub(crate) fn client_id(conn: &Connection) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT value FROM ps_kv WHERE key = 'client_id'",
            [],
            |row| row.get(0),
        )
        .optional()?)
}
