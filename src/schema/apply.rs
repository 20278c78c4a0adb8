//! Applying a schema to a database: internal migrations, then creating, keeping or
//! dropping each managed object so the database matches the schema (idempotent).

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension};

use super::bulk;
use super::sql::{self, VIEW_MARKER};
use super::validate::{CheckedSchema, data_table_name};
use crate::{Error, Result};

/// The internal layout version this build creates (see `sql::INTERNAL_TABLES_V1`).
const INTERNAL_VERSION: i64 = 3;

/// Brings `conn` in line with `schema`. The caller wraps the call in one write
/// transaction, so a failure leaves the database exactly as it was.
pub(crate) fn apply_schema(conn: &Connection, schema: &CheckedSchema) -> Result<()> {
    apply_with(conn, schema, Strategy::Auto)
}

/// How the objects are created and removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// In bulk (`bulk.rs`) when there are at least [`BULK_MIN_STATEMENTS`] of them.
    Auto,
    /// One statement per object, always.
    #[cfg(test)]
    Statements,
    /// In bulk whenever SQLite allows it, however few.
    #[cfg(test)]
    Bulk,
}

/// Below this many objects to create (or views and triggers to remove), plain DDL
/// statements are as fast as the bulk path, which moves every row of `sqlite_schema`.
const BULK_MIN_STATEMENTS: usize = 64;

impl Strategy {
    fn bulk(self, statements: usize) -> bool {
        match self {
            Self::Auto => statements >= BULK_MIN_STATEMENTS,
            #[cfg(test)]
            Self::Statements => false,
            #[cfg(test)]
            Self::Bulk => statements > 0,
        }
    }
}

fn apply_with(conn: &Connection, schema: &CheckedSchema, strategy: Strategy) -> Result<()> {
    run_internal_migrations(conn)?;
    let objects = Inventory::read(conn)?;
    // Every name in use (lowercase), kept up to date as objects go, so that what is
    // created below is checked against what remains.
    let mut taken: HashMap<String, String> = objects.names.clone();

    // Views (with their triggers): keep the ones that match, remove the others. Views
    // go first: nothing may still point at a data table retired below.
    let mut wanted_views = HashSet::new();
    let mut stale_views = Vec::new();
    let mut new_views = HashMap::new();
    for table in &schema.tables {
        let view_sql = sql::view(table);
        let triggers = sql::triggers(table);
        let name = table.view.folded();
        wanted_views.insert(name.clone());
        match objects.views.get(&name) {
            Some(current) if current.matches(&view_sql, &triggers) => continue,
            Some(current) => stale_views.push(current),
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
        new_views.insert(name, (view_sql, triggers));
    }
    stale_views.extend(
        objects
            .views
            .iter()
            .filter(|(name, _)| !wanted_views.contains(*name))
            .map(|(_, view)| view),
    );
    remove_views(conn, &stale_views, strategy)?;
    for view in &stale_views {
        taken.remove(&view.name.to_ascii_lowercase());
        for trigger in view.triggers.keys() {
            taken.remove(trigger);
        }
        for (_, trigger) in &view.other_triggers {
            taken.remove(trigger);
        }
    }

    // Data tables: keep (rows preserved: JSON keeps every key), rename, retire; the new
    // ones are created below.
    let mut wanted_tables = HashSet::new();
    let mut new_tables = HashSet::new();
    for table in &schema.tables {
        let data_table = table.data_table();
        let folded = data_table.to_ascii_lowercase();
        // SQLite names are case-insensitive: `Todos` renamed `todos` keeps its table.
        wanted_tables.insert(folded.clone());
        match objects.data_tables.get(&folded) {
            Some(existing) if *existing != data_table => {
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
            Some(_) => {}
            None => {
                new_tables.insert(folded);
            }
        }
    }
    let mut retired = HashSet::new();
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
        retired.insert(folded.as_str());
    }
    // What went with the retired tables: their indexes and triggers.
    taken.retain(|_, table| !retired.contains(table.as_str()));

    // Indexes: drop the ones no longer wanted or changed; the missing ones are created
    // below.
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
            taken.remove(name);
        }
    }

    // What to create, one unit per app table, each object after what it needs.
    let mut units = Vec::new();
    for table in &schema.tables {
        let data_table = table.data_table();
        let folded = data_table.to_ascii_lowercase();
        let is_new = new_tables.contains(&folded);
        let mut unit = bulk::Unit {
            depends_on: None,
            statements: Vec::new(),
        };
        let mut claim = |name: &str, what: &str| -> Result<()> {
            match taken.insert(name.to_ascii_lowercase(), folded.clone()) {
                None => Ok(()),
                Some(_) => Err(Error::schema(format!(
                    "table {:?} needs {what} named {name:?}, but the database already has an object of that name that livesync does not manage; drop or rename it",
                    table.name.as_str()
                ))),
            }
        };
        if is_new {
            claim(&data_table, "a data table")?;
            unit.statements.push(sql::create_data_table(&data_table));
        }
        for index in &table.indexes {
            let name = sql::index_name(table, index);
            if !kept_indexes.contains(&name.to_ascii_lowercase()) {
                claim(&name, "an index")?;
                if !is_new {
                    unit.depends_on = Some(folded.clone());
                }
                unit.statements.push(sql::index(table, index));
            }
        }
        if let Some((view_sql, triggers)) = new_views.remove(&table.view.folded()) {
            claim(table.view.as_str(), "a view")?;
            unit.statements.push(view_sql);
            for trigger in triggers {
                claim(&trigger.name, "a trigger")?;
                unit.statements.push(trigger.sql);
            }
        }
        if !unit.statements.is_empty() {
            units.push(unit);
        }
    }
    create_objects(conn, &units, strategy)?;

    // Rows synced before the schema knew a new table move in.
    let parked: HashSet<String> = {
        let mut stmt = conn.prepare("SELECT DISTINCT type FROM ps_untyped")?;
        let types = stmt.query_map([], |row| row.get::<_, String>(0))?;
        types.collect::<rusqlite::Result<_>>()?
    };
    for table in &schema.tables {
        let name = table.name.as_str();
        if table.local_only
            || !parked.contains(name)
            || !new_tables.contains(&table.data_table().to_ascii_lowercase())
        {
            continue;
        }
        let data_table = table.data_table();
        exec(
            conn,
            &format!(
                "INSERT INTO \"{data_table}\"(id, data) SELECT id, data FROM ps_untyped WHERE type = '{name}';\n\
                 DELETE FROM ps_untyped WHERE type = '{name}'"
            ),
        )?;
    }
    // Last: a JSON table turned raw has just parked its rows, which move on into the
    // raw table if it exists already.
    crate::sync::raw_rows::prepare(conn, &schema.raw_tables, false)?;
    Ok(())
}

/// Drops `views` (and so their triggers).
fn remove_views(conn: &Connection, views: &[&ExistingView], strategy: Strategy) -> Result<()> {
    let objects = views.iter().map(|v| 1 + v.triggers.len()).sum();
    if strategy.bulk(objects) {
        let rowids: Vec<i64> = views
            .iter()
            .flat_map(|v| {
                // Dropping a view drops every trigger on it, the app's too.
                std::iter::once(v.rowid)
                    .chain(v.triggers.values().map(|t| t.0))
                    .chain(v.other_triggers.iter().map(|t| t.0))
            })
            .collect();
        if bulk::remove(conn, &rowids)? {
            return Ok(());
        }
    }
    for view in views {
        exec(
            conn,
            &format!("DROP VIEW {}", super::names::quote(&view.name)),
        )?;
    }
    Ok(())
}

/// Runs the `CREATE` statements of `units`.
fn create_objects(conn: &Connection, units: &[bulk::Unit], strategy: Strategy) -> Result<()> {
    let statements = units.iter().map(|u| u.statements.len()).sum();
    if strategy.bulk(statements) && bulk::create(conn, units)? {
        return Ok(());
    }
    for statement in units.iter().flat_map(|u| &u.statements) {
        exec(conn, statement)?;
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
    /// Its row in `sqlite_schema`.
    rowid: i64,
    name: String,
    sql: String,
    /// Lowercase trigger name → (rowid, SQL).
    triggers: HashMap<String, (i64, String)>,
    /// Triggers on the view that livesync did not create: (rowid, lowercase name).
    other_triggers: Vec<(i64, String)>,
}

impl ExistingView {
    fn matches(&self, view_sql: &str, triggers: &[sql::TriggerSql]) -> bool {
        self.sql == view_sql
            && self.triggers.len() == triggers.len()
            && triggers.iter().all(|t| {
                self.triggers
                    .get(&t.name.to_ascii_lowercase())
                    .is_some_and(|(_, sql)| *sql == t.sql)
            })
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
    /// Every object's lowercase name → its table's lowercase name.
    names: HashMap<String, String>,
}

impl Inventory {
    fn read(conn: &Connection) -> Result<Self> {
        let mut inventory = Inventory {
            data_tables: HashMap::new(),
            views: HashMap::new(),
            indexes: HashMap::new(),
            unmanaged: HashMap::new(),
            names: HashMap::new(),
        };
        let mut stmt =
            conn.prepare("SELECT rowid, type, name, tbl_name, ifnull(sql, '') FROM sqlite_schema")?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        })?;
        let mut triggers = Vec::new();
        let mut other_triggers = Vec::new();
        for row in rows {
            let (rowid, kind, name, table, object_sql) = row?;
            let folded = name.to_ascii_lowercase();
            inventory
                .names
                .insert(folded.clone(), table.to_ascii_lowercase());
            match kind.as_str() {
                "table" if super::names::is_data_table(&name) => {
                    inventory.data_tables.insert(folded, name);
                }
                "view" if object_sql.ends_with(VIEW_MARKER) => {
                    inventory.views.insert(
                        folded,
                        ExistingView {
                            rowid,
                            name,
                            sql: object_sql,
                            triggers: HashMap::new(),
                            other_triggers: Vec::new(),
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
                    triggers.push((table.to_ascii_lowercase(), folded, rowid, object_sql));
                }
                "trigger" => {
                    other_triggers.push((table.to_ascii_lowercase(), rowid, folded.clone()));
                    inventory.unmanaged.insert(folded, kind);
                }
                _ => {
                    inventory.unmanaged.insert(folded, kind);
                }
            }
        }
        for (view, name, rowid, trigger_sql) in triggers {
            if let Some(existing) = inventory.views.get_mut(&view) {
                existing.triggers.insert(name, (rowid, trigger_sql));
            }
        }
        for (view, rowid, name) in other_triggers {
            if let Some(existing) = inventory.views.get_mut(&view) {
                existing.other_triggers.push((rowid, name));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Index, IndexColumn, Schema, Table, TrackPreviousValues};

    fn first(tables: usize) -> Schema {
        let mut all: Vec<Table> = (0..tables)
            .map(|i| {
                Table::new(format!("t{i}"), [Column::text("a"), Column::integer("b")])
                    .index(Index::new("by_a", [IndexColumn::ascending("a")]))
            })
            .collect();
        all.extend([
            Table::new(
                "todos",
                [Column::text("description"), Column::real("score")],
            )
            .view_name("my_todos")
            .track_metadata()
            .ignore_empty_update()
            .track_previous_values(
                TrackPreviousValues::columns(["description"]).only_when_changed(),
            ),
            Table::new("logs", [Column::text("msg")]).insert_only(),
            Table::new("drafts", [Column::text("body")]).local_only(),
            Table::new("Renamed", [Column::text("x")])
                .index(Index::new("by_x", [IndexColumn::descending("x")])),
            Table::new("leaving", [Column::text("x")]),
        ]);
        Schema::new(all)
    }

    /// Every kind of change at once: columns added, an index added to an existing table,
    /// an index changed, a table renamed by case, a table retired, a view renamed.
    fn second(tables: usize) -> Schema {
        let mut all: Vec<Table> = (0..tables)
            .map(|i| {
                Table::new(
                    format!("t{i}"),
                    [Column::text("a"), Column::integer("b"), Column::real("c")],
                )
                .index(Index::new("by_a", [IndexColumn::descending("a")]))
                .index(Index::new("by_b", [IndexColumn::ascending("b")]))
            })
            .collect();
        all.extend([
            Table::new(
                "todos",
                [Column::text("description"), Column::real("score")],
            )
            .view_name("todo_view"),
            Table::new("logs", [Column::text("msg")]).insert_only(),
            Table::new("drafts", [Column::text("body"), Column::text("title")]).local_only(),
            Table::new("renamed", [Column::text("x")])
                .index(Index::new("by_x", [IndexColumn::descending("x")])),
            Table::new("arriving", [Column::text("y")]),
        ]);
        Schema::new(all)
    }

    fn apply(conn: &mut Connection, schema: &Schema, strategy: Strategy) {
        let checked = CheckedSchema::check(schema).unwrap();
        let tx = conn.transaction().unwrap();
        apply_with(&tx, &checked, strategy).unwrap();
        tx.commit().unwrap();
    }

    fn objects(conn: &Connection) -> Vec<(String, String, String, Option<String>)> {
        let mut stmt = conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn schema_version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA schema_version", [], |r| r.get(0))
            .unwrap()
    }

    fn check(conn: &Connection) {
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }

    #[test]
    fn bulk_and_one_statement_per_object_write_the_same_schema() {
        let dir = tempfile::tempdir().unwrap();
        let mut plain = Connection::open(dir.path().join("plain.db")).unwrap();
        let mut bulk = Connection::open(dir.path().join("bulk.db")).unwrap();
        for schema in [first(5), second(5), first(5)] {
            apply(&mut plain, &schema, Strategy::Statements);
            apply(&mut bulk, &schema, Strategy::Bulk);
            // An app's own trigger on a managed view goes when the view is replaced.
            let app_trigger = "CREATE TRIGGER IF NOT EXISTS app_audit INSTEAD OF DELETE ON \"t1\" \
                               BEGIN SELECT 1; END";
            plain.execute_batch(app_trigger).unwrap();
            bulk.execute_batch(app_trigger).unwrap();
            let expected = objects(&plain);
            assert_eq!(objects(&bulk), expected);
            check(&bulk);
            // A second connection (another process, a reader) sees the new schema.
            let other = Connection::open(dir.path().join("bulk.db")).unwrap();
            assert_eq!(objects(&other), expected);
            // Applying it again finds nothing to do.
            let version = schema_version(&bulk);
            apply(&mut bulk, &schema, Strategy::Bulk);
            assert_eq!(schema_version(&bulk), version);
            assert_eq!(objects(&bulk), expected);
        }
        // Data survives the bulk path's moves, and views work on the re-created schema.
        bulk.execute_batch(
            "INSERT INTO ps_data_local__drafts(id, data) VALUES ('d', '{\"body\":\"b\"}')",
        )
        .unwrap();
        apply(&mut bulk, &second(5), Strategy::Bulk);
        let body: String = bulk
            .query_row("SELECT body FROM drafts WHERE id = 'd'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(body, "b");
        check(&bulk);
    }

    #[test]
    fn a_name_taken_by_an_unmanaged_object_is_refused_in_bulk_too() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE other(x); CREATE INDEX \"ps_data__t0__by_a\" ON other(x)")
            .unwrap();
        let checked = CheckedSchema::check(&first(3)).unwrap();
        let tx = conn.transaction().unwrap();
        let err = apply_with(&tx, &checked, Strategy::Bulk).unwrap_err();
        assert!(matches!(err, Error::Schema { .. }), "{err:?}");
        assert!(err.to_string().contains("ps_data__t0__by_a"), "{err}");
        drop(tx);
        // Rolled back whole, and the connection is usable.
        assert_eq!(objects(&conn).len(), 2);
        check(&conn);
    }
}
