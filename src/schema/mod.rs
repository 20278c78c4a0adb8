//! The app's table definitions: what the synced and local-only tables look like.
//!
//! A [`Schema`] lists [`Table`]s. Each table becomes a JSON-backed data table
//! (`ps_data__<name>`, or `ps_data_local__<name>` for local-only tables), a view with the
//! table's name (or its [`view_name`](Table::view_name) override) that app code reads and
//! writes, and `INSTEAD OF` triggers on that view which record every local write in the
//! upload queue. The layout follows the PowerSync model, so the JSON form
//! ([`Schema::from_json`]) is the PowerSync schema JSON: a schema exported from another
//! PowerSync SDK loads unchanged.
//!
//! ```
//! use livesync::{Column, Index, IndexColumn, Schema, Table, TrackPreviousValues};
//!
//! let schema = Schema::new([
//!     Table::new("todos", [Column::text("description"), Column::integer("done")])
//!         .index(Index::new("by_description", [IndexColumn::ascending("description")]))
//!         .track_previous_values(TrackPreviousValues::columns(["description"])),
//!     Table::new("drafts", [Column::text("body")]).local_only(),
//! ]);
//! assert!(schema.validate().is_ok());
//! ```
//!
//! Every row has a text `id`. The SQL function `uuid()`, available on every connection,
//! makes a random version-4 UUID for it (lowercase, as the other PowerSync SDKs write
//! them), also inside triggers and `DEFAULT` clauses:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
//! use livesync::{Column, Database, Schema, Table};
//! let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("title")])])).await?;
//! db.execute("INSERT INTO todos(id, title) VALUES (uuid(), 'milk')", ()).await?;
//! let id: String = db.query("SELECT id FROM todos").fetch_one().await?;
//! assert_eq!((id.len(), &id[14..15]), (36, "4"));
//! # Ok(()) }
//! ```

mod apply;
mod bulk;
mod identifier;
mod json;
pub(crate) mod names;
mod raw_table;
pub(crate) mod raw_triggers;
pub(crate) mod sql;
mod validate;

pub(crate) use apply::{apply_schema, client_id, data_table_view_names};
pub use identifier::Identifier;
pub(crate) use raw_table::CheckedRawTable;
pub use raw_table::{PendingStatement, PendingStatementValue, RawTable};
pub(crate) use validate::CheckedSchema;

/// The SQLite type a column's values are cast to when read through the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `TEXT`
    Text,
    /// `INTEGER` (also used for booleans, stored as 0/1)
    Integer,
    /// `REAL`
    Real,
}

impl ColumnType {
    /// The SQL spelling used in `CAST(... AS <type>)` and in the schema JSON.
    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Text => "TEXT",
            ColumnType::Integer => "INTEGER",
            ColumnType::Real => "REAL",
        }
    }
}

/// One column of a [`Table`]. The `id TEXT` primary key is implicit and never listed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Column {
    /// Column name.
    pub name: String,
    /// How values are cast when read.
    pub column_type: ColumnType,
}

impl Column {
    /// A column of the given type.
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        Self {
            name: name.into(),
            column_type,
        }
    }

    /// A `TEXT` column.
    pub fn text(name: impl Into<String>) -> Self {
        Self::new(name, ColumnType::Text)
    }

    /// An `INTEGER` column.
    pub fn integer(name: impl Into<String>) -> Self {
        Self::new(name, ColumnType::Integer)
    }

    /// A `REAL` column.
    pub fn real(name: impl Into<String>) -> Self {
        Self::new(name, ColumnType::Real)
    }
}

/// One column of an [`Index`], with its sort direction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct IndexColumn {
    /// The indexed column (must be a column of the table).
    pub column: String,
    /// `false` for a `DESC` index column.
    pub ascending: bool,
}

impl IndexColumn {
    /// An ascending index column.
    pub fn ascending(column: impl Into<String>) -> Self {
        Self {
            column: column.into(),
            ascending: true,
        }
    }

    /// A descending index column.
    pub fn descending(column: impl Into<String>) -> Self {
        Self {
            column: column.into(),
            ascending: false,
        }
    }
}

/// An index over some of a table's columns, created on the data table so that queries
/// through the view can use it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Index {
    /// Index name, unique within its table.
    pub name: String,
    /// Indexed columns in order.
    pub columns: Vec<IndexColumn>,
}

impl Index {
    /// An index named `name` over `columns`.
    pub fn new(name: impl Into<String>, columns: impl IntoIterator<Item = IndexColumn>) -> Self {
        Self {
            name: name.into(),
            columns: columns.into_iter().collect(),
        }
    }
}

/// Which previous values an `UPDATE` or `DELETE` records in its CRUD entry
/// ([`CrudEntry::previous_values`](crate::CrudEntry::previous_values)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct TrackPreviousValues {
    /// `None` for every column, or only these columns.
    pub columns: Option<Vec<String>>,
    /// For updates, record only the columns whose value changed.
    pub only_when_changed: bool,
}

impl TrackPreviousValues {
    /// Record the previous value of every column.
    pub fn all() -> Self {
        Self {
            columns: None,
            only_when_changed: false,
        }
    }

    /// Record the previous values of these columns only.
    pub fn columns<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        Self {
            columns: Some(columns.into_iter().map(Into::into).collect()),
            only_when_changed: false,
        }
    }

    /// For updates, record only the (tracked) columns whose value changed.
    pub fn only_when_changed(mut self) -> Self {
        self.only_when_changed = true;
        self
    }
}

/// A table of the app's schema. See the [module docs](self) for what it becomes in SQLite.
///
/// ```
/// use livesync::{Column, Table, TrackPreviousValues};
/// let todos = Table::new("todos", [Column::text("description"), Column::integer("done")])
///     .view_name("my_todos")
///     .track_metadata()
///     .track_previous_values(TrackPreviousValues::all().only_when_changed())
///     .ignore_empty_update();
/// assert_eq!(todos.public_name(), "my_todos");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Table {
    /// The table name: the `object_type` of synced rows and the name of uploaded entries.
    pub name: String,
    /// Name of the view app code uses, when it differs from `name`.
    pub view_name: Option<String>,
    /// Columns besides the implicit `id`.
    pub columns: Vec<Column>,
    /// Indexes on the data table.
    pub indexes: Vec<Index>,
    /// Never synced nor uploaded; stored in `ps_data_local__<name>`.
    pub local_only: bool,
    /// Writes are only queued for upload, never stored locally.
    pub insert_only: bool,
    /// Adds the hidden `_metadata` and `_deleted` view columns.
    pub track_metadata: bool,
    /// Record previous values in update and delete entries.
    pub track_previous_values: Option<TrackPreviousValues>,
    /// Skip recording updates that change nothing.
    pub ignore_empty_update: bool,
}

impl Table {
    /// A synced table with these columns.
    pub fn new(name: impl Into<String>, columns: impl IntoIterator<Item = Column>) -> Self {
        Self {
            name: name.into(),
            view_name: None,
            columns: columns.into_iter().collect(),
            indexes: Vec::new(),
            local_only: false,
            insert_only: false,
            track_metadata: false,
            track_previous_values: None,
            ignore_empty_update: false,
        }
    }

    /// Adds an index.
    pub fn index(mut self, index: Index) -> Self {
        self.indexes.push(index);
        self
    }

    /// Names the view differently from the table.
    pub fn view_name(mut self, view_name: impl Into<String>) -> Self {
        self.view_name = Some(view_name.into());
        self
    }

    /// Makes the table local-only: never synced nor uploaded.
    pub fn local_only(mut self) -> Self {
        self.local_only = true;
        self
    }

    /// Makes the table insert-only: inserts are queued for upload and never stored locally.
    pub fn insert_only(mut self) -> Self {
        self.insert_only = true;
        self
    }

    /// Adds the `_metadata` and `_deleted` view columns (see [`CrudEntry::metadata`](crate::CrudEntry::metadata)).
    pub fn track_metadata(mut self) -> Self {
        self.track_metadata = true;
        self
    }

    /// Records previous values in update and delete entries.
    pub fn track_previous_values(mut self, options: TrackPreviousValues) -> Self {
        self.track_previous_values = Some(options);
        self
    }

    /// Skips recording updates whose data would be empty.
    pub fn ignore_empty_update(mut self) -> Self {
        self.ignore_empty_update = true;
        self
    }

    /// The name app code uses in SQL: the view name override, or the table name.
    pub fn public_name(&self) -> &str {
        self.view_name.as_deref().unwrap_or(&self.name)
    }
}

/// The set of tables of an app. Cheap to clone; validated when a database opens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Schema {
    /// The JSON-backed tables.
    pub tables: Vec<Table>,
    /// Tables of the app's own that sync fills through statements ([`RawTable`]).
    pub raw_tables: Vec<RawTable>,
}

impl Schema {
    /// A schema with these tables.
    pub fn new(tables: impl IntoIterator<Item = Table>) -> Self {
        Self {
            tables: tables.into_iter().collect(),
            raw_tables: Vec::new(),
        }
    }

    /// Adds a [`RawTable`].
    ///
    /// ```
    /// use livesync::{Column, RawTable, Schema, Table};
    /// let schema = Schema::new([Table::new("lists", [Column::text("name")])])
    ///     .raw_table(RawTable::new("todos"));
    /// assert_eq!(schema.raw_tables[0].local_table(), "todos");
    /// ```
    pub fn raw_table(mut self, table: RawTable) -> Self {
        self.raw_tables.push(table);
        self
    }

    /// Checks every rule (identifiers, duplicates, option combinations) without touching
    /// a database. [`Database::open`](crate::Database::open) runs the same checks.
    ///
    /// ```
    /// use livesync::{Column, Error, Schema, Table};
    /// let bad = Schema::new([Table::new("todos; DROP TABLE x", [Column::text("a")])]);
    /// assert!(matches!(bad.validate(), Err(Error::InvalidIdentifier { .. })));
    /// ```
    pub fn validate(&self) -> crate::Result<()> {
        CheckedSchema::check(self).map(|_| ())
    }

    /// Parses the PowerSync schema JSON
    /// (`{"tables":[{"name":..,"columns":[{"name":..,"type":"TEXT"}],...}]}`).
    ///
    /// ```
    /// let schema = livesync::Schema::from_json(
    ///     r#"{"tables":[{"name":"todos","columns":[{"name":"done","type":"INTEGER"}],"indexes":[]}]}"#,
    /// ).unwrap();
    /// assert_eq!(schema.tables[0].columns[0].name, "done");
    /// ```
    pub fn from_json(json: &str) -> crate::Result<Self> {
        json::from_json(json)
    }

    /// Serialises to the PowerSync schema JSON.
    pub fn to_json(&self) -> String {
        json::to_json(self)
    }
}
