//! Per-transaction bookkeeping on the writer connection: which tables a transaction
//! touched (SQLite's update/commit/rollback hooks) and the SQL functions the CRUD
//! triggers call.
//!
//! SQLite runs the commit hook *before* the commit is visible to other connections, so
//! the hook only moves the touched tables to a "committed" list; the writer publishes
//! that list after the statement that committed has returned (see `writer.rs`).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
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
    /// Raw table names changed by the open transaction.
    touched: HashSet<String>,
    /// Change sets of transactions committed since the last [`ChangeTracker::take_committed`].
    committed: Vec<HashSet<String>>,
    /// Token of the open transaction (see `livesync_txn_token`).
    txn_token: Option<i64>,
    next_token: i64,
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
        conn.update_hook(Some(move |_: Action, _db: &str, table: &str, _rowid: i64| {
            let mut state = tracker.lock();
            if !state.touched.contains(table) {
                state.touched.insert(table.to_owned());
            }
        }))?;
        let tracker = Arc::clone(self);
        conn.commit_hook(Some(move || {
            let mut state = tracker.lock();
            state.txn_token = None;
            let touched = std::mem::take(&mut state.touched);
            if !touched.is_empty() {
                state.committed.push(touched);
            }
            false // never veto the commit
        }))?;
        let tracker = Arc::clone(self);
        conn.rollback_hook(Some(move || {
            let mut state = tracker.lock();
            state.txn_token = None;
            state.touched.clear();
        }))?;
        Ok(())
    }

    /// Registers the SQL functions the CRUD triggers call. Reader connections get them
    /// too, so a write attempted there fails as "read-only", not as "no such function".
    pub(super) fn register_functions(self: &Arc<Self>, conn: &Connection) -> rusqlite::Result<()> {
        self.lock().next_token = random_seed();
        let tracker = Arc::clone(self);
        conn.create_scalar_function(
            "livesync_txn_token",
            0,
            // Called from the CRUD triggers, hence usable from schema objects.
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_INNOCUOUS,
            move |_| {
                let mut state = tracker.lock();
                Ok(match state.txn_token {
                    Some(token) => token,
                    None => {
                        let token = state.next_token;
                        state.next_token = token.wrapping_add(1);
                        state.txn_token = Some(token);
                        token
                    }
                })
            },
        )?;
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

/// A per-process random start for transaction tokens, so a token left in `ps_tx` by an
/// earlier process is never mistaken for the current transaction's.
fn random_seed() -> i64 {
    RandomState::new().hash_one(std::process::id()) as i64
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

/// `livesync_crud_entry(op, type, id, data, old, metadata)`: the JSON text stored in
/// `ps_crud.data`, with `data`, `old` and `metadata` present only when not NULL.
///
/// `data` and `old` arrive as JSON text produced by SQLite's own JSON functions and are
/// spliced in unparsed; this runs once per written row, so it avoids a parse/serialise
/// round trip.
fn crud_entry_json(ctx: &Context<'_>) -> rusqlite::Result<String> {
    let text = |index: usize| -> rusqlite::Result<Option<String>> {
        Ok(match ctx.get_raw(index) {
            ValueRef::Null => None,
            ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Real(r) => Some(r.to_string()),
            ValueRef::Blob(_) => return Err(user_error("CRUD entry values cannot be blobs")),
        })
    };
    let quote = |s: &str| Value::from(s).to_string();
    let op = text(0)?.unwrap_or_default();
    let table = text(1)?.unwrap_or_default();
    let id = text(2)?.unwrap_or_default();
    let mut entry = format!(
        "{{\"op\":{},\"id\":{},\"type\":{}",
        quote(&op),
        quote(&id),
        quote(&table)
    );
    if let Some(data) = text(3)? {
        entry.push_str(",\"data\":");
        entry.push_str(&data);
    }
    if let Some(old) = text(4)? {
        entry.push_str(",\"old\":");
        entry.push_str(&old);
    }
    if let Some(metadata) = text(5)? {
        entry.push_str(",\"metadata\":");
        entry.push_str(&quote(&metadata));
    }
    entry.push('}');
    Ok(entry)
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
            Value::Object(json_diff(Default::default(), serde_json::from_str::<serde_json::Map<_, _>>(r#"{"z":1,"a":2}"#).unwrap())).to_string(),
            r#"{"a":2,"z":1}"#
        );
    }
}
