//! Raw tables: ordinary SQLite tables the app creates and migrates itself, which the sync
//! engine fills through put/delete statements instead of a JSON-backed view
//! (docs/sync-protocol.md §9.5, docs/architecture.md "Raw tables").

use std::collections::HashSet;

use super::{Identifier, TrackPreviousValues};
use crate::{Error, Result};

/// A table of the app's own, filled by sync.
///
/// A JSON-backed [`Table`](crate::Table) keeps every row as JSON text behind a view; a
/// raw table is a plain SQLite table you create (and migrate) yourself, with real column
/// types, constraints and indexes, and columns of your own that sync never touches.
/// livesync applies the service's rows to it with a *put* statement (an upsert) and a
/// *delete* statement, and records local writes in the upload queue through triggers it
/// creates on the table.
///
/// [`RawTable::new`] infers both statements from the table's columns (every column but
/// `id`, or only [`synced_columns`](Self::synced_columns)); [`RawTable::with_statements`]
/// takes your own. The table must have a text `id` primary key (or unique) column.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use livesync::{Database, RawTable, Schema};
///
/// let schema = Schema::default()
///     // `note` is the app's own: never synced, never uploaded.
///     .raw_table(RawTable::new("todos").synced_columns(["title", "done"]));
/// let db = Database::in_memory(schema).await?;
/// db.execute_batch(
///     "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, note TEXT)",
/// )
/// .await?;
/// // Creates the upload triggers (and takes in rows synced before the table existed).
/// db.prepare_raw_tables().await?;
///
/// db.execute("INSERT INTO todos(id, title, note) VALUES ('t1', 'milk', 'mine')", ()).await?;
/// let tx = db.get_next_crud_transaction().await?.expect("the insert is queued");
/// assert_eq!(tx.crud[0].data.as_ref().unwrap()["title"], "milk");
/// assert!(tx.crud[0].data.as_ref().unwrap().get("note").is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct RawTable {
    /// The `object_type` the service sends these rows as (and the `type` of uploaded
    /// entries).
    pub name: String,
    /// The SQLite table, when it is not named like [`name`](Self::name).
    pub table_name: Option<String>,
    /// Upserts one synced row; `None`: inferred from the table's columns.
    pub put: Option<PendingStatement>,
    /// Deletes one synced row; `None`: `DELETE FROM <table> WHERE id = ?`.
    pub delete: Option<PendingStatement>,
    /// Runs on [`Database::disconnect_and_clear`](crate::Database::disconnect_and_clear)
    /// (signing out), e.g. `DELETE FROM todos`. `None`: the table's rows stay.
    pub clear: Option<String>,
    /// Only these columns are synced and uploaded; the others are local to this device.
    /// `None`: every column but `id`.
    pub synced_columns: Option<Vec<String>>,
    /// Record local writes in the upload queue (triggers livesync creates on the table).
    pub capture_writes: bool,
    /// Inserts are uploaded; updates and deletes are refused.
    pub insert_only: bool,
    /// Record previous values in update and delete entries.
    pub track_previous_values: Option<TrackPreviousValues>,
    /// Skip recording updates that change no synced column.
    pub ignore_empty_update: bool,
}

impl RawTable {
    /// A raw table whose put and delete statements are inferred from the columns of the
    /// SQLite table `name` (see [`table_name`](Self::table_name) for another name).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            table_name: None,
            put: None,
            delete: None,
            clear: None,
            synced_columns: None,
            capture_writes: true,
            insert_only: false,
            track_previous_values: None,
            ignore_empty_update: false,
        }
    }

    /// A raw table applied with your own statements.
    ///
    /// ```
    /// use livesync::{PendingStatement, PendingStatementValue as V, RawTable};
    /// let lists = RawTable::with_statements(
    ///     "lists",
    ///     PendingStatement::new(
    ///         "INSERT INTO lists(id, name, extra) VALUES (?, ?, ?) \
    ///          ON CONFLICT(id) DO UPDATE SET name = excluded.name, extra = excluded.extra",
    ///         [V::Id, V::Column("name".into()), V::Rest],
    ///     ),
    ///     PendingStatement::new("DELETE FROM lists WHERE id = ?", [V::Id]),
    /// )
    /// .clear("DELETE FROM lists");
    /// assert!(livesync::Schema::default().raw_table(lists).validate().is_ok());
    /// ```
    pub fn with_statements(
        name: impl Into<String>,
        put: PendingStatement,
        delete: PendingStatement,
    ) -> Self {
        Self {
            put: Some(put),
            delete: Some(delete),
            ..Self::new(name)
        }
    }

    /// Names the SQLite table when it differs from the synced type's name.
    pub fn table_name(mut self, table: impl Into<String>) -> Self {
        self.table_name = Some(table.into());
        self
    }

    /// Syncs (and uploads) only these columns; the table's other columns stay local.
    pub fn synced_columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.synced_columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// The statement run when signing out ([`Database::disconnect_and_clear`](crate::Database::disconnect_and_clear)).
    pub fn clear(mut self, sql: impl Into<String>) -> Self {
        self.clear = Some(sql.into());
        self
    }

    /// Creates no upload triggers: local writes are not queued (write your own triggers,
    /// guarded by `WHEN NOT livesync_in_sync_apply()`, or keep the table read-only).
    pub fn without_write_capture(mut self) -> Self {
        self.capture_writes = false;
        self
    }

    /// Uploads inserts and refuses updates and deletes.
    pub fn insert_only(mut self) -> Self {
        self.insert_only = true;
        self
    }

    /// Records previous values in update and delete entries.
    pub fn track_previous_values(mut self, options: TrackPreviousValues) -> Self {
        self.track_previous_values = Some(options);
        self
    }

    /// Skips recording updates that change no synced column.
    pub fn ignore_empty_update(mut self) -> Self {
        self.ignore_empty_update = true;
        self
    }

    /// The SQLite table: [`table_name`](Self::table_name), or [`name`](Self::name).
    pub fn local_table(&self) -> &str {
        self.table_name.as_deref().unwrap_or(&self.name)
    }
}

/// An SQL statement the sync engine runs for one synced row of a [`RawTable`], with
/// what to bind to each of its parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct PendingStatement {
    /// The statement, with one `?` (or `?N`) parameter per entry of `params`.
    pub sql: String,
    /// What each parameter is bound to.
    pub params: Vec<PendingStatementValue>,
}

impl PendingStatement {
    /// A statement and the values of its parameters.
    ///
    /// ```
    /// use livesync::{PendingStatement, PendingStatementValue};
    /// let delete = PendingStatement::new("DELETE FROM todos WHERE id = ?", [PendingStatementValue::Id]);
    /// assert_eq!(delete.params.len(), 1);
    /// ```
    pub fn new(
        sql: impl Into<String>,
        params: impl IntoIterator<Item = PendingStatementValue>,
    ) -> Self {
        Self {
            sql: sql.into(),
            params: params.into_iter().collect(),
        }
    }
}

/// What a [`PendingStatement`] parameter is bound to.
///
/// Column values are bound with their JSON type: strings as `TEXT`, integers as
/// `INTEGER`, other numbers as `REAL`, booleans as 0/1, `null` or a missing key as `NULL`,
/// nested objects and arrays as their JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingStatementValue {
    /// The row's id.
    Id,
    /// The value of this key of the synced row.
    Column(String),
    /// A JSON object of every key of the synced row that no `Column` parameter names.
    Rest,
}

/// A raw table that passed validation.
#[derive(Debug, Clone)]
pub(crate) struct CheckedRawTable {
    /// The synced type.
    pub name: String,
    /// The SQLite table.
    pub table: Identifier,
    pub put: Option<PendingStatement>,
    pub delete: Option<PendingStatement>,
    pub clear: Option<String>,
    pub synced_columns: Option<Vec<Identifier>>,
    pub capture_writes: bool,
    pub insert_only: bool,
    pub previous_values: Option<TrackPreviousValues>,
    pub ignore_empty_update: bool,
}

impl CheckedRawTable {
    /// Whether `column` (of the SQLite table) is synced.
    pub(crate) fn syncs(&self, column: &str) -> bool {
        match &self.synced_columns {
            None => true,
            Some(columns) => columns
                .iter()
                .any(|c| c.as_str().eq_ignore_ascii_case(column)),
        }
    }
}

/// Checks the raw tables; `taken` holds the (lowercase) names the JSON tables use, as
/// types and as SQLite objects.
pub(super) fn check_raw_tables(
    raw_tables: &[RawTable],
    taken_types: &HashSet<String>,
    taken_objects: &HashSet<String>,
) -> Result<Vec<CheckedRawTable>> {
    let mut types = HashSet::new();
    let mut tables = HashSet::new();
    raw_tables
        .iter()
        .map(|raw| {
            let checked = check_raw_table(raw)?;
            let fail = |rule: String| Err(Error::schema(format!("raw table {:?}: {rule}", raw.name)));
            let folded = raw.name.to_ascii_lowercase();
            if taken_types.contains(&folded) || !types.insert(folded) {
                return fail("is defined twice (names are case-insensitive, and shared with the schema's tables)".into());
            }
            let table = checked.table.folded();
            if taken_objects.contains(&table) {
                return fail(format!(
                    "its SQLite table {:?} is the view of a table of the schema",
                    checked.table.as_str()
                ));
            }
            if !tables.insert(table) {
                return fail(format!(
                    "its SQLite table {:?} is used by another raw table",
                    checked.table.as_str()
                ));
            }
            Ok(checked)
        })
        .collect()
}

fn check_raw_table(raw: &RawTable) -> Result<CheckedRawTable> {
    let fail = |rule: &str| Err(Error::schema(format!("raw table {:?}: {rule}", raw.name)));
    if raw.name.is_empty() {
        return Err(Error::schema("a raw table has an empty name"));
    }
    let table = Identifier::parse_unreserved("table", raw.local_table())?;
    if raw.put.is_some() != raw.delete.is_some() {
        return fail(
            "give both a put and a delete statement (RawTable::with_statements), or neither to infer them",
        );
    }
    if let Some(put) = &raw.put
        && put.sql.trim().is_empty()
    {
        return fail("its put statement is empty");
    }
    if let Some(delete) = &raw.delete {
        if delete.sql.trim().is_empty() {
            return fail("its delete statement is empty");
        }
        if delete
            .params
            .iter()
            .any(|p| *p != PendingStatementValue::Id)
        {
            return fail(
                "its delete statement may only bind PendingStatementValue::Id (a deleted row has no data)",
            );
        }
    }
    if let Some(clear) = &raw.clear
        && clear.trim().is_empty()
    {
        return fail("its clear statement is empty");
    }
    let synced_columns = match &raw.synced_columns {
        None => None,
        Some(columns) => {
            let mut seen = HashSet::new();
            let mut checked = Vec::with_capacity(columns.len());
            for column in columns {
                let ident = Identifier::parse("column", column)?;
                if ident.folded() == "id" {
                    return fail("synced_columns lists \"id\"; the id is always synced, remove it");
                }
                if !seen.insert(ident.folded()) {
                    return fail(&format!("synced_columns lists {column:?} twice"));
                }
                checked.push(ident);
            }
            Some(checked)
        }
    };
    if raw.insert_only && raw.track_previous_values.is_some() {
        return fail(
            "insert_only cannot be combined with track_previous_values (an insert has no previous values)",
        );
    }
    Ok(CheckedRawTable {
        name: raw.name.clone(),
        table,
        put: raw.put.clone(),
        delete: raw.delete.clone(),
        clear: raw.clear.clone(),
        synced_columns,
        capture_writes: raw.capture_writes,
        insert_only: raw.insert_only,
        previous_values: raw.track_previous_values.clone(),
        ignore_empty_update: raw.ignore_empty_update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Schema, Table};

    fn message(schema: Schema) -> String {
        schema.validate().unwrap_err().to_string()
    }

    #[test]
    fn rejects_each_rule_with_a_message_naming_the_raw_table() {
        let json_table = || Table::new("todos", [Column::text("a")]);
        let m = message(Schema::new([json_table()]).raw_table(RawTable::new("todos")));
        assert!(m.contains("\"todos\"") && m.contains("twice"), "{m}");
        let m = message(
            Schema::new([json_table().view_name("shown")])
                .raw_table(RawTable::new("other").table_name("shown")),
        );
        assert!(m.contains("view"), "{m}");
        let m = message(
            Schema::default()
                .raw_table(RawTable::new("a").table_name("t"))
                .raw_table(RawTable::new("b").table_name("T")),
        );
        assert!(m.contains("another raw table"), "{m}");
        let m = message(Schema::default().raw_table(RawTable::new("x").synced_columns(["id"])));
        assert!(m.contains("\"id\""), "{m}");
        let m = message(Schema::default().raw_table(RawTable::new("x; DROP TABLE y")));
        assert!(m.contains("x; DROP TABLE y"), "{m}");
        let m = message(Schema::default().raw_table(RawTable::new("ps_x")));
        assert!(m.contains("ps_"), "{m}");
        let delete_with_column = RawTable::with_statements(
            "x",
            PendingStatement::new("INSERT INTO x(id) VALUES (?)", [PendingStatementValue::Id]),
            PendingStatement::new(
                "DELETE FROM x WHERE id = ? AND a = ?",
                [
                    PendingStatementValue::Id,
                    PendingStatementValue::Column("a".into()),
                ],
            ),
        );
        let m = message(Schema::default().raw_table(delete_with_column));
        assert!(m.contains("delete statement"), "{m}");
        let half = RawTable {
            put: Some(PendingStatement::new("SELECT 1", [])),
            ..RawTable::new("x")
        };
        assert!(message(Schema::default().raw_table(half)).contains("both"));
        let m = message(
            Schema::default().raw_table(
                RawTable::new("x")
                    .insert_only()
                    .track_previous_values(TrackPreviousValues::all()),
            ),
        );
        assert!(m.contains("insert_only"), "{m}");
    }
}
