//! Typed queries: [`Query<T>`] runs SQL on a reader connection and decodes rows into `T`
//! ([`FromRow`]); [`Query::watch`] turns it into a [`LiveQuery`] stream that re-runs when
//! the tables it reads change.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
//! use livesync::{Column, Database, Row, Schema, Table};
//!
//! #[derive(Row, Debug)]
//! struct Todo {
//!     id: String,
//!     description: String,
//!     done: bool,
//! }
//!
//! let schema = Schema::new([Table::new("todos", [Column::text("description"), Column::integer("done")])]);
//! let db = Database::in_memory(schema).await?;
//! db.execute("INSERT INTO todos(id, description, done) VALUES ('1', 'milk', 0)", ()).await?;
//!
//! let open: Vec<Todo> = db
//!     .query("SELECT * FROM todos WHERE done = ?")
//!     .bind(false)
//!     .fetch_all()
//!     .await?;
//! assert_eq!(open[0].description, "milk");
//!
//! let count: i64 = db.query("SELECT count(*) FROM todos").fetch_one().await?;
//! assert_eq!(count, 1);
//! # Ok(()) }
//! ```

mod live;
pub(crate) mod live_options;
pub(crate) mod row;
mod shared_run;
#[cfg(any(feature = "dioxus", feature = "leptos", feature = "leptos08"))]
pub(crate) mod stream_gate;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Connection, ToSql};

pub use live::{LiveDiff, LiveQuery, QueryDiff};
pub use live_options::LiveQueryOptions;
pub use row::{ColumnValue, FromRow, RowValues, Serde};
pub(crate) use shared_run::SharedRuns;

use crate::{Database, Error, Result};

/// How long a live query waits after a run before it runs again, by default.
pub const DEFAULT_THROTTLE: Duration = Duration::from_millis(30);

#[derive(Clone, PartialEq)]
enum Param {
    Positional(Value),
    Named(String, Value),
}

/// A query returning rows of `T`, built with [`Database::query`].
///
/// Bind parameters with [`bind`](Self::bind) (`?` placeholders, in order) or
/// [`bind_named`](Self::bind_named) (`:name`), then run it once with `fetch_*` or keep it
/// running with [`watch`](Self::watch). Reads use the reader connections, so they run
/// alongside writes and see committed data only.
#[must_use = "A query does nothing until it is fetched or watched"]
pub struct Query<T> {
    db: Database,
    sql: Arc<str>,
    params: Vec<Param>,
    /// The first parameter that could not be converted; reported when the query runs.
    bind_error: Option<String>,
    throttle: Duration,
    triggered_by: Option<Vec<String>>,
    _row: PhantomData<fn() -> T>,
}

impl<T> Clone for Query<T> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            sql: Arc::clone(&self.sql),
            params: self.params.clone(),
            bind_error: self.bind_error.clone(),
            throttle: self.throttle,
            triggered_by: self.triggered_by.clone(),
            _row: PhantomData,
        }
    }
}

/// Two queries are equal when they would run the same SQL with the same parameters on
/// the same database, with the same live-query settings. Reactive UI code compares
/// queries this way to decide whether to subscribe again.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
/// let q = |n: i64| db.query::<i64>("SELECT ?").bind(n);
/// assert!(q(1) == q(1));
/// assert!(q(1) != q(2));
/// # Ok(()) }
/// ```
impl<T> PartialEq for Query<T> {
    fn eq(&self, other: &Self) -> bool {
        self.db == other.db
            && self.sql == other.sql
            && self.params == other.params
            && self.bind_error == other.bind_error
            && self.throttle == other.throttle
            && self.triggered_by == other.triggered_by
    }
}

impl<T> std::fmt::Debug for Query<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("sql", &self.sql)
            .field("throttle", &self.throttle)
            .field("triggered_by", &self.triggered_by)
            .finish_non_exhaustive()
    }
}

impl<T> Query<T> {
    /// A query of `sql` on `db` with no parameters bound (see [`Database::query`]).
    pub(crate) fn new(db: Database, sql: String) -> Self {
        Self {
            db,
            sql: sql.into(),
            params: Vec::new(),
            bind_error: None,
            throttle: DEFAULT_THROTTLE,
            triggered_by: None,
            _row: PhantomData,
        }
    }
}

fn owned_value(value: &dyn ToSql) -> std::result::Result<Value, String> {
    match value.to_sql().map_err(|e| e.to_string())? {
        ToSqlOutput::Borrowed(v) => Ok(owned(v)),
        ToSqlOutput::Owned(v) => Ok(v),
        _ => Err("this value kind cannot be bound to a livesync query".to_owned()),
    }
}

impl<T: FromRow> Query<T> {
    /// Binds the next `?` placeholder.
    pub fn bind(mut self, value: impl ToSql) -> Self {
        match owned_value(&value) {
            Ok(value) => self.params.push(Param::Positional(value)),
            Err(e) => {
                self.bind_error.get_or_insert(e);
            }
        }
        self
    }

    /// Binds a named placeholder (`:name`, `@name` or `$name`; a bare `name` means `:name`).
    pub fn bind_named(mut self, name: &str, value: impl ToSql) -> Self {
        let name = if name.starts_with([':', '@', '$']) {
            name.to_owned()
        } else {
            format!(":{name}")
        };
        match owned_value(&value) {
            Ok(value) => self.params.push(Param::Named(name, value)),
            Err(e) => {
                self.bind_error.get_or_insert(e);
            }
        }
        self
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Every row.
    pub async fn fetch_all(&self) -> Result<Vec<T>> {
        let query = self.clone();
        self.db
            .read(move |conn| query.rows_on(conn))
            .await
            .map_err(|e| e.in_query(&self.sql))
    }

    /// The first row, or `None`.
    pub async fn fetch_optional(&self) -> Result<Option<T>> {
        let query = self.clone();
        self.db
            .read(move |conn| query.first_on(conn))
            .await
            .map_err(|e| e.in_query(&self.sql))
    }

    /// The first row; [`Error::NotFound`] when there is none.
    pub async fn fetch_one(&self) -> Result<T> {
        self.fetch_optional().await?.ok_or_else(|| Error::NotFound {
            sql: Some(self.sql.to_string()),
        })
    }

    /// The first column of the first row, whatever `T` is: handy for `count(*)` and the
    /// like. [`Error::NotFound`] when there is no row.
    pub async fn fetch_scalar<V: ColumnValue + Send + 'static>(&self) -> Result<V> {
        let query = self.clone();
        let sql = self.sql.to_string();
        self.db
            .read(move |conn| {
                let mut stmt = query.prepare(conn)?;
                row::require_positions(&column_names(&stmt), &[V::EXPECTED])?;
                let mut rows = stmt.raw_query();
                match rows.next()? {
                    Some(row) => row::decode_column::<V, _>(row, 0, "#0"),
                    None => Err(Error::NotFound { sql: Some(sql) }),
                }
            })
            .await
            .map_err(|e| e.in_query(&self.sql))
    }

    /// The minimum time between two runs of the live query (default 30 ms; zero re-runs
    /// after every commit). The last change of a burst is always followed by a run.
    pub fn throttle(mut self, throttle: Duration) -> Self {
        self.throttle = throttle;
        self
    }

    /// Re-run the live query when these tables change, instead of the tables found in
    /// the query plan.
    pub fn triggered_by<I, S>(mut self, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.triggered_by = Some(tables.into_iter().map(Into::into).collect());
        self
    }

    /// A [`LiveQuery`]: the current result first, then a new result whenever a table the
    /// query reads changes and the result differs.
    pub fn watch(self) -> LiveQuery<T> {
        LiveQuery::new(self)
    }

    /// Like [`watch`](Self::watch), but each item also says which rows were added,
    /// removed or updated since the previous one, matched by the query's `id` column, so
    /// a UI can touch only what changed (PowerSync's "differential" watched queries).
    /// [`watch_diff_by`](Self::watch_diff_by) matches by another column. Rows sharing a
    /// key (a join, say) are matched exactly, as a multiset: see [`QueryDiff`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use futures::StreamExt;
    /// use livesync::{Column, Database, Schema, Table};
    /// let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("title")])])).await?;
    /// db.execute("INSERT INTO todos(id, title) VALUES ('1', 'milk')", ()).await?;
    /// let mut todos = db.query::<(String, String)>("SELECT id, title FROM todos").watch_diff();
    /// assert_eq!(todos.next().await.unwrap()?.added.len(), 1);
    /// db.execute("UPDATE todos SET title = 'oat milk'", ()).await?;
    /// let change = todos.next().await.unwrap()?;
    /// assert_eq!(change.updated, [("1".to_string(), "oat milk".to_string())]);
    /// assert!(change.added.is_empty() && change.removed.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn watch_diff(self) -> LiveDiff<T>
    where
        T: Clone,
    {
        LiveDiff::new(self, "id".to_owned())
    }

    /// Like [`watch_diff`](Self::watch_diff), with rows matched by `key_column` (a
    /// column of the result, named as the query returns it; case-insensitive) instead
    /// of `id`. Keys compare as SQLite values, type included: the text `'1'` and the
    /// integer `1` are different keys. A query that does not return the column yields an
    /// [`Error::Decode`] item naming it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use futures::StreamExt;
    /// use livesync::{Column, Database, Schema, Table};
    /// let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("list")])])).await?;
    /// db.execute("INSERT INTO todos(id, list) VALUES ('1', 'home'), ('2', 'work')", ()).await?;
    /// let mut per_list = db
    ///     .query::<(String, i64)>("SELECT list, count(*) FROM todos GROUP BY list")
    ///     .watch_diff_by("list");
    /// assert_eq!(per_list.next().await.unwrap()?.added.len(), 2);
    /// db.execute("INSERT INTO todos(id, list) VALUES ('3', 'home')", ()).await?;
    /// let change = per_list.next().await.unwrap()?;
    /// assert_eq!(change.updated, [("home".to_string(), 2)]);
    /// assert!(change.added.is_empty() && change.removed.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn watch_diff_by(self, key_column: impl Into<String>) -> LiveDiff<T>
    where
        T: Clone,
    {
        LiveDiff::new(self, key_column.into())
    }

    /// Prepares the statement (through the connection's statement cache) and binds the
    /// parameters: one value per placeholder, no more, no less (SQLite itself would bind
    /// NULL to a forgotten one).
    fn prepare<'c>(&self, conn: &'c Connection) -> Result<rusqlite::CachedStatement<'c>> {
        let mut stmt = self.compile(|sql| conn.prepare_cached(sql))?;
        self.bind_to(&mut stmt)?;
        Ok(stmt)
    }

    /// Like [`prepare`](Self::prepare), but always compiles the statement (never takes it
    /// from the cache), so that a recording authorizer sees what it reads.
    fn prepare_fresh<'c>(&self, conn: &'c Connection) -> Result<rusqlite::Statement<'c>> {
        let mut stmt = self.compile(|sql| conn.prepare(sql))?;
        self.bind_to(&mut stmt)?;
        Ok(stmt)
    }

    /// Compiles the SQL with `compile` unless a parameter could not be converted, naming
    /// the SQL in a compile error.
    fn compile<S>(&self, compile: impl FnOnce(&str) -> rusqlite::Result<S>) -> Result<S> {
        if let Some(e) = &self.bind_error {
            return Err(Error::InvalidParameter(e.clone()));
        }
        compile(&self.sql).map_err(|e| Error::sqlite_with_sql(e, self.sql.to_string()))
    }

    /// Binds the parameters to `stmt`, checking that every placeholder gets one value.
    fn bind_to(&self, stmt: &mut rusqlite::Statement<'_>) -> Result<()> {
        let expected = stmt.parameter_count();
        let given_positional = self
            .params
            .iter()
            .filter(|p| matches!(p, Param::Positional(_)))
            .count();
        // `bound[i]`: whether placeholder `i + 1` has a value.
        let mut bound = vec![false; expected];
        let mut position = 0;
        for param in &self.params {
            let index = match param {
                Param::Positional(_) => {
                    position += 1;
                    if position > expected {
                        return Err(Error::InvalidParameter(format!(
                            "{given_positional} values bound to {}, but it has {expected} placeholder{}: bind one value per placeholder",
                            quoted_sql(&self.sql),
                            plural(expected)
                        )));
                    }
                    position
                }
                Param::Named(name, _) => stmt.parameter_index(name)?.ok_or_else(|| {
                    Error::InvalidParameter(format!(
                        "{} has no parameter named {name}",
                        quoted_sql(&self.sql)
                    ))
                })?,
            };
            let (Param::Positional(value) | Param::Named(_, value)) = param;
            stmt.raw_bind_parameter(index, value)?;
            bound[index - 1] = true;
        }
        if let Some(missing) = bound.iter().position(|b| !b) {
            let index = missing + 1;
            let placeholder = match stmt.parameter_name(index) {
                Some(name) => name.to_owned(),
                None => format!("?{index}"),
            };
            let named = placeholder.starts_with([':', '@', '$']);
            let hint = if named {
                format!("bind it with bind_named(\"{}\", ...)", &placeholder[1..])
            } else {
                "bind one value per placeholder, in order".to_owned()
            };
            return Err(Error::InvalidParameter(format!(
                "{} expects {expected} value{}, but {} {} bound; placeholder {placeholder} has no value: {hint}",
                quoted_sql(&self.sql),
                plural(expected),
                self.params.len(),
                if self.params.len() == 1 {
                    "was"
                } else {
                    "were"
                },
            )));
        }
        Ok(())
    }

    fn rows_on(&self, conn: &Connection) -> Result<Vec<T>> {
        let mut stmt = self.prepare(conn)?;
        let columns = T::resolve(&column_names(&stmt))?;
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(T::from_row(row, &columns)?);
        }
        Ok(out)
    }

    fn first_on(&self, conn: &Connection) -> Result<Option<T>> {
        let mut stmt = self.prepare(conn)?;
        let columns = T::resolve(&column_names(&stmt))?;
        let mut rows = stmt.raw_query();
        match rows.next()? {
            Some(row) => Ok(Some(T::from_row(row, &columns)?)),
            None => Ok(None),
        }
    }

    /// The result as owned values (what live queries compare), with the column names.
    fn raw_on(&self, conn: &Connection) -> Result<RawRows> {
        let mut stmt = self.prepare(conn)?;
        self.raw_from(&mut stmt)
    }

    fn raw_from(&self, stmt: &mut rusqlite::Statement<'_>) -> Result<RawRows> {
        let names = column_names(stmt);
        let width = names.len();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(width);
            for index in 0..width {
                values.push(owned(row.get_ref(index)?));
            }
            out.push(values);
        }
        Ok((names, out))
    }
}

/// A result as raw values, with its column names.
type RawRows = (Vec<String>, Vec<Vec<Value>>);

/// An owned copy of a borrowed SQLite value.
pub(crate) fn owned(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// The SQL of a query, for error messages.
fn quoted_sql(sql: &str) -> String {
    format!("the query `{sql}`")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn column_names(stmt: &rusqlite::Statement<'_>) -> Vec<String> {
    stmt.column_names().map(str::to_owned).collect()
}
