//! Turning result rows into Rust values: [`FromRow`] for whole rows and [`ColumnValue`]
//! for single columns.
//!
//! Columns are looked up by name once per statement ([`FromRow::resolve`]), then every
//! row is decoded by index, so named decoding costs no more than positional decoding.

use rusqlite::types::ValueRef;

use crate::schema::ColumnType;
use crate::{Error, Result};

/// A value decodable from one SQLite column.
///
/// Implemented for `String`, the integer types, `f64`/`f32`, `bool` (0/1),
/// `Vec<u8>`, `serde_json::Value` (JSON text) and `Option<T>` of those (NULL as `None`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read from an SQLite column",
    note = "use String, an integer, f64, bool, Vec<u8>, serde_json::Value or Option of those; for any serde type mark the field #[row(json)]"
)]
pub trait ColumnValue: Sized {
    /// The schema column type this Rust type maps to (for `#[row(table = "...")]`).
    const COLUMN_TYPE: ColumnType;

    /// What the type expects, for error messages ("an integer", "text", ...).
    const EXPECTED: &'static str;

    /// Decodes the value, or explains why it does not fit (`None`).
    fn decode(value: ValueRef<'_>) -> Option<Self>;
}

/// Where a row's values come from: a live SQLite row, or values a live query kept to
/// compare results.
pub trait RowValues {
    /// The value of column `index`.
    fn value(&self, index: usize) -> Result<ValueRef<'_>>;

    /// The SQLite row itself, when the values come straight from one.
    fn sqlite_row(&self) -> Option<&rusqlite::Row<'_>> {
        None
    }
}

impl RowValues for rusqlite::Row<'_> {
    #[inline]
    fn value(&self, index: usize) -> Result<ValueRef<'_>> {
        self.get_ref(index).map_err(|e| match e {
            rusqlite::Error::InvalidColumnIndex(_) => {
                too_few_columns(index, self.as_ref().column_count())
            }
            other => other.into(),
        })
    }

    fn sqlite_row(&self) -> Option<&rusqlite::Row<'_>> {
        Some(self)
    }
}

impl RowValues for [rusqlite::types::Value] {
    fn value(&self, index: usize) -> Result<ValueRef<'_>> {
        self.get(index)
            .map(ValueRef::from)
            .ok_or_else(|| too_few_columns(index, self.len()))
    }
}

#[cold]
fn too_few_columns(index: usize, count: usize) -> Error {
    Error::Decode {
        column: format!("#{index}"),
        message: format!(
            "the query returns only {count} column{}, so there is no column #{index} (positions count from 0)",
            if count == 1 { "" } else { "s" }
        ),
        sql: None,
    }
}

/// Checks that a statement returning `names` has the `expected.len()` columns a
/// positional row type (a tuple or a single value) reads, naming the first missing
/// position and the type it would be decoded as.
pub(crate) fn require_positions(names: &[String], expected: &[&str]) -> Result<()> {
    let Some(missing) = expected.get(names.len()) else {
        return Ok(());
    };
    let position = names.len();
    let returned = match names {
        [] => "no column".to_owned(),
        [one] => format!("only 1 column ({one:?})"),
        many => format!("only {} columns ({})", many.len(), list(many)),
    };
    let message = if expected.len() == 1 {
        format!(
            "the query returns {returned}, but one column is decoded as {missing}: use a query that returns a value (a SELECT, or RETURNING), or execute it instead"
        )
    } else {
        format!(
            "the row type reads {} columns by position, but the query returns {returned}; column #{position} would be decoded as {missing}: select {} more column{} or use a shorter tuple",
            expected.len(),
            expected.len() - position,
            if expected.len() - position == 1 {
                ""
            } else {
                "s"
            },
        )
    };
    Err(Error::Decode {
        column: format!("#{position}"),
        message,
        sql: None,
    })
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decodes column `index` of a positional row type, naming the column in the error.
#[inline]
fn decode_position<T: ColumnValue, R: RowValues + ?Sized>(
    row: &R,
    index: usize,
    names: &[String],
) -> Result<T> {
    let value = row.value(index)?;
    match T::decode(value) {
        Some(decoded) => Ok(decoded),
        None => Err(positional_mismatch(index, names, T::EXPECTED, value)),
    }
}

#[cold]
#[inline(never)]
fn positional_mismatch(
    index: usize,
    names: &[String],
    expected: &str,
    found: ValueRef<'_>,
) -> Error {
    let mut error = mismatch(&format!("#{index}"), expected, found);
    if let (Error::Decode { message, .. }, Some(name)) = (&mut error, names.get(index)) {
        message.push_str(&format!(
            " (column #{index} of {}, named {name:?})",
            names.len()
        ));
    }
    error
}

/// The Rust value of a row: `#[derive(Row)]` structs (columns by name), tuples and single
/// [`ColumnValue`]s (columns by position), and [`Serde`]-wrapped `Deserialize` types.
pub trait FromRow: Sized + Send + 'static {
    /// Whatever `resolve` learned about the statement's columns (e.g. their indexes).
    type Columns: Send + Sync + 'static;

    /// Looks the needed columns up among the statement's `names`, once per statement.
    fn resolve(names: &[String]) -> Result<Self::Columns>;

    /// Decodes one row.
    fn from_row<R: RowValues + ?Sized>(row: &R, columns: &Self::Columns) -> Result<Self>;
}

/// The index of `column` among `names` (case-insensitive, as in SQL), for derived
/// [`FromRow`] impls. `None` when the statement has no such column.
#[doc(hidden)]
pub fn column_index(names: &[String], column: &str) -> Option<usize> {
    names.iter().position(|n| n.eq_ignore_ascii_case(column))
}

/// Fails with an error naming the missing column, for derived [`FromRow`] impls.
#[doc(hidden)]
pub fn require_column(names: &[String], column: &str) -> Result<usize> {
    column_index(names, column).ok_or_else(|| Error::Decode {
        column: column.to_owned(),
        message: format!(
            "the query returns no column named {column:?} (it returns {names:?}); select it or add #[row(default)]"
        ),
        sql: None,
    })
}

/// The error for a required column that `resolve` did not find (never expected: resolve
/// fails first), for derived [`FromRow`] impls.
#[doc(hidden)]
pub fn missing_column(column: &str) -> Error {
    Error::Decode {
        column: column.to_owned(),
        message: "the column was not resolved for this statement".to_owned(),
        sql: None,
    }
}

/// Decodes column `index` as `T`, for derived [`FromRow`] impls and tuples.
#[doc(hidden)]
#[inline]
pub fn decode_column<T: ColumnValue, R: RowValues + ?Sized>(
    row: &R,
    index: usize,
    column: &str,
) -> Result<T> {
    let value = row.value(index)?;
    T::decode(value).ok_or_else(|| mismatch(column, T::EXPECTED, value))
}

/// Decodes JSON text in column `index`, for `#[row(json)]` fields.
#[doc(hidden)]
pub fn decode_json_column<T: serde::de::DeserializeOwned, R: RowValues + ?Sized>(
    row: &R,
    index: usize,
    column: &str,
) -> Result<T> {
    let value = row.value(index)?;
    let text = match value {
        ValueRef::Text(text) => text,
        ValueRef::Null => b"null",
        other => return Err(mismatch(column, "JSON text", other)),
    };
    serde_json::from_slice(text).map_err(|e| Error::Decode {
        column: column.to_owned(),
        message: format!("invalid JSON for this field: {e}"),
        sql: None,
    })
}

#[cold]
#[inline(never)]
fn mismatch(column: &str, expected: &str, found: ValueRef<'_>) -> Error {
    let found = match found {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(i) => format!("the integer {i}"),
        ValueRef::Real(r) => format!("the real {r}"),
        ValueRef::Text(t) if t.len() <= 40 => format!("the text {:?}", String::from_utf8_lossy(t)),
        ValueRef::Text(t) => format!("a text of {} bytes", t.len()),
        ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
    };
    Error::Decode {
        column: column.to_owned(),
        message: format!("expected {expected}, found {found}"),
        sql: None,
    }
}

impl ColumnValue for String {
    const COLUMN_TYPE: ColumnType = ColumnType::Text;
    const EXPECTED: &'static str = "text";
    #[inline]
    fn decode(value: ValueRef<'_>) -> Option<Self> {
        match value {
            ValueRef::Text(t) => String::from_utf8(t.to_vec()).ok(),
            _ => None,
        }
    }
}

macro_rules! integer_column {
    ($($t:ty),*) => {$(
        impl ColumnValue for $t {
            const COLUMN_TYPE: ColumnType = ColumnType::Integer;
            const EXPECTED: &'static str = concat!("an integer that fits ", stringify!($t));
            #[inline]
    fn decode(value: ValueRef<'_>) -> Option<Self> {
                match value {
                    ValueRef::Integer(i) => <$t>::try_from(i).ok(),
                    _ => None,
                }
            }
        }
    )*};
}
integer_column!(i8, i16, i32, i64, u8, u16, u32, u64, isize, usize);

impl ColumnValue for f64 {
    const COLUMN_TYPE: ColumnType = ColumnType::Real;
    const EXPECTED: &'static str = "a number";
    #[inline]
    fn decode(value: ValueRef<'_>) -> Option<Self> {
        match value {
            ValueRef::Real(r) => Some(r),
            // SQLite stores whole REAL values as integers in some cases.
            ValueRef::Integer(i) => Some(i as f64),
            _ => None,
        }
    }
}

impl ColumnValue for f32 {
    const COLUMN_TYPE: ColumnType = ColumnType::Real;
    const EXPECTED: &'static str = "a number";
    #[inline]
    fn decode(value: ValueRef<'_>) -> Option<Self> {
        f64::decode(value).map(|v| v as f32)
    }
}

impl ColumnValue for bool {
    const COLUMN_TYPE: ColumnType = ColumnType::Integer;
    const EXPECTED: &'static str = "0 or 1";
    #[inline]
    fn decode(value: ValueRef<'_>) -> Option<Self> {
        match value {
            ValueRef::Integer(0) => Some(false),
            ValueRef::Integer(1) => Some(true),
            _ => None,
        }
    }
}

impl ColumnValue for Vec<u8> {
    const COLUMN_TYPE: ColumnType = ColumnType::Text;
    const EXPECTED: &'static str = "a blob";
    #[inline]
    fn decode(value: ValueRef<'_>) -> Option<Self> {
        match value {
            ValueRef::Blob(b) | ValueRef::Text(b) => Some(b.to_vec()),
            _ => None,
        }
    }
}

impl ColumnValue for serde_json::Value {
    const COLUMN_TYPE: ColumnType = ColumnType::Text;
    const EXPECTED: &'static str = "JSON text";
    #[inline]
    fn decode(value: ValueRef<'_>) -> Option<Self> {
        match value {
            ValueRef::Text(t) => serde_json::from_slice(t).ok(),
            ValueRef::Null => Some(serde_json::Value::Null),
            ValueRef::Integer(i) => Some(i.into()),
            ValueRef::Real(r) => serde_json::Number::from_f64(r).map(Into::into),
            ValueRef::Blob(_) => None,
        }
    }
}

impl<T: ColumnValue> ColumnValue for Option<T> {
    const COLUMN_TYPE: ColumnType = T::COLUMN_TYPE;
    const EXPECTED: &'static str = T::EXPECTED;
    #[inline]
    fn decode(value: ValueRef<'_>) -> Option<Self> {
        match value {
            ValueRef::Null => Some(None),
            other => T::decode(other).map(Some),
        }
    }
}

/// Single values are rows of one column, read by position.
macro_rules! scalar_row {
    ($($t:ty),*) => {$(
        impl FromRow for $t {
            type Columns = Vec<String>;
            fn resolve(names: &[String]) -> Result<Vec<String>> {
                require_positions(names, &[<$t as ColumnValue>::EXPECTED])?;
                Ok(names.to_vec())
            }
            fn from_row<R: RowValues + ?Sized>(row: &R, names: &Vec<String>) -> Result<Self> {
                decode_position(row, 0, names)
            }
        }
        impl FromRow for Option<$t> {
            type Columns = Vec<String>;
            fn resolve(names: &[String]) -> Result<Vec<String>> {
                require_positions(names, &[<$t as ColumnValue>::EXPECTED])?;
                Ok(names.to_vec())
            }
            fn from_row<R: RowValues + ?Sized>(row: &R, names: &Vec<String>) -> Result<Self> {
                decode_position(row, 0, names)
            }
        }
    )*};
}
scalar_row!(
    String,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    isize,
    usize,
    f32,
    f64,
    bool,
    Vec<u8>,
    serde_json::Value
);

/// Tuples are rows read by position: `(A, B)` takes columns 0 and 1.
macro_rules! tuple_row {
    ($($name:ident $index:tt),+) => {
        impl<$($name: ColumnValue + Send + 'static),+> FromRow for ($($name,)+) {
            type Columns = Vec<String>;
            fn resolve(names: &[String]) -> Result<Vec<String>> {
                require_positions(names, &[$($name::EXPECTED),+])?;
                Ok(names.to_vec())
            }
            fn from_row<R: RowValues + ?Sized>(row: &R, names: &Vec<String>) -> Result<Self> {
                Ok(($(decode_position::<$name, R>(row, $index, names)?,)+))
            }
        }
    };
}
tuple_row!(A 0);
tuple_row!(A 0, B 1);
tuple_row!(A 0, B 1, C 2);
tuple_row!(A 0, B 1, C 2, D 3);
tuple_row!(A 0, B 1, C 2, D 3, E 4);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// Decodes any `serde::Deserialize` type through `serde_rusqlite`, columns by name, for
/// code that does not want `#[derive(Row)]`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// #[derive(serde::Deserialize)]
/// struct Todo { id: String, done: i64 }
/// let db = livesync::Database::in_memory(Default::default()).await?;
/// let todos = db
///     .query::<livesync::Serde<Todo>>("SELECT 'a' AS id, 1 AS done")
///     .fetch_all()
///     .await?;
/// assert_eq!(todos[0].0.id, "a");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Serde<T>(pub T);

impl<T> Serde<T> {
    /// The decoded value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: serde::de::DeserializeOwned + Send + 'static> FromRow for Serde<T> {
    type Columns = Vec<String>;
    fn resolve(names: &[String]) -> Result<Vec<String>> {
        Ok(names.to_vec())
    }
    fn from_row<R: RowValues + ?Sized>(row: &R, columns: &Vec<String>) -> Result<Self> {
        let failed = |message: String| Error::Decode {
            column: String::new(),
            message,
            sql: None,
        };
        if let Some(row) = row.sqlite_row() {
            return serde_rusqlite::from_row_with_columns::<T>(row, columns)
                .map(Serde)
                .map_err(|e| failed(e.to_string()));
        }
        // Kept values (live queries) become a JSON object that serde reads by field name.
        let mut object = serde_json::Map::with_capacity(columns.len());
        for (index, name) in columns.iter().enumerate() {
            let value = match row.value(index)? {
                ValueRef::Null => serde_json::Value::Null,
                ValueRef::Integer(i) => i.into(),
                ValueRef::Real(r) => {
                    serde_json::Number::from_f64(r).map_or(serde_json::Value::Null, Into::into)
                }
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                ValueRef::Blob(b) => b.to_vec().into(),
            };
            object.insert(name.clone(), value);
        }
        serde_json::from_value(serde_json::Value::Object(object))
            .map(Serde)
            .map_err(|e| failed(e.to_string()))
    }
}
