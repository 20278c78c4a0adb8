//! The PowerSync schema JSON form, read and written field for field.

use serde::{Deserialize, Serialize};

use super::{Column, ColumnType, Index, IndexColumn, Schema, Table, TrackPreviousValues};
use crate::{Error, Result};

#[derive(Serialize, Deserialize)]
struct SchemaJson {
    tables: Vec<TableJson>,
    #[serde(default)]
    raw_tables: Vec<serde_json::Value>,
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
    if !parsed.raw_tables.is_empty() {
        return Err(Error::schema(
            "raw_tables are not supported by livesync yet; remove them or manage those tables yourself",
        ));
    }
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
            let track_previous_values = match t.include_old {
                IncludeOld::Flag(false) | IncludeOld::Off => None,
                IncludeOld::Flag(true) => Some(TrackPreviousValues::all()),
                IncludeOld::Columns(columns) => Some(TrackPreviousValues::columns(columns)),
            }
            .map(|p| TrackPreviousValues {
                only_when_changed: t.include_old_only_when_changed,
                ..p
            });
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
    Ok(Schema { tables })
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
            include_old: match &t.track_previous_values {
                None => IncludeOld::Flag(false),
                Some(TrackPreviousValues { columns: None, .. }) => IncludeOld::Flag(true),
                Some(TrackPreviousValues {
                    columns: Some(c), ..
                }) => IncludeOld::Columns(c.clone()),
            },
            include_old_only_when_changed: t
                .track_previous_values
                .as_ref()
                .is_some_and(|p| p.only_when_changed),
            ignore_empty_update: t.ignore_empty_update,
            direct: false,
        })
        .collect();
    serde_json::to_string(&SchemaJson {
        tables,
        raw_tables: Vec::new(),
    })
    .expect("schema JSON types always serialise")
}
