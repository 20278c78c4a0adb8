//! The upload triggers of a raw table: `AFTER` triggers on the app's own table that
//! record each local write in the upload queue, the way the JSON tables' `INSTEAD OF`
//! triggers do (`sql.rs`), and stay silent while sync applies rows
//! (`livesync_in_sync_apply()`).
//!
//! They are generated from the table's columns as they are when the triggers are made
//! (`pragma_table_info`), which is why [`Database::prepare_raw_tables`] must run again
//! after the table is altered.
//!
//! [`Database::prepare_raw_tables`]: crate::Database::prepare_raw_tables

use rusqlite::Connection;

use super::sql::{
    CHECK_ID, CHECK_ID_UNCHANGED, EntryArgs, TriggerSql, entry_args, json_object_of,
    previous_values,
};
use super::validate::MAX_COLUMNS;
use super::{CheckedRawTable, Identifier, names};
use crate::{Error, Result};

/// Prefix of every raw-table trigger livesync creates (and may drop again).
pub(crate) const TRIGGER_PREFIX: &str = "livesync_raw_";

/// The columns of a raw table's SQLite table, as they are now.
#[derive(Debug)]
pub(crate) struct TableColumns {
    /// The synced columns (all but `id`, or those of `synced_columns`), in table order.
    pub synced: Vec<Identifier>,
    /// The table has columns that are not synced.
    pub has_local: bool,
}

/// Reads the columns of `table`'s SQLite table; `None` when the table does not exist.
/// Fails when it has no `id` column, when a synced column's name is not a plain
/// identifier, or when `synced_columns` names a column it does not have.
pub(crate) fn table_columns(
    conn: &Connection,
    table: &CheckedRawTable,
) -> Result<Option<TableColumns>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM pragma_table_info(?1)")?;
    let names: Vec<String> = stmt
        .query_map([table.table.as_str()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if names.is_empty() {
        return Ok(None);
    }
    let local = table.table.as_str();
    if !names.iter().any(|n| n.eq_ignore_ascii_case("id")) {
        return Err(raw_error(
            table,
            format!(
                "its table {local:?} has no id column; raw tables need `id TEXT PRIMARY KEY NOT NULL`"
            ),
        ));
    }
    let mut columns = TableColumns {
        synced: Vec::new(),
        has_local: false,
    };
    for name in names.iter().filter(|n| !n.eq_ignore_ascii_case("id")) {
        if !table.syncs(name) {
            columns.has_local = true;
            continue;
        }
        columns.synced.push(Identifier::parse("column", name).map_err(|_| {
            raw_error(
                table,
                format!(
                    "column {name:?} of table {local:?} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*); rename it or leave it out with synced_columns"
                ),
            )
        })?);
    }
    for listed in table.synced_columns.iter().flatten() {
        if !columns.synced.iter().any(|c| c.folded() == listed.folded()) {
            return Err(raw_error(
                table,
                format!(
                    "synced_columns names {:?}, which table {local:?} does not have",
                    listed.as_str()
                ),
            ));
        }
    }
    Ok(Some(columns))
}

/// An error about one raw table.
pub(crate) fn raw_error(table: &CheckedRawTable, message: String) -> Error {
    Error::RawTable {
        table: table.name.clone(),
        message,
    }
}

/// The trigger names livesync uses for `table`.
pub(crate) fn trigger_names(table: &CheckedRawTable) -> [String; 3] {
    ["insert", "update", "delete"].map(|kind| format!("{TRIGGER_PREFIX}{kind}_{}", table.table))
}

/// The `CREATE TRIGGER` statements recording local writes to `table`.
pub(crate) fn triggers(
    table: &CheckedRawTable,
    table_columns: &TableColumns,
) -> Result<Vec<TriggerSql>> {
    let (synced, has_local_columns) = (&table_columns.synced, table_columns.has_local);
    if synced.len() > MAX_COLUMNS {
        return Err(raw_error(
            table,
            format!(
                "has {} synced columns, more than the limit of {MAX_COLUMNS}",
                synced.len()
            ),
        ));
    }
    let mut columns: Vec<&Identifier> = synced.iter().collect();
    columns.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let kind = names::literal(&table.name);
    let [insert, update, delete] = trigger_names(table);
    let trigger = |name: String, event: &str, body: &[String]| TriggerSql {
        sql: format!(
            "CREATE TRIGGER \"{name}\" AFTER {event} ON {} FOR EACH ROW WHEN NOT livesync_in_sync_apply() BEGIN\n  {};\nEND",
            table.table.quoted(),
            body.join(";\n  ")
        ),
        name,
    };

    if table.insert_only {
        let new_json = json_object_of("NEW", columns.iter().copied());
        let refuse = format!(
            "SELECT RAISE(ABORT, {})",
            names::literal(&format!(
                "raw table {} is insert-only: updates and deletes are refused",
                table.name
            ))
        );
        return Ok(vec![
            trigger(
                insert,
                "INSERT",
                &[
                    CHECK_ID.to_owned(),
                    enqueue(
                        &format!(
                            "json_object('op', 'PUT', 'type', {kind}, 'id', NEW.id, 'data', json(json_patch('{{}}', {new_json})))"
                        ),
                        None,
                    )
                    .join(";\n  "),
                ],
            ),
            trigger(update, "UPDATE", std::slice::from_ref(&refuse)),
            trigger(delete, "DELETE", &[refuse]),
        ]);
    }

    let EntryArgs {
        put_args,
        patch_args,
        differs_args,
    } = entry_args(&columns);
    let (old_for_update, old_for_delete) = match &table.previous_values {
        None => ("NULL".to_owned(), "NULL".to_owned()),
        Some(options) => {
            let tracked: Vec<&Identifier> = match &options.columns {
                None => columns.clone(),
                Some(names) => names
                    .iter()
                    .map(|n| {
                        columns
                            .iter()
                            .copied()
                            .find(|c| c.as_str().eq_ignore_ascii_case(n))
                            .ok_or_else(|| {
                                raw_error(
                                    table,
                                    format!("track_previous_values names {n:?}, which is not a synced column of table {:?}", table.table.as_str()),
                                )
                            })
                    })
                    .collect::<Result<_>>()?,
            };
            previous_values(&tracked, options.only_when_changed)
        }
    };

    let mut insert_body = vec![CHECK_ID.to_owned()];
    insert_body.extend(enqueue(
        &format!("livesync_put_entry({kind}, NEW.id, NULL{put_args})"),
        None,
    ));
    // An update that changes no synced column is not uploaded when the table has
    // columns of its own (those are this device's business) or when asked to skip
    // empty updates.
    let changed = format!("livesync_differs({})", differs_args.join(", "));
    let mut update_body = vec![CHECK_ID_UNCHANGED.to_owned()];
    update_body.extend(enqueue(
        &format!("livesync_patch_entry({kind}, NEW.id, NULL, {old_for_update}{patch_args})"),
        (has_local_columns || table.ignore_empty_update).then_some(changed.as_str()),
    ));
    let delete_body = enqueue(
        &format!("livesync_crud_entry('DELETE', {kind}, OLD.id, NULL, {old_for_delete}, NULL)"),
        None,
    );
    Ok(vec![
        trigger(insert, "INSERT", &insert_body),
        trigger(update, "UPDATE", &update_body),
        trigger(delete, "DELETE", &delete_body),
    ])
}

/// Appends one entry to the upload queue (see `sql.rs` for the id functions). An
/// `AFTER` trigger only fires for a row that changed, so unlike the views' triggers
/// there is no `changes()` check.
fn enqueue(entry_sql: &str, condition: Option<&str>) -> Vec<String> {
    match condition {
        None => vec![format!(
            "INSERT INTO ps_crud(id, tx_id, data) VALUES (livesync_crud_id(), livesync_tx_id(), {entry_sql})"
        )],
        Some(condition) => vec![
            "SELECT livesync_tx_id()".to_owned(),
            format!(
                "INSERT INTO ps_crud(id, tx_id, data) SELECT livesync_crud_id(), livesync_tx_id(), {entry_sql} \
                 WHERE {condition}"
            ),
        ],
    }
}
