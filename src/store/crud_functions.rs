//! The SQL functions the CRUD triggers call (see `schema/sql.rs`): upload ids
//! (`livesync_tx_id()`, `livesync_crud_id()`) and the builders of the CRUD entries' JSON
//! (`livesync_put_entry`, `livesync_patch_entry`, `livesync_crud_entry`,
//! `livesync_diff`, `livesync_differs`). Both registrations also install the general
//! functions of `sql_functions.rs` (`uuid()`), so every connection has them.
//!
//! The id functions exist with real counters only on the writer connection; reader
//! connections get versions that fail, so a write attempted there fails as "read-only"
//! rather than as "no such function" (SQLite resolves a trigger's functions when the
//! statement is prepared).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use serde_json::{Map, Value};

/// The upload id counters of the writer connection.
#[derive(Default)]
pub(crate) struct CrudIds {
    state: Mutex<IdState>,
}

#[derive(Default)]
struct IdState {
    /// Upload transaction id of the open SQLite transaction, once it recorded a write.
    current_tx: Option<i64>,
    /// Next upload transaction id to hand out.
    next_tx: i64,
    /// Next upload queue entry id (monotonic, never reused by committed entries).
    next_crud_id: i64,
    /// `(next_tx, next_crud_id)` when the open transaction first took an id, restored if
    /// it rolls back, so a rolled-back transaction leaves no gap.
    rollback_to: Option<(i64, i64)>,
    /// `PRAGMA data_version` when the counters were loaded: it changes when another
    /// connection commits.
    data_version: i64,
}

impl IdState {
    fn remember_counters(&mut self) {
        if self.rollback_to.is_none() {
            self.rollback_to = Some((self.next_tx, self.next_crud_id));
        }
    }
}

impl CrudIds {
    fn lock(&self) -> MutexGuard<'_, IdState> {
        // Plain counters: a panic while holding the lock cannot leave them inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id the next queued CRUD entry will get: it changes whenever a local write is
    /// recorded, which lets the sync engine notice writes racing a write-checkpoint request.
    pub(super) fn next_crud_id(&self) -> i64 {
        self.lock().next_crud_id
    }

    /// Called by the commit hook: the ids taken are used for good.
    pub(super) fn transaction_committed(&self) {
        let mut state = self.lock();
        state.current_tx = None;
        state.rollback_to = None;
    }

    /// Called by the rollback hook: the ids taken go back.
    pub(super) fn transaction_rolled_back(&self) {
        let mut state = self.lock();
        state.current_tx = None;
        if let Some((next_tx, next_crud_id)) = state.rollback_to.take() {
            state.next_tx = next_tx;
            state.next_crud_id = next_crud_id;
        }
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
        let data_version = conn.query_row("PRAGMA data_version", [], |row| row.get(0))?;
        let mut state = self.lock();
        state.data_version = data_version;
        state.next_tx = next_tx;
        state.next_crud_id = next_crud_id;
        state.current_tx = None;
        state.rollback_to = None;
        Ok(())
    }

    /// Reloads the counters if another connection committed since they were loaded.
    /// Called between jobs, when this connection holds no transaction.
    pub(super) fn reload_if_changed(&self, conn: &Connection) -> rusqlite::Result<()> {
        // Cached: this runs before every write job.
        let data_version: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |row| row.get(0))?;
        if data_version != self.lock().data_version {
            self.load_counters(conn)?;
        }
        Ok(())
    }

    /// Registers every CRUD function on the writer connection, the id functions backed
    /// by these counters.
    pub(super) fn register(self: &Arc<Self>, conn: &Connection) -> rusqlite::Result<()> {
        // Called from the CRUD triggers, hence usable from schema objects; not
        // deterministic, as every call may hand out a new id.
        let counter_flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_INNOCUOUS;
        let ids = Arc::clone(self);
        conn.create_scalar_function("livesync_tx_id", 0, counter_flags, move |_| {
            let mut state = ids.lock();
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
        let ids = Arc::clone(self);
        conn.create_scalar_function("livesync_crud_id", 0, counter_flags, move |_| {
            let mut state = ids.lock();
            state.remember_counters();
            let id = state.next_crud_id;
            state.next_crud_id += 1;
            Ok(id)
        })?;
        super::sql_functions::register(conn)?;
        register_entry_builders(conn)
    }
}

/// Registers the CRUD functions on a read-only connection: the id functions fail (a
/// write cannot succeed there anyway; SQLite reports it as read-only first).
#[cfg(not(target_arch = "wasm32"))] // the browser has no reader connections
pub(super) fn register_read_only(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_INNOCUOUS;
    for name in ["livesync_tx_id", "livesync_crud_id"] {
        conn.create_scalar_function(name, 0, flags, |_| -> rusqlite::Result<i64> {
            Err(user_error("local writes go through the writer connection"))
        })?;
    }
    super::sql_functions::register(conn)?;
    register_entry_builders(conn)
}

/// The pure functions that build CRUD entries' JSON.
fn register_entry_builders(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function("livesync_diff", 2, flags, |ctx| {
        let old = json_object_arg(ctx, 0)?;
        let new = json_object_arg(ctx, 1)?;
        Ok(Value::Object(json_diff(old, new)).to_string())
    })?;
    conn.create_scalar_function("livesync_put_entry", -1, flags, put_entry_json)?;
    conn.create_scalar_function("livesync_patch_entry", -1, flags, patch_entry_json)?;
    conn.create_scalar_function("livesync_differs", -1, flags, |ctx| {
        Ok((0..ctx.len() / 2).any(|i| !same_value(ctx.get_raw(2 * i), ctx.get_raw(2 * i + 1))))
    })?;
    conn.create_scalar_function("livesync_crud_entry", 6, flags, crud_entry_json)?;
    Ok(())
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

/// JSON text built byte by byte and handed to SQLite as TEXT.
///
/// Text from SQLite is UTF-8 by contract and only ASCII bytes ever need escaping, so the
/// builder copies bytes without re-validating them (as SQLite's own JSON functions do);
/// this runs once per written row.
struct JsonText(Vec<u8>);

impl rusqlite::ToSql for JsonText {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Text(
            &self.0,
        )))
    }
}

impl JsonText {
    /// `{"op":<op>,"id":<id>,"type":<table>` — the common start of every entry.
    fn entry(op: &[u8], table: &[u8], id: ValueRef<'_>) -> rusqlite::Result<Self> {
        let mut json = Self(Vec::with_capacity(160));
        json.raw(b"{\"op\":");
        json.string(op);
        json.raw(b",\"id\":");
        json.value(id)?;
        json.raw(b",\"type\":");
        json.string(table);
        Ok(json)
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// Appends `text` as a JSON string literal.
    fn string(&mut self, text: &[u8]) {
        self.0.push(b'"');
        let mut rest = text;
        while let Some(at) = rest
            .iter()
            .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        {
            self.0.extend_from_slice(&rest[..at]);
            match rest[at] {
                b'"' => self.raw(b"\\\""),
                b'\\' => self.raw(b"\\\\"),
                b'\n' => self.raw(b"\\n"),
                b'\r' => self.raw(b"\\r"),
                b'\t' => self.raw(b"\\t"),
                control => self.raw(format!("\\u{control:04x}").as_bytes()),
            }
            rest = &rest[at + 1..];
        }
        self.0.extend_from_slice(rest);
        self.0.push(b'"');
    }

    /// Appends an SQL value as JSON, the way SQLite's `json_object` renders it (reals keep
    /// their decimal point, so `1.0` stays distinct from `1`).
    fn value(&mut self, value: ValueRef<'_>) -> rusqlite::Result<()> {
        use std::io::Write;
        match value {
            ValueRef::Null => self.raw(b"null"),
            ValueRef::Integer(i) => {
                let _ = write!(self.0, "{i}");
            }
            ValueRef::Real(r) if r.is_finite() => {
                let _ = write!(self.0, "{r:?}");
            }
            ValueRef::Real(_) => {
                // JSON has no infinity; refusing beats uploading it as a NULL (which a
                // PATCH reads as "clear the column").
                return Err(user_error(
                    "REAL values in synced tables must be finite (got an infinity)",
                ));
            }
            ValueRef::Text(text) => self.string(text),
            ValueRef::Blob(_) => return Err(user_error("JSON cannot hold BLOB values")),
        }
        Ok(())
    }

    /// Appends `"key":value` pairs as an object: `pairs` yields key and value.
    fn object<'a>(
        &mut self,
        pairs: impl Iterator<Item = (ValueRef<'a>, ValueRef<'a>)>,
    ) -> rusqlite::Result<()> {
        self.0.push(b'{');
        let mut first = true;
        for (key, value) in pairs {
            if !first {
                self.0.push(b',');
            }
            first = false;
            self.string(text_of(key)?);
            self.0.push(b':');
            self.value(value)?;
        }
        self.0.push(b'}');
        Ok(())
    }

    /// Appends `,"metadata":"..."` unless the value is NULL, then closes the entry.
    fn finish(mut self, metadata: ValueRef<'_>) -> rusqlite::Result<Self> {
        match metadata {
            ValueRef::Null => {}
            ValueRef::Text(text) => {
                self.raw(b",\"metadata\":");
                self.string(text);
            }
            other => {
                // Metadata is a string on the wire; render numbers as their text.
                let mut rendered = Self(Vec::new());
                rendered.value(other)?;
                self.raw(b",\"metadata\":");
                self.string(&rendered.0);
            }
        }
        self.0.push(b'}');
        Ok(self)
    }
}

fn text_of(value: ValueRef<'_>) -> rusqlite::Result<&[u8]> {
    match value {
        ValueRef::Text(text) => Ok(text),
        _ => Err(user_error("expected a text argument")),
    }
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

/// `livesync_put_entry(table, id, metadata, key1, value1, ...)`: a PUT entry whose data
/// holds the non-NULL values. Keys arrive sorted (the SQL generator sorts them).
///
/// Building the entry straight from the SQL values, in one pass, is what keeps CRUD
/// capture cheap: this runs once per inserted row.
fn put_entry_json(ctx: &Context<'_>) -> rusqlite::Result<JsonText> {
    if ctx.len() < 3 || ctx.len().is_multiple_of(2) {
        return Err(user_error("livesync_put_entry: bad argument count"));
    }
    let mut json = JsonText::entry(b"PUT", text_of(ctx.get_raw(0))?, ctx.get_raw(1))?;
    json.raw(b",\"data\":");
    json.object(
        (3..ctx.len())
            .step_by(2)
            .map(|i| (ctx.get_raw(i), ctx.get_raw(i + 1)))
            .filter(|(_, value)| !matches!(value, ValueRef::Null)),
    )?;
    json.finish(ctx.get_raw(2))
}

/// `livesync_patch_entry(table, id, metadata, old_json, key1, old1, new1, ...)`: a PATCH
/// entry whose data is the PowerSync diff of the old and new values (see [`json_diff`]),
/// computed on the SQL values directly. `old_json` (previous values) is spliced in when
/// not NULL.
fn patch_entry_json(ctx: &Context<'_>) -> rusqlite::Result<JsonText> {
    if ctx.len() < 4 || !(ctx.len() - 4).is_multiple_of(3) {
        return Err(user_error("livesync_patch_entry: bad argument count"));
    }
    let triples = (4..ctx.len()).step_by(3);
    let old_all_null = triples
        .clone()
        .all(|i| matches!(ctx.get_raw(i + 1), ValueRef::Null));
    let mut json = JsonText::entry(b"PATCH", text_of(ctx.get_raw(0))?, ctx.get_raw(1))?;
    json.raw(b",\"data\":");
    json.object(
        triples
            .filter(|&i| {
                let (old, new) = (ctx.get_raw(i + 1), ctx.get_raw(i + 2));
                match new {
                    ValueRef::Null => !matches!(old, ValueRef::Null),
                    _ => old_all_null || !same_value(old, new),
                }
            })
            .map(|i| (ctx.get_raw(i), ctx.get_raw(i + 2))),
    )?;
    if let ValueRef::Text(old) = ctx.get_raw(3) {
        json.raw(b",\"old\":");
        json.raw(old);
    }
    json.finish(ctx.get_raw(2))
}

/// `livesync_crud_entry(op, type, id, data, old, metadata)`: the JSON text stored in
/// `ps_crud.data`, with `data`, `old` and `metadata` present only when not NULL. `data`
/// and `old` are JSON text from SQLite's JSON functions and are spliced in unparsed.
fn crud_entry_json(ctx: &Context<'_>) -> rusqlite::Result<JsonText> {
    let mut json = JsonText::entry(
        text_of(ctx.get_raw(0))?,
        text_of(ctx.get_raw(1))?,
        ctx.get_raw(2),
    )?;
    for (index, key) in [(3, &b",\"data\":"[..]), (4, &b",\"old\":"[..])] {
        if let ValueRef::Text(text) = ctx.get_raw(index) {
            json.raw(key);
            json.raw(text);
        }
    }
    json.finish(ctx.get_raw(5))
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
