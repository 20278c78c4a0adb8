//! Per-transaction bookkeeping on the writer connection: which tables a transaction
//! touched (SQLite's update/commit/rollback hooks) and the SQL functions the CRUD
//! triggers call.
//!
//! SQLite runs the commit hook *before* the commit is visible to other connections, so
//! the hook only moves the touched tables to a "committed" list; the writer publishes
//! that list after the statement that committed has returned (see `writer.rs`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, hooks::Action};
use serde_json::{Map, Value};

/// Shared between the hooks (which SQLite calls on the writer thread) and the writer.
#[derive(Default)]
pub(crate) struct ChangeTracker {
    state: Mutex<TrackerState>,
}

#[derive(Default)]
struct TrackerState {
    /// Raw table names changed by the open transaction. A short list: a linear scan of a
    /// few names is cheaper than hashing on every changed row.
    touched: Vec<String>,
    /// Change sets of transactions committed since the last [`ChangeTracker::take_committed`].
    committed: Vec<HashSet<String>>,
    /// Upload transaction id of the open SQLite transaction, once it recorded a write.
    current_tx: Option<i64>,
    /// Next upload transaction id to hand out.
    next_tx: i64,
    /// Next upload queue entry id (monotonic, never reused by committed entries).
    next_crud_id: i64,
    /// `(next_tx, next_crud_id)` when the open transaction first took an id, restored if
    /// it rolls back, so a rolled-back transaction leaves no gap.
    rollback_to: Option<(i64, i64)>,
}

impl TrackerState {
    fn remember_counters(&mut self) {
        if self.rollback_to.is_none() {
            self.rollback_to = Some((self.next_tx, self.next_crud_id));
        }
    }
}

impl ChangeTracker {
    fn lock(&self) -> MutexGuard<'_, TrackerState> {
        // A panic while holding this lock cannot leave the sets inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Change sets of every transaction that committed since the last call, oldest first.
    pub(super) fn take_committed(&self) -> Vec<HashSet<String>> {
        std::mem::take(&mut self.lock().committed)
    }

    /// Installs the hooks and SQL functions on the writer connection.
    pub(super) fn install(self: &Arc<Self>, conn: &mut Connection) -> rusqlite::Result<()> {
        self.register_functions(conn)?;

        let tracker = Arc::clone(self);
        conn.update_hook(Some(
            move |_: Action, _db: &str, table: &str, _rowid: i64| {
                let mut state = tracker.lock();
                if !state.touched.iter().any(|t| t == table) {
                    state.touched.push(table.to_owned());
                }
            },
        ))?;
        let tracker = Arc::clone(self);
        conn.commit_hook(Some(move || {
            let mut state = tracker.lock();
            state.current_tx = None;
            state.rollback_to = None;
            let touched = std::mem::take(&mut state.touched);
            if !touched.is_empty() {
                state.committed.push(touched.into_iter().collect());
            }
            false // never veto the commit
        }))?;
        let tracker = Arc::clone(self);
        conn.rollback_hook(Some(move || {
            let mut state = tracker.lock();
            state.current_tx = None;
            if let Some((next_tx, next_crud_id)) = state.rollback_to.take() {
                state.next_tx = next_tx;
                state.next_crud_id = next_crud_id;
            }
            state.touched.clear();
        }))?;
        Ok(())
    }

    /// Loads the id counters from the database: the persisted high-water marks, or past
    /// the largest ids still queued (whichever is larger), so ids never repeat across
    /// restarts or crashes.
    pub(super) fn load_counters(&self, conn: &Connection) -> rusqlite::Result<()> {
        let (next_tx, next_crud_id) = conn.query_row(
            "SELECT max(next_tx, ifnull((SELECT max(tx_id) + 1 FROM ps_crud), 1)), \
                    max(next_crud_id, ifnull((SELECT max(id) + 1 FROM ps_crud), 1)) \
             FROM ps_tx WHERE id = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let mut state = self.lock();
        state.next_tx = next_tx;
        state.next_crud_id = next_crud_id;
        state.current_tx = None;
        state.rollback_to = None;
        Ok(())
    }

    /// Registers the SQL functions the CRUD triggers call. Reader connections get them
    /// too, so a write attempted there fails as "read-only", not as "no such function".
    pub(super) fn register_functions(self: &Arc<Self>, conn: &Connection) -> rusqlite::Result<()> {
        // Called from the CRUD triggers, hence usable from schema objects; not
        // deterministic, as every call may hand out a new id.
        let counter_flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_INNOCUOUS;
        let tracker = Arc::clone(self);
        conn.create_scalar_function("livesync_tx_id", 0, counter_flags, move |_| {
            let mut state = tracker.lock();
            Ok(match state.current_tx {
                Some(id) => id,
                None => {
                    state.remember_counters();
                    let id = state.next_tx;
                    state.next_tx += 1;
                    state.current_tx = Some(id);
                    id
                }
            })
        })?;
        let tracker = Arc::clone(self);
        conn.create_scalar_function("livesync_crud_id", 0, counter_flags, move |_| {
            let mut state = tracker.lock();
            state.remember_counters();
            let id = state.next_crud_id;
            state.next_crud_id += 1;
            Ok(id)
        })?;
        conn.create_scalar_function(
            "livesync_diff",
            2,
            FunctionFlags::SQLITE_UTF8
                | FunctionFlags::SQLITE_DETERMINISTIC
                | FunctionFlags::SQLITE_INNOCUOUS,
            |ctx| {
                let old = json_object_arg(ctx, 0)?;
                let new = json_object_arg(ctx, 1)?;
                Ok(Value::Object(json_diff(old, new)).to_string())
            },
        )?;
        let flags = FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS;
        conn.create_scalar_function("livesync_put_entry", -1, flags, put_entry_json)?;
        conn.create_scalar_function("livesync_patch_entry", -1, flags, patch_entry_json)?;
        conn.create_scalar_function("livesync_differs", -1, flags, |ctx| {
            Ok((0..ctx.len() / 2).any(|i| !same_value(ctx.get_raw(2 * i), ctx.get_raw(2 * i + 1))))
        })?;
        conn.create_scalar_function(
            "livesync_crud_entry",
            6,
            FunctionFlags::SQLITE_UTF8
                | FunctionFlags::SQLITE_DETERMINISTIC
                | FunctionFlags::SQLITE_INNOCUOUS,
            crud_entry_json,
        )?;
        Ok(())
    }
}

fn json_object_arg(ctx: &Context<'_>, index: usize) -> rusqlite::Result<Map<String, Value>> {
    let text = match ctx.get_raw(index) {
        ValueRef::Null => return Ok(Map::new()),
        ValueRef::Text(text) => text,
        _ => return Err(user_error("livesync_diff expects JSON object text")),
    };
    match serde_json::from_slice(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(user_error("livesync_diff expects JSON object text")),
    }
}

fn user_error(message: &str) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(message.into())
}

/// PATCH data: the keys of `new` that differ from `old`, plus `key: null` for keys that
/// disappeared. Null values count as absent; when `old` has no values the result is `new`.
/// Keys come out sorted (serde_json's map is ordered), like the official implementation.
pub(crate) fn json_diff(
    mut old: Map<String, Value>,
    mut new: Map<String, Value>,
) -> Map<String, Value> {
    old.retain(|_, v| !v.is_null());
    new.retain(|_, v| !v.is_null());
    if old.is_empty() {
        return new;
    }
    let mut diff = Map::new();
    for (key, value) in &new {
        if old.get(key) != Some(value) {
            diff.insert(key.clone(), value.clone());
        }
    }
    for key in old.keys() {
        if !new.contains_key(key) {
            diff.insert(key.clone(), Value::Null);
        }
    }
    diff
}

/// Appends `text` as a JSON string literal.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    let mut start = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{byte:04x}"));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

fn text_of<'a>(value: ValueRef<'a>) -> rusqlite::Result<&'a str> {
    match value {
        ValueRef::Text(t) => std::str::from_utf8(t).map_err(|e| rusqlite::Error::Utf8Error(0, e)),
        _ => Err(user_error("expected a text argument")),
    }
}

/// Appends an SQL value as JSON, the way SQLite's `json_object` renders it (reals keep
/// their decimal point, so `1.0` stays distinct from `1`).
fn push_sql_value(out: &mut String, value: ValueRef<'_>) -> rusqlite::Result<()> {
    use std::fmt::Write;
    match value {
        ValueRef::Null => out.push_str("null"),
        ValueRef::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        ValueRef::Real(r) if r.is_finite() => {
            let _ = write!(out, "{r:?}");
        }
        ValueRef::Real(_) => out.push_str("null"),
        ValueRef::Text(_) => push_json_string(out, text_of(value)?),
        ValueRef::Blob(_) => return Err(user_error("JSON cannot hold BLOB values")),
    }
    Ok(())
}

/// JSON value equality of two SQL values: `1` and `1.0` differ, NULL equals NULL.
fn same_value(a: ValueRef<'_>, b: ValueRef<'_>) -> bool {
    match (a, b) {
        (ValueRef::Null, ValueRef::Null) => true,
        (ValueRef::Integer(x), ValueRef::Integer(y)) => x == y,
        (ValueRef::Real(x), ValueRef::Real(y)) => x == y,
        (ValueRef::Text(x), ValueRef::Text(y)) | (ValueRef::Blob(x), ValueRef::Blob(y)) => x == y,
        _ => false,
    }
}

/// `{"op":<op>,"id":<id>,"type":<table>` — the common start of every entry.
fn entry_head(op: &str, table: &str, id: ValueRef<'_>) -> rusqlite::Result<String> {
    let mut out = String::with_capacity(128);
    out.push_str("{\"op\":\"");
    out.push_str(op);
    out.push_str("\",\"id\":");
    push_sql_value(&mut out, id)?;
    out.push_str(",\"type\":");
    push_json_string(&mut out, table);
    Ok(out)
}

/// Appends `,"metadata":"..."` unless the value is NULL, then closes the entry.
fn entry_tail(mut out: String, metadata: ValueRef<'_>) -> rusqlite::Result<String> {
    match metadata {
        ValueRef::Null => {}
        ValueRef::Text(_) => {
            out.push_str(",\"metadata\":");
            push_json_string(&mut out, text_of(metadata)?);
        }
        other => {
            // Metadata is a string on the wire; render numbers as their text.
            let mut rendered = String::new();
            push_sql_value(&mut rendered, other)?;
            out.push_str(",\"metadata\":");
            push_json_string(&mut out, &rendered);
        }
    }
    out.push('}');
    Ok(out)
}

/// `livesync_put_entry(table, id, metadata, key1, value1, ...)`: a PUT entry whose data
/// holds the non-NULL values. Keys arrive sorted (the SQL generator sorts them).
///
/// Building the entry straight from the SQL values, in one pass, is what keeps CRUD
/// capture cheap: this runs once per inserted row.
fn put_entry_json(ctx: &Context<'_>) -> rusqlite::Result<String> {
    if ctx.len() < 3 || ctx.len().is_multiple_of(2) {
        return Err(user_error("livesync_put_entry: bad argument count"));
    }
    let mut out = entry_head("PUT", text_of(ctx.get_raw(0))?, ctx.get_raw(1))?;
    out.push_str(",\"data\":{");
    let mut first = true;
    for pair in (3..ctx.len()).step_by(2) {
        let value = ctx.get_raw(pair + 1);
        if matches!(value, ValueRef::Null) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        push_json_string(&mut out, text_of(ctx.get_raw(pair))?);
        out.push(':');
        push_sql_value(&mut out, value)?;
    }
    out.push('}');
    entry_tail(out, ctx.get_raw(2))
}

/// `livesync_patch_entry(table, id, metadata, old_json, key1, old1, new1, ...)`: a PATCH
/// entry whose data is the PowerSync diff of the old and new values (see [`json_diff`]),
/// computed on the SQL values directly. `old_json` (previous values) is spliced in when
/// not NULL.
fn patch_entry_json(ctx: &Context<'_>) -> rusqlite::Result<String> {
    if ctx.len() < 4 || !(ctx.len() - 4).is_multiple_of(3) {
        return Err(user_error("livesync_patch_entry: bad argument count"));
    }
    let triples = (4..ctx.len()).step_by(3);
    let old_all_null = triples
        .clone()
        .all(|i| matches!(ctx.get_raw(i + 1), ValueRef::Null));
    let mut out = entry_head("PATCH", text_of(ctx.get_raw(0))?, ctx.get_raw(1))?;
    out.push_str(",\"data\":{");
    let mut first = true;
    for i in triples {
        let (old, new) = (ctx.get_raw(i + 1), ctx.get_raw(i + 2));
        let include = match (old, new) {
            (_, ValueRef::Null) => !matches!(old, ValueRef::Null),
            _ => old_all_null || !same_value(old, new),
        };
        if !include {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        push_json_string(&mut out, text_of(ctx.get_raw(i))?);
        out.push(':');
        push_sql_value(&mut out, new)?;
    }
    out.push('}');
    if let ValueRef::Text(_) = ctx.get_raw(3) {
        out.push_str(",\"old\":");
        out.push_str(text_of(ctx.get_raw(3))?);
    }
    entry_tail(out, ctx.get_raw(2))
}

/// `livesync_crud_entry(op, type, id, data, old, metadata)`: the JSON text stored in
/// `ps_crud.data`, with `data`, `old` and `metadata` present only when not NULL. `data`
/// and `old` are JSON text from SQLite's JSON functions and are spliced in unparsed.
fn crud_entry_json(ctx: &Context<'_>) -> rusqlite::Result<String> {
    let mut out = entry_head(
        text_of(ctx.get_raw(0))?,
        text_of(ctx.get_raw(1))?,
        ctx.get_raw(2),
    )?;
    for (index, key) in [(3, ",\"data\":"), (4, ",\"old\":")] {
        if let ValueRef::Text(_) = ctx.get_raw(index) {
            out.push_str(key);
            out.push_str(text_of(ctx.get_raw(index))?);
        }
    }
    entry_tail(out, ctx.get_raw(5))
}

#[cfg(test)]
mod tests {
    use super::json_diff;
    use serde_json::{Value, json};

    fn diff(old: Value, new: Value) -> Value {
        let (Value::Object(old), Value::Object(new)) = (old, new) else {
            unreachable!()
        };
        Value::Object(json_diff(old, new))
    }

    #[test]
    fn diff_follows_the_powersync_rules() {
        assert_eq!(diff(json!({}), json!({"a": 1, "b": null})), json!({"a": 1}));
        assert_eq!(diff(json!({"a": null}), json!({"a": 2})), json!({"a": 2}));
        assert_eq!(
            diff(json!({"a": 1, "b": "x", "c": 3}), json!({"a": 1, "b": "y"})),
            json!({"b": "y", "c": null})
        );
        // JSON value equality: 1 and 1.0 differ, 1.00 and 1.0 do not.
        assert_eq!(diff(json!({"a": 1}), json!({"a": 1.0})), json!({"a": 1.0}));
        let same: Value = serde_json::from_str(r#"{"a": 1.00}"#).unwrap();
        assert_eq!(diff(json!({"a": 1.0}), same), json!({}));
        assert_eq!(diff(json!({"a": 1}), json!({"a": "1"})), json!({"a": "1"}));
        // sorted keys
        assert_eq!(
            Value::Object(json_diff(
                Default::default(),
                serde_json::from_str::<serde_json::Map<_, _>>(r#"{"z":1,"a":2}"#).unwrap()
            ))
            .to_string(),
            r#"{"a":2,"z":1}"#
        );
    }
}
