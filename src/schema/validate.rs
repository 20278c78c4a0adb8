//! Schema validation: turns a user [`Schema`] into a [`CheckedSchema`] whose names are all
//! [`Identifier`]s, or explains which rule a table, column or index breaks.

use std::collections::HashSet;

use super::{ColumnType, Identifier, Schema, Table};
use crate::{Error, Result};

/// The CRUD triggers pass 3 arguments per column (plus 4) to one SQL function, and
/// SQLite allows at most 1000 function arguments.
pub(super) const MAX_COLUMNS: usize = 332;

/// A schema that passed every rule; the only input SQL generation accepts.
#[derive(Debug, Clone)]
pub(crate) struct CheckedSchema {
    pub tables: Vec<CheckedTable>,
    pub raw_tables: Vec<super::CheckedRawTable>,
}

#[derive(Debug, Clone)]
pub(crate) struct CheckedTable {
    pub name: Identifier,
    pub view: Identifier,
    pub columns: Vec<(Identifier, ColumnType)>,
    pub indexes: Vec<CheckedIndex>,
    pub local_only: bool,
    pub insert_only: bool,
    pub track_metadata: bool,
    pub previous_values: Option<CheckedPreviousValues>,
    pub ignore_empty_update: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct CheckedIndex {
    pub name: Identifier,
    /// Column, its type, ascending.
    pub columns: Vec<(Identifier, ColumnType, bool)>,
}

#[derive(Debug, Clone)]
pub(crate) struct CheckedPreviousValues {
    /// `None` means every column.
    pub columns: Option<Vec<Identifier>>,
    pub only_when_changed: bool,
}

impl CheckedSchema {
    pub(crate) fn check(schema: &Schema) -> Result<Self> {
        let mut table_names = HashSet::new();
        let mut public_names = HashSet::new();
        let mut tables = Vec::with_capacity(schema.tables.len());
        for table in &schema.tables {
            let checked = check_table(table)?;
            if !table_names.insert(checked.name.folded()) {
                return Err(Error::schema(format!(
                    "table {:?} is defined twice (names are case-insensitive)",
                    table.name
                )));
            }
            tables.push(checked);
        }
        // Generated names (`ps_data__<table>`, `ps_data__<table>__<index>`) share one
        // namespace and `__` may occur inside names, so check them for clashes too.
        let mut generated = HashSet::new();
        for table in &tables {
            let names = std::iter::once(table.data_table()).chain(
                table
                    .indexes
                    .iter()
                    .map(|i| format!("{}__{}", table.data_table(), i.name)),
            );
            for name in names {
                if !generated.insert(name.to_ascii_lowercase()) {
                    return Err(Error::schema(format!(
                        "table {:?}: the generated SQLite name {name:?} clashes with another table's or index's; rename the index or the table",
                        table.name.as_str()
                    )));
                }
            }
        }
        for table in &tables {
            if !public_names.insert(table.view.folded()) {
                return Err(Error::schema(format!(
                    "the view name {:?} of table {:?} is already used by another table or view",
                    table.view.as_str(),
                    table.name.as_str()
                )));
            }
        }
        let raw_tables =
            super::raw_table::check_raw_tables(&schema.raw_tables, &table_names, &public_names)?;
        Ok(Self { tables, raw_tables })
    }
}

fn check_table(table: &Table) -> Result<CheckedTable> {
    let name = Identifier::parse_unreserved("table", &table.name)?;
    let view = match &table.view_name {
        Some(view) => Identifier::parse_unreserved("view", view)?,
        None => name.clone(),
    };
    let fail = |rule: String| Err(Error::schema(format!("table {:?}: {rule}", table.name)));

    if table.columns.len() > MAX_COLUMNS {
        return fail(format!(
            "has {} columns, more than the limit of {MAX_COLUMNS}",
            table.columns.len()
        ));
    }
    let mut seen = HashSet::new();
    let mut columns = Vec::with_capacity(table.columns.len());
    for column in &table.columns {
        let ident = Identifier::parse("column", &column.name)?;
        let folded = ident.folded();
        if folded == "id" {
            return fail("declares a column named \"id\"; id TEXT is implicit, remove it".into());
        }
        if table.track_metadata && (folded == "_metadata" || folded == "_deleted") {
            return fail(format!(
                "column {:?} clashes with the hidden column added by track_metadata",
                column.name
            ));
        }
        if !seen.insert(folded) {
            return fail(format!("column {:?} is declared twice", column.name));
        }
        columns.push((ident, column.column_type));
    }
    let find_column = |name: &str, what: &str| {
        columns
            .iter()
            .find(|(c, _)| c.as_str().eq_ignore_ascii_case(name))
            .cloned()
            .ok_or_else(|| {
                Error::schema(format!(
                    "table {:?}: {what} names column {name:?}, which the table does not have",
                    table.name
                ))
            })
    };

    let mut index_names = HashSet::new();
    let mut indexes = Vec::with_capacity(table.indexes.len());
    for index in &table.indexes {
        let index_name = Identifier::parse("index", &index.name)?;
        if !index_names.insert(index_name.folded()) {
            return fail(format!("index {:?} is declared twice", index.name));
        }
        if index.columns.is_empty() {
            return fail(format!("index {:?} has no columns", index.name));
        }
        let mut index_columns = Vec::with_capacity(index.columns.len());
        for column in &index.columns {
            let (ident, column_type) =
                find_column(&column.column, &format!("index {:?}", index.name))?;
            index_columns.push((ident, column_type, column.ascending));
        }
        indexes.push(CheckedIndex {
            name: index_name,
            columns: index_columns,
        });
    }

    if table.local_only && table.track_metadata {
        return fail("local_only cannot be combined with track_metadata".into());
    }
    if table.local_only && table.track_previous_values.is_some() {
        return fail("local_only cannot be combined with track_previous_values".into());
    }
    let previous_values = match &table.track_previous_values {
        None => None,
        Some(options) => Some(CheckedPreviousValues {
            columns: match &options.columns {
                None => None,
                Some(names) => Some(
                    names
                        .iter()
                        .map(|n| find_column(n, "track_previous_values").map(|(c, _)| c))
                        .collect::<Result<_>>()?,
                ),
            },
            only_when_changed: options.only_when_changed,
        }),
    };

    Ok(CheckedTable {
        name,
        view,
        columns,
        indexes,
        local_only: table.local_only,
        // Insert-only is meaningless for a table that is never uploaded.
        insert_only: table.insert_only && !table.local_only,
        track_metadata: table.track_metadata,
        previous_values,
        ignore_empty_update: table.ignore_empty_update,
    })
}

impl CheckedTable {
    /// `ps_data__<name>` or `ps_data_local__<name>`.
    pub(crate) fn data_table(&self) -> String {
        data_table_name(self.name.as_str(), self.local_only)
    }
}

pub(crate) fn data_table_name(table: &str, local_only: bool) -> String {
    super::names::data_table(table, local_only)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Index, IndexColumn, TrackPreviousValues};

    fn message(schema: Schema) -> String {
        CheckedSchema::check(&schema).unwrap_err().to_string()
    }

    #[test]
    fn rejects_each_rule_with_a_message_naming_the_culprit() {
        let m = message(Schema::new([Table::new("t", [Column::text("id")])]));
        assert!(m.contains("\"t\"") && m.contains("\"id\""), "{m}");
        let m = message(Schema::new([Table::new(
            "t",
            [Column::text("a"), Column::integer("A")],
        )]));
        assert!(m.contains("declared twice"), "{m}");
        let m = message(Schema::new([
            Table::new("t", [Column::text("a")]),
            Table::new("T", [Column::text("a")]),
        ]));
        assert!(m.contains("defined twice"), "{m}");
        let m = message(Schema::new([
            Table::new("a", [Column::text("x")]).view_name("b"),
            Table::new("b", [Column::text("x")]),
        ]));
        assert!(m.contains("view name"), "{m}");
        let m = message(Schema::new([Table::new("t", [Column::text("a")])
            .index(Index::new("i", [IndexColumn::ascending("zzz")]))]));
        assert!(m.contains("zzz"), "{m}");
        let m = message(Schema::new([Table::new("t", [Column::text("a")])
            .local_only()
            .track_metadata()]));
        assert!(m.contains("local_only"), "{m}");
        let m = message(Schema::new([Table::new("t", [Column::text("a")])
            .track_previous_values(TrackPreviousValues::columns(["b"]))]));
        assert!(m.contains("\"b\""), "{m}");
        let many: Vec<_> = (0..333).map(|i| Column::text(format!("c{i}"))).collect();
        assert!(message(Schema::new([Table::new("t", many)])).contains("limit"));
        let m = message(Schema::new([
            Table::new("a", [Column::text("x")])
                .index(Index::new("b__c", [IndexColumn::ascending("x")])),
            Table::new("a__b", [Column::text("x")])
                .index(Index::new("c", [IndexColumn::ascending("x")])),
        ]));
        assert!(m.contains("clashes"), "{m}");
        let m = message(Schema::new([Table::new("t", [Column::text("a b")])]));
        assert!(m.contains("column") && m.contains("a b"), "{m}");
    }
}
