//! The PowerSync schema JSON form, read and written field for field.

use serde::{Deserialize, Serialize};

use super::{
    Column, ColumnType, Index, IndexColumn, PendingStatement, PendingStatementValue, RawTable,
    Schema, Table, TrackPreviousValues,
};
use crate::{Error, Result};

#[derive(Serialize, Deserialize)]
struct SchemaJson {
    tables: Vec<TableJson>,
    #[serde(default)]
    raw_tables: Vec<RawTableJson>,
}

/// A raw table as the official SDKs write it: the table options sit beside the
/// statements; `capture_writes` is livesync's own (absent means true).
#[derive(Serialize, Deserialize)]
struct RawTableJson {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    synced_columns: Option<Vec<String>>,
    #[serde(default)]
    put: Option<StatementJson>,
    #[serde(default)]
    delete: Option<StatementJson>,
    #[serde(default)]
    clear: Option<String>,
    #[serde(default)]
    local_only: bool,
    #[serde(default)]
    insert_only: bool,
    #[serde(default)]
    include_metadata: bool,
    #[serde(default)]
    include_old: IncludeOld,
    #[serde(default)]
    include_old_only_when_changed: bool,
    #[serde(default)]
    ignore_empty_update: bool,
    #[serde(default = "yes")]
    capture_writes: bool,
}

#[derive(Serialize, Deserialize)]
struct StatementJson {
    sql: String,
    params: Vec<ParamJson>,
}

/// `"Id"`, `"Rest"` or `{"Column": "name"}`, serde's external tagging as the official
/// SDKs use it.
#[derive(Serialize, Deserialize)]
enum ParamJson {
    Id,
    Column(String),
    Rest,
}

#[derive(Serialize, Deserialize)]
struct TableJson {
    name: String,
    #[serde(default)]
    view_name: Option<String>,
    columns: Vec<ColumnJson>,
    #[serde(default)]
    indexes: Vec<IndexJson>,
    #[serde(default)]
    local_only: bool,
    #[serde(default)]
    insert_only: bool,
    #[serde(default)]
    include_metadata: bool,
    #[serde(default)]
    include_old: IncludeOld,
    #[serde(default)]
    include_old_only_when_changed: bool,
    #[serde(default)]
    ignore_empty_update: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    direct: bool,
}

/// `include_old` is `false`, `true`, or a list of column names.
#[derive(Serialize, Deserialize, Default)]
#[serde(untagged)]
enum IncludeOld {
    Flag(bool),
    Columns(Vec<String>),
    #[default]
    #[serde(skip)]
    Off,
}

#[derive(Serialize, Deserialize)]
struct ColumnJson {
    name: String,
    #[serde(rename = "type")]
    column_type: String,
}

#[derive(Serialize, Deserialize)]
struct IndexJson {
    name: String,
    columns: Vec<IndexColumnJson>,
}

#[derive(Serialize, Deserialize)]
struct IndexColumnJson {
    name: String,
    #[serde(default = "yes")]
    ascending: bool,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    column_type: Option<String>,
}

fn yes() -> bool {
    true
}

fn column_type(table: &str, column: &str, spelled: &str) -> Result<ColumnType> {
    match spelled.to_ascii_uppercase().as_str() {
        "TEXT" => Ok(ColumnType::Text),
        "INTEGER" => Ok(ColumnType::Integer),
        "REAL" => Ok(ColumnType::Real),
        _ => Err(Error::schema(format!(
            "table {table:?}: column {column:?} has type {spelled:?}; use TEXT, INTEGER or REAL"
        ))),
    }
}

pub(super) fn from_json(json: &str) -> Result<Schema> {
    let parsed: SchemaJson =
        serde_json::from_str(json).map_err(|e| Error::json("schema JSON", e))?;
    let tables = parsed
        .tables
        .into_iter()
        .map(|t| {
            if t.direct {
                return Err(Error::schema(format!(
                    "table {:?}: direct tables are not supported; drop the \"direct\" flag",
                    t.name
                )));
            }
            let columns = t
                .columns
                .iter()
                .map(|c| {
                    Ok(Column::new(
                        &c.name,
                        column_type(&t.name, &c.name, &c.column_type)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let indexes = t
                .indexes
                .into_iter()
                .map(|i| Index {
                    name: i.name,
                    columns: i
                        .columns
                        .into_iter()
                        .map(|c| IndexColumn {
                            column: c.name,
                            ascending: c.ascending,
                        })
                        .collect(),
                })
                .collect();
            let track_previous_values =
                previous_values(t.include_old, t.include_old_only_when_changed);
            Ok(Table {
                name: t.name,
                view_name: t.view_name,
                columns,
                indexes,
                local_only: t.local_only,
                insert_only: t.insert_only,
                track_metadata: t.include_metadata,
                track_previous_values,
                ignore_empty_update: t.ignore_empty_update,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let raw_tables = parsed
        .raw_tables
        .into_iter()
        .map(raw_table_from_json)
        .collect::<Result<Vec<_>>>()?;
    Ok(Schema { tables, raw_tables })
}

fn previous_values(
    include_old: IncludeOld,
    only_when_changed: bool,
) -> Option<TrackPreviousValues> {
    match include_old {
        IncludeOld::Flag(false) | IncludeOld::Off => None,
        IncludeOld::Flag(true) => Some(TrackPreviousValues::all()),
        IncludeOld::Columns(columns) => Some(TrackPreviousValues::columns(columns)),
    }
    .map(|p| TrackPreviousValues {
        only_when_changed,
        ..p
    })
}

fn include_old(options: Option<&TrackPreviousValues>) -> (IncludeOld, bool) {
    match options {
        None => (IncludeOld::Flag(false), false),
        Some(p) => (
            match &p.columns {
                None => IncludeOld::Flag(true),
                Some(c) => IncludeOld::Columns(c.clone()),
            },
            p.only_when_changed,
        ),
    }
}

fn raw_table_from_json(t: RawTableJson) -> Result<RawTable> {
    let refuse = |option: &str| {
        Err(Error::schema(format!(
            "raw table {:?}: {option} is not supported for raw tables; remove it",
            t.name
        )))
    };
    if t.local_only {
        return refuse(
            "local_only (a local-only raw table is an ordinary table: leave it out of the schema)",
        );
    }
    if t.include_metadata {
        return refuse("include_metadata");
    }
    let statement = |s: StatementJson| PendingStatement {
        sql: s.sql,
        params: s
            .params
            .into_iter()
            .map(|p| match p {
                ParamJson::Id => PendingStatementValue::Id,
                ParamJson::Column(c) => PendingStatementValue::Column(c),
                ParamJson::Rest => PendingStatementValue::Rest,
            })
            .collect(),
    };
    Ok(RawTable {
        track_previous_values: previous_values(t.include_old, t.include_old_only_when_changed),
        // The official SDKs always write `table_name`; equal to `name` it is the default.
        table_name: t.table_name.filter(|table| *table != t.name),
        name: t.name,
        put: t.put.map(statement),
        delete: t.delete.map(statement),
        clear: t.clear,
        synced_columns: t.synced_columns,
        capture_writes: t.capture_writes,
        insert_only: t.insert_only,
        ignore_empty_update: t.ignore_empty_update,
    })
}

fn raw_table_to_json(t: &RawTable) -> RawTableJson {
    let statement = |s: &PendingStatement| StatementJson {
        sql: s.sql.clone(),
        params: s
            .params
            .iter()
            .map(|p| match p {
                PendingStatementValue::Id => ParamJson::Id,
                PendingStatementValue::Column(c) => ParamJson::Column(c.clone()),
                PendingStatementValue::Rest => ParamJson::Rest,
            })
            .collect(),
    };
    let (include_old, include_old_only_when_changed) =
        include_old(t.track_previous_values.as_ref());
    RawTableJson {
        name: t.name.clone(),
        table_name: Some(t.local_table().to_owned()),
        synced_columns: t.synced_columns.clone(),
        put: t.put.as_ref().map(statement),
        delete: t.delete.as_ref().map(statement),
        clear: t.clear.clone(),
        local_only: false,
        insert_only: t.insert_only,
        include_metadata: false,
        include_old,
        include_old_only_when_changed,
        ignore_empty_update: t.ignore_empty_update,
        capture_writes: t.capture_writes,
    }
}

pub(super) fn to_json(schema: &Schema) -> String {
    let tables = schema
        .tables
        .iter()
        .map(|t| TableJson {
            name: t.name.clone(),
            view_name: t.view_name.clone(),
            columns: t
                .columns
                .iter()
                .map(|c| ColumnJson {
                    name: c.name.clone(),
                    column_type: c.column_type.sql_name().to_owned(),
                })
                .collect(),
            indexes: t
                .indexes
                .iter()
                .map(|i| IndexJson {
                    name: i.name.clone(),
                    columns: i
                        .columns
                        .iter()
                        .map(|c| IndexColumnJson {
                            name: c.column.clone(),
                            ascending: c.ascending,
                            column_type: t
                                .columns
                                .iter()
                                .find(|col| col.name == c.column)
                                .map(|col| col.column_type.sql_name().to_owned()),
                        })
                        .collect(),
                })
                .collect(),
            local_only: t.local_only,
            insert_only: t.insert_only,
            include_metadata: t.track_metadata,
            include_old: include_old(t.track_previous_values.as_ref()).0,
            include_old_only_when_changed: include_old(t.track_previous_values.as_ref()).1,
            ignore_empty_update: t.ignore_empty_update,
            direct: false,
        })
        .collect();
    serde_json::to_string(&SchemaJson {
        tables,
        raw_tables: schema.raw_tables.iter().map(raw_table_to_json).collect(),
    })
    .expect("schema JSON types always serialise")
}
