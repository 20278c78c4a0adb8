//! SQL text for the objects a table becomes: data table, view, indexes and CRUD triggers.
//!
//! Everything here is built from [`CheckedTable`]s, whose names are validated
//! [`Identifier`](super::Identifier)s, so plain string formatting is safe. The text is
//! also compared verbatim with `sqlite_schema.sql` to decide whether an object must be
//! recreated, so the output is deterministic.
//!
//! CRUD capture relies on SQL functions registered on every connection (see
//! `store/crud_functions.rs`): `livesync_crud_id()` and `livesync_tx_id()` hand out the
//! entry id and the upload transaction id (real counters on the writer only);
//! `livesync_put_entry`, `livesync_patch_entry` and `livesync_crud_entry` render the
//! entry JSON, `livesync_diff(a, b)` computes PATCH data and `livesync_differs(...)`
//! tells whether any pair of values differs.

use super::validate::{CheckedIndex, CheckedTable};

/// Marker that ends every generated view, used to recognise managed views.
pub(crate) const VIEW_MARKER: &str = "-- powersync-auto-generated";

pub(crate) fn create_data_table(data_table: &str) -> String {
    format!("CREATE TABLE \"{data_table}\"(id TEXT PRIMARY KEY NOT NULL, data TEXT)")
}

fn cast_expr(column: &str, column_type: super::ColumnType) -> String {
    format!(
        "CAST(json_extract(data, '$.{column}') AS {})",
        column_type.sql_name()
    )
}

pub(crate) fn view(table: &CheckedTable) -> String {
    let mut names = vec!["\"id\"".to_owned()];
    let mut exprs = vec!["id".to_owned()];
    for (column, column_type) in &table.columns {
        names.push(column.quoted());
        exprs.push(cast_expr(column.as_str(), *column_type));
    }
    if table.track_metadata {
        names.extend(["\"_metadata\"".to_owned(), "\"_deleted\"".to_owned()]);
        exprs.extend(["NULL".to_owned(), "NULL".to_owned()]);
    }
    format!(
        "CREATE VIEW {}({}) AS SELECT {} FROM \"{}\" {VIEW_MARKER}",
        table.view.quoted(),
        names.join(", "),
        exprs.join(", "),
        table.data_table()
    )
}

pub(crate) fn index_name(table: &CheckedTable, index: &CheckedIndex) -> String {
    format!("{}__{}", table.data_table(), index.name)
}

pub(crate) fn index(table: &CheckedTable, index: &CheckedIndex) -> String {
    let columns: Vec<String> = index
        .columns
        .iter()
        .map(|(column, column_type, ascending)| {
            let direction = if *ascending { "" } else { " DESC" };
            format!("{}{direction}", cast_expr(column.as_str(), *column_type))
        })
        .collect();
    format!(
        "CREATE INDEX \"{}\" ON \"{}\"({})",
        index_name(table, index),
        table.data_table(),
        columns.join(", ")
    )
}

/// `json_object('a', <prefix>."a", ...)` over `columns`, keys in byte order so that the
/// JSON matches what the official implementation (a sorted map) produces.
pub(super) fn json_object_of<'a>(
    prefix: &str,
    columns: impl IntoIterator<Item = &'a super::Identifier>,
) -> String {
    let mut columns: Vec<&super::Identifier> = columns.into_iter().collect();
    columns.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let args: Vec<String> = columns
        .iter()
        .map(|c| format!("'{c}', {prefix}.{}", c.quoted()))
        .collect();
    format!("json_object({})", args.join(", "))
}

/// A trigger's name and its full `CREATE TRIGGER` text.
pub(crate) struct TriggerSql {
    pub name: String,
    pub sql: String,
}

pub(crate) fn triggers(table: &CheckedTable) -> Vec<TriggerSql> {
    if table.local_only {
        local_only_triggers(table)
    } else if table.insert_only {
        vec![insert_only_trigger(table)]
    } else {
        synced_triggers(table)
    }
}

fn trigger(
    kind: &str,
    table: &CheckedTable,
    event: &str,
    when: &str,
    body: &[String],
) -> TriggerSql {
    let name = format!("ps_view_{kind}_{}", table.view);
    let sql = format!(
        "CREATE TRIGGER \"{name}\" INSTEAD OF {event} ON {} FOR EACH ROW{when} BEGIN\n  {};\nEND",
        table.view.quoted(),
        body.join(";\n  ")
    );
    TriggerSql { name, sql }
}

fn all_columns(table: &CheckedTable) -> impl Iterator<Item = &super::Identifier> {
    table.columns.iter().map(|(c, _)| c)
}

/// Sorted columns, so generated argument lists (and the JSON built from them) come out
/// in key order.
fn sorted_columns(table: &CheckedTable) -> Vec<&super::Identifier> {
    let mut columns: Vec<&super::Identifier> = all_columns(table).collect();
    columns.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    columns
}

/// Appends one entry to the upload queue. Ids come from the writer's counters
/// (`store/crud_functions.rs`): `livesync_crud_id()` is monotonic and never reused,
/// `livesync_tx_id()` is the running SQLite transaction's upload transaction id. Keeping
/// both out of SQL tables makes a recorded write cost one queue insert and no extra
/// statement; the counters are persisted in `ps_tx` when uploads complete.
///
/// The download gate and the rows to re-derive at the next full sync apply are settled
/// when the upload completes (`crud.rs`): no apply can happen while entries are queued,
/// so the outcome is the same as marking them here.
///
/// Entries are only recorded when the data-table statement just before changed a row
/// (`changes() > 0`): under `INSERT OR IGNORE` on an existing id, say, nothing happened
/// locally and nothing must be uploaded.
fn enqueue(entry_sql: &str, condition: Option<&str>) -> Vec<String> {
    match condition {
        None => vec![format!(
            "INSERT INTO ps_crud(id, tx_id, data) SELECT livesync_crud_id(), livesync_tx_id(), {entry_sql} \
             WHERE changes() > 0"
        )],
        Some(condition) => vec![
            // The transaction id is consumed even when the write is skipped. (A SELECT
            // leaves `changes()` alone.)
            "SELECT livesync_tx_id()".to_owned(),
            format!(
                "INSERT INTO ps_crud(id, tx_id, data) SELECT livesync_crud_id(), livesync_tx_id(), {entry_sql} \
                 WHERE changes() > 0 AND {condition}"
            ),
        ],
    }
}

/// Insert-only tables have no data-table statement to check.
fn enqueue_always(entry_sql: &str) -> String {
    format!(
        "INSERT INTO ps_crud(id, tx_id, data) VALUES (livesync_crud_id(), livesync_tx_id(), {entry_sql})"
    )
}

/// The data-table insert, refusing rows without a text id (the check is folded into the
/// insert so it costs no statement of its own).
fn insert_checked(data_table: &str, new_json: &str) -> String {
    format!(
        "INSERT INTO \"{data_table}\"(id, data) VALUES (CASE WHEN NEW.id IS NULL THEN RAISE(ABORT, 'id is required') \
         WHEN typeof(NEW.id) != 'text' THEN RAISE(ABORT, 'id should be text') ELSE NEW.id END, {new_json})"
    )
}

pub(super) const CHECK_ID: &str = "SELECT CASE WHEN NEW.id IS NULL THEN RAISE(ABORT, 'id is required') \
     WHEN typeof(NEW.id) != 'text' THEN RAISE(ABORT, 'id should be text') END";
// `IS NOT`, so that setting the id to NULL is refused too.
pub(super) const CHECK_ID_UNCHANGED: &str =
    "SELECT CASE WHEN OLD.id IS NOT NEW.id THEN RAISE(ABORT, 'Cannot update id') END";

/// The argument lists the entry functions take for `columns` (sorted): `put_args` for
/// `livesync_put_entry`, `patch_args` for `livesync_patch_entry`, `differs_args` for
/// `livesync_differs`.
pub(super) struct EntryArgs {
    pub put_args: String,
    pub patch_args: String,
    pub differs_args: Vec<String>,
}

pub(super) fn entry_args(columns: &[&super::Identifier]) -> EntryArgs {
    EntryArgs {
        put_args: columns
            .iter()
            .map(|c| format!(", '{c}', NEW.{}", c.quoted()))
            .collect(),
        patch_args: columns
            .iter()
            .map(|c| format!(", '{c}', OLD.{q}, NEW.{q}", q = c.quoted()))
            .collect(),
        differs_args: columns
            .iter()
            .map(|c| format!("OLD.{q}, NEW.{q}", q = c.quoted()))
            .collect(),
    }
}

/// The previous values an UPDATE entry and a DELETE entry record for `tracked` columns
/// (for updates only the changed ones, with `only_when_changed`).
pub(super) fn previous_values(
    tracked: &[&super::Identifier],
    only_when_changed: bool,
) -> (String, String) {
    let old = json_object_of("OLD", tracked.iter().copied());
    let for_update = if only_when_changed {
        let new = json_object_of("NEW", tracked.iter().copied());
        format!("livesync_diff({new}, {old})")
    } else {
        old.clone()
    };
    (for_update, old)
}

fn synced_triggers(table: &CheckedTable) -> Vec<TriggerSql> {
    let data_table = table.data_table();
    let name = table.name.as_str();
    let columns = sorted_columns(table);
    let new_json = json_object_of("NEW", columns.iter().copied());
    let metadata = if table.track_metadata {
        "NEW.\"_metadata\""
    } else {
        "NULL"
    };
    let EntryArgs {
        put_args,
        patch_args,
        differs_args,
    } = entry_args(&columns);

    // Previous values for UPDATE (possibly only the changed ones) and for DELETE.
    let (old_for_update, old_for_delete) = match &table.previous_values {
        None => ("NULL".to_owned(), "NULL".to_owned()),
        Some(options) => {
            let tracked: Vec<&super::Identifier> = match &options.columns {
                Some(columns) => columns.iter().collect(),
                None => all_columns(table).collect(),
            };
            previous_values(&tracked, options.only_when_changed)
        }
    };

    let mut insert_body = vec![insert_checked(&data_table, &new_json)];
    insert_body.extend(enqueue(
        &format!("livesync_put_entry('{name}', NEW.id, {metadata}{put_args})"),
        None,
    ));

    // An update is empty exactly when every column keeps its value.
    let changed = format!("livesync_differs({})", differs_args.join(", "));
    let mut update_body = vec![
        CHECK_ID_UNCHANGED.to_owned(),
        format!("UPDATE \"{data_table}\" SET data = {new_json} WHERE id = NEW.id"),
    ];
    update_body.extend(enqueue(
        &format!(
            "livesync_patch_entry('{name}', NEW.id, {metadata}, {old_for_update}{patch_args})"
        ),
        table.ignore_empty_update.then_some(changed.as_str()),
    ));

    let delete_body = |metadata: &str| {
        let mut body = vec![format!("DELETE FROM \"{data_table}\" WHERE id = OLD.id")];
        body.extend(enqueue(
            &format!("livesync_crud_entry('DELETE', '{name}', OLD.id, NULL, {old_for_delete}, {metadata})"),
            None,
        ));
        body
    };

    let mut triggers = vec![trigger("insert", table, "INSERT", "", &insert_body)];
    if table.track_metadata {
        triggers.push(trigger(
            "update",
            table,
            "UPDATE",
            " WHEN NEW.\"_deleted\" IS NOT TRUE",
            &update_body,
        ));
        // A plain DELETE cannot carry metadata; `UPDATE ... SET _deleted = TRUE` can.
        triggers.push(trigger("delete", table, "DELETE", "", &delete_body("NULL")));
        triggers.push(trigger(
            "delete2",
            table,
            "UPDATE",
            " WHEN NEW.\"_deleted\" IS TRUE",
            &delete_body("NEW.\"_metadata\""),
        ));
    } else {
        triggers.push(trigger("update", table, "UPDATE", "", &update_body));
        triggers.push(trigger("delete", table, "DELETE", "", &delete_body("NULL")));
    }
    triggers
}

fn insert_only_trigger(table: &CheckedTable) -> TriggerSql {
    let new_json = json_object_of("NEW", all_columns(table));
    // Insert-only rows are never stored locally; the entry keeps the official key order.
    let body = [
        CHECK_ID.to_owned(),
        enqueue_always(&format!(
            "json_object('op', 'PUT', 'type', '{}', 'id', NEW.id, 'data', json(json_patch('{{}}', {new_json})))",
            table.name
        )),
    ];
    trigger("insert", table, "INSERT", "", &body)
}

fn local_only_triggers(table: &CheckedTable) -> Vec<TriggerSql> {
    let data_table = table.data_table();
    let new_json = json_object_of("NEW", all_columns(table));
    vec![
        trigger(
            "insert",
            table,
            "INSERT",
            "",
            &[format!(
                "INSERT INTO \"{data_table}\"(id, data) VALUES (NEW.id, {new_json})"
            )],
        ),
        trigger(
            "update",
            table,
            "UPDATE",
            "",
            &[
                CHECK_ID_UNCHANGED.to_owned(),
                format!("UPDATE \"{data_table}\" SET data = {new_json} WHERE id = NEW.id"),
            ],
        ),
        trigger(
            "delete",
            table,
            "DELETE",
            "",
            &[format!("DELETE FROM \"{data_table}\" WHERE id = OLD.id")],
        ),
    ]
}

/// The internal tables, created once by the first internal migration.
pub(crate) const INTERNAL_TABLES_V1: &str = concat!(
    "CREATE TABLE ps_kv(key TEXT PRIMARY KEY NOT NULL, value BLOB);\n",
    // Entry ids come from a monotonic counter (see `enqueue`), hence no AUTOINCREMENT.
    "CREATE TABLE ps_crud(id INTEGER PRIMARY KEY, data TEXT, tx_id INTEGER);\n",
    // High-water marks of the id counters, persisted when uploads complete.
    "CREATE TABLE ps_tx(id INTEGER PRIMARY KEY NOT NULL, next_tx INTEGER NOT NULL, next_crud_id INTEGER NOT NULL);\n",
    "INSERT INTO ps_tx(id, next_tx, next_crud_id) VALUES (1, 1, 1);\n",
    "CREATE TABLE ps_updated_rows(row_type TEXT, row_id TEXT, PRIMARY KEY(row_type, row_id)) STRICT, WITHOUT ROWID;\n",
    "CREATE TABLE ps_untyped(type TEXT NOT NULL, id TEXT NOT NULL, data TEXT, PRIMARY KEY(type, id));\n",
    "CREATE TABLE ps_buckets(id INTEGER PRIMARY KEY, name TEXT NOT NULL, last_applied_op INTEGER NOT NULL DEFAULT 0, \
     last_op INTEGER NOT NULL DEFAULT 0, add_checksum INTEGER NOT NULL DEFAULT 0, op_checksum INTEGER NOT NULL DEFAULT 0, \
     pending_delete INTEGER NOT NULL DEFAULT 0, count_at_last INTEGER NOT NULL DEFAULT 0, \
     count_since_last INTEGER NOT NULL DEFAULT 0, downloaded_size INTEGER NOT NULL DEFAULT 0) STRICT;\n",
    "CREATE UNIQUE INDEX ps_buckets_name ON ps_buckets(name);\n",
    "CREATE TABLE ps_oplog(bucket INTEGER NOT NULL, op_id INTEGER NOT NULL, row_type TEXT, row_id TEXT, key TEXT, \
     data TEXT, hash INTEGER NOT NULL) STRICT;\n",
    "CREATE INDEX ps_oplog_row ON ps_oplog(row_type, row_id);\n",
    "CREATE INDEX ps_oplog_opid ON ps_oplog(bucket, op_id);\n",
    "CREATE INDEX ps_oplog_key ON ps_oplog(bucket, key);\n",
    "CREATE TABLE ps_sync_state(priority INTEGER NOT NULL PRIMARY KEY, last_synced_at INTEGER NOT NULL) STRICT;\n",
);

/// Layout 2: `ps_oplog` becomes a `WITHOUT ROWID` table keyed by
/// `(row_type, row_id, bucket, subkey)` (`subkey` is the text `null` when the service
/// sent none; the spec's `key` column is `row_type/row_id/subkey`). The key finds every
/// op of a row (its prefix) and makes an op unique within its bucket, so storing an op
/// is one b-tree insert (a superseded op is detected by the insert itself), and
/// `ps_oplog_pending` lists rows with unapplied ops of buckets applied before. Ops naming
/// no row are not stored (they cannot be applied).
pub(crate) const INTERNAL_TABLES_V2: &str = concat!(
    "CREATE TABLE ps_oplog_v2(row_type TEXT NOT NULL, row_id TEXT NOT NULL, bucket INTEGER NOT NULL, \
     subkey TEXT NOT NULL, op_id INTEGER NOT NULL, data TEXT, hash INTEGER NOT NULL, \
     PRIMARY KEY(row_type, row_id, bucket, subkey)) STRICT, WITHOUT ROWID;\n",
    "INSERT OR REPLACE INTO ps_oplog_v2(row_type, row_id, bucket, subkey, op_id, data, hash) \
     SELECT row_type, row_id, bucket, substr(key, length(row_type) + length(row_id) + 3), op_id, data, hash \
     FROM ps_oplog WHERE row_type IS NOT NULL AND row_id IS NOT NULL ORDER BY op_id;\n",
    "DROP TABLE ps_oplog;\n",
    "ALTER TABLE ps_oplog_v2 RENAME TO ps_oplog;\n",
    // Rows with ops newer than their bucket's last apply, for buckets applied before
    // (a bucket never applied has only new ops). Replaces the (bucket, op_id) index:
    // an initial download, the bulk of all ops, then maintains no second structure.
    "CREATE TABLE ps_oplog_pending(bucket INTEGER NOT NULL, row_type TEXT NOT NULL, row_id TEXT NOT NULL, \
     PRIMARY KEY(bucket, row_type, row_id)) STRICT, WITHOUT ROWID;\n",
    "INSERT OR IGNORE INTO ps_oplog_pending(bucket, row_type, row_id) \
     SELECT o.bucket, o.row_type, o.row_id FROM ps_oplog o JOIN ps_buckets b ON b.id = o.bucket \
     WHERE b.last_applied_op > 0 AND o.op_id > b.last_applied_op;\n",
    "INSERT INTO ps_migration(id, down_migrations) VALUES (2, '[",
    "{\"sql\":\"DROP TABLE ps_oplog_pending\"},",
    "{\"sql\":\"CREATE TABLE ps_oplog_v1(bucket INTEGER NOT NULL, op_id INTEGER NOT NULL, row_type TEXT, row_id TEXT, key TEXT, data TEXT, hash INTEGER NOT NULL) STRICT\"},",
    "{\"sql\":\"INSERT INTO ps_oplog_v1 SELECT bucket, op_id, row_type, row_id, row_type || ''/'' || row_id || ''/'' || subkey, data, hash FROM ps_oplog\"},",
    "{\"sql\":\"DROP TABLE ps_oplog\"},",
    "{\"sql\":\"ALTER TABLE ps_oplog_v1 RENAME TO ps_oplog\"},",
    "{\"sql\":\"CREATE INDEX ps_oplog_row ON ps_oplog(row_type, row_id)\"},",
    "{\"sql\":\"CREATE INDEX ps_oplog_opid ON ps_oplog(bucket, op_id)\"},",
    "{\"sql\":\"CREATE INDEX ps_oplog_key ON ps_oplog(bucket, key)\"},",
    "{\"sql\":\"DELETE FROM ps_migration WHERE id >= 2\"}]');\n",
);

/// Layout 3: sync stream subscriptions (docs/sync-protocol.md §6.2). `ttl` is set exactly for explicit
/// subscriptions; times are Unix microseconds.
pub(crate) const INTERNAL_TABLES_V3: &str = concat!(
    "CREATE TABLE ps_stream_subscriptions(id INTEGER NOT NULL PRIMARY KEY, stream_name TEXT NOT NULL, \
     active INTEGER NOT NULL DEFAULT FALSE, is_default INTEGER NOT NULL DEFAULT FALSE, local_priority INTEGER, \
     local_params TEXT NOT NULL DEFAULT 'null', ttl INTEGER, expires_at INTEGER, last_synced_at INTEGER, \
     UNIQUE(stream_name, local_params)) STRICT;\n",
    "INSERT INTO ps_migration(id, down_migrations) VALUES (3, '[",
    "{\"sql\":\"DROP TABLE ps_stream_subscriptions\"},",
    "{\"sql\":\"DELETE FROM ps_migration WHERE id >= 3\"}]');\n",
);

/// A random UUID v4 in SQL, for the persistent `client_id`.
pub(crate) const NEW_CLIENT_ID: &str = "INSERT INTO ps_kv(key, value) VALUES ('client_id', \
     lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) \
     || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) \
     || '-' || lower(hex(randomblob(6))))";
