//! Stream subscriptions as stored in `ps_stream_subscriptions` (docs/sync-protocol.md §6.2–6.4): what
//! the app subscribed to, what the request asks for, and what the last checkpoint said.
//!
//! Every function here runs on a connection (usually inside a write transaction); the
//! in-memory side (which handles are alive) lives in `streams`.

use rusqlite::{Connection, params};
use serde_json::Value;

use super::protocol::{DefaultMarker, ErrorSubject, StreamDescription};
use crate::{Error, Result};

/// Identifies a subscription: stream name and canonical parameter JSON (`null` for none).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct StreamKey {
    pub(crate) name: String,
    pub(crate) params: String,
}

impl StreamKey {
    /// Checks the parameters (a JSON object, or null for none) and canonicalises them.
    pub(crate) fn new(name: &str, params: &Value) -> Result<Self> {
        if name.trim().is_empty() {
            return Err(Error::InvalidParameter(
                "a sync stream needs a name (as defined in the service's sync config)".into(),
            ));
        }
        if !matches!(params, Value::Object(_) | Value::Null) {
            return Err(Error::InvalidParameter(format!(
                "parameters of sync stream {name:?} must be a JSON object (or null for none), got {params}"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            params: canonical_json(params),
        })
    }

    /// The parameters as JSON (`None` for none).
    pub(crate) fn params_value(&self) -> Option<Value> {
        parse_params(&self.params)
    }
}

fn parse_params(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(|v| !v.is_null())
}

/// JSON text with object keys sorted and no whitespace, so equal parameters always give
/// the same key (matching is by exact text, docs/sync-protocol.md §6.1), whatever serde_json's map order.
pub(crate) fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (index, (key, value)) in entries.into_iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(value, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// One row of `ps_stream_subscriptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubscriptionRow {
    pub(crate) id: i64,
    pub(crate) key: StreamKey,
    pub(crate) active: bool,
    pub(crate) is_default: bool,
    pub(crate) local_priority: Option<u8>,
    /// Seconds; set exactly for explicit subscriptions.
    pub(crate) ttl: Option<i64>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) last_synced_at: Option<i64>,
}

/// One entry of the request's `streams.subscriptions`, with the local row it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestedSubscription {
    pub(crate) id: i64,
    pub(crate) key: StreamKey,
    pub(crate) priority: Option<u8>,
}

impl RequestedSubscription {
    pub(crate) fn to_json(&self) -> Value {
        serde_json::json!({
            "stream": self.key.name,
            "parameters": self.key.params_value(),
            "override_priority": self.priority,
        })
    }
}

/// Adds or renews an explicit subscription (docs/sync-protocol.md §6.2 `subscribe`).
///
/// An existing explicit subscription keeps the higher of its priority and the new one
/// (a `NULL` "stream default" priority stays, as in the official client); one that was
/// only known as a default stream takes the requested priority.
pub(crate) fn subscribe(
    conn: &Connection,
    key: &StreamKey,
    ttl_secs: i64,
    priority: Option<u8>,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO ps_stream_subscriptions(stream_name, local_params, ttl, expires_at, local_priority) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT(stream_name, local_params) DO UPDATE SET ttl = excluded.ttl, expires_at = excluded.expires_at, \
         local_priority = CASE WHEN ttl IS NULL THEN excluded.local_priority \
           ELSE min(coalesce(excluded.local_priority, local_priority), local_priority) END",
    )?
    .execute(params![
        key.name,
        key.params,
        ttl_secs,
        expiry(now, ttl_secs),
        priority
    ])?;
    Ok(())
}

fn expiry(now: i64, ttl_secs: i64) -> i64 {
    now.saturating_add(ttl_secs.saturating_mul(1_000_000))
}

/// Ends the explicit subscription of `key` (docs/sync-protocol.md §6.2 `unsubscribe_all`): no longer
/// requested, removed once the service stops listing it.
pub(crate) fn unsubscribe_all(conn: &Connection, key: &StreamKey) -> Result<()> {
    conn.prepare_cached(
        "UPDATE ps_stream_subscriptions SET ttl = NULL, expires_at = NULL \
         WHERE stream_name = ?1 AND local_params = ?2",
    )?
    .execute(params![key.name, key.params])?;
    Ok(())
}

/// Renews the expiry of the subscriptions that have live handles, then deletes expired
/// ones and ones that are neither explicit nor listed by the service (docs/sync-protocol.md §6.2).
pub(crate) fn refresh_and_sweep(conn: &Connection, active: &[StreamKey], now: i64) -> Result<()> {
    let mut renew = conn.prepare_cached(
        "UPDATE ps_stream_subscriptions SET expires_at = ?3 + ttl * 1000000 \
         WHERE ttl IS NOT NULL AND stream_name = ?1 AND local_params = ?2",
    )?;
    for key in active {
        renew.execute(params![key.name, key.params, now])?;
    }
    let swept = conn
        .prepare_cached(
            "DELETE FROM ps_stream_subscriptions \
             WHERE expires_at < ?1 OR (ttl IS NULL AND NOT active)",
        )?
        .execute([now])?;
    if swept > 0 {
        tracing::debug!(swept, "removed expired stream subscriptions");
    }
    Ok(())
}

/// The stored subscriptions after a refresh: what the next request lists, and every row.
#[derive(Debug)]
pub(crate) struct Refreshed {
    pub(crate) requested: Vec<RequestedSubscription>,
    pub(crate) rows: Vec<SubscriptionRow>,
}

/// Renews the TTLs of `active` keys, drops expired subscriptions, then reads what is
/// left: the one "sweep, then read" step every connection and handle change runs.
pub(crate) fn refreshed(conn: &Connection, active: &[StreamKey], now: i64) -> Result<Refreshed> {
    refresh_and_sweep(conn, active, now)?;
    Ok(Refreshed {
        requested: requested(conn)?,
        rows: rows(conn)?,
    })
}

/// The explicit subscriptions, in the order the request lists them (docs/sync-protocol.md §6.3).
pub(crate) fn requested(conn: &Connection) -> Result<Vec<RequestedSubscription>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, stream_name, local_params, local_priority FROM ps_stream_subscriptions \
         WHERE ttl IS NOT NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(RequestedSubscription {
            id: r.get(0)?,
            key: StreamKey {
                name: r.get(1)?,
                params: r.get(2)?,
            },
            priority: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every stored subscription, by id.
pub(crate) fn rows(conn: &Connection) -> Result<Vec<SubscriptionRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, stream_name, local_params, active, is_default, local_priority, ttl, expires_at, \
         last_synced_at FROM ps_stream_subscriptions ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(SubscriptionRow {
            id: r.get(0)?,
            key: StreamKey {
                name: r.get(1)?,
                params: r.get(2)?,
            },
            active: r.get(3)?,
            is_default: r.get(4)?,
            local_priority: r.get(5)?,
            ttl: r.get(6)?,
            expires_at: r.get(7)?,
            last_synced_at: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// An error the service reported, attached to the subscription it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubscriptionError {
    pub(crate) id: i64,
    pub(crate) message: String,
}

/// Brings the table in line with a `checkpoint` line's `streams` (docs/sync-protocol.md §6.4 steps 1–4):
/// listed streams are active (with the service's `is_default`), default streams the app
/// never subscribed to get a row, and rows neither explicit nor listed go. Returns the
/// reported errors, attached to their rows.
pub(crate) fn reconcile(
    conn: &Connection,
    streams: &[StreamDescription],
    requested: &[RequestedSubscription],
) -> Result<Vec<SubscriptionError>> {
    conn.execute_batch("UPDATE ps_stream_subscriptions SET active = FALSE, is_default = FALSE")?;
    let mut errors = Vec::new();
    for stream in streams {
        let marked = conn
            .prepare_cached(
                "UPDATE ps_stream_subscriptions SET active = TRUE, is_default = ?2 WHERE stream_name = ?1",
            )?
            .execute(params![stream.name, stream.is_default])?;
        if marked == 0 && stream.is_default {
            conn.prepare_cached(
                "INSERT INTO ps_stream_subscriptions(stream_name, active, is_default) VALUES (?1, TRUE, TRUE)",
            )?
            .execute([&stream.name])?;
        }
        for error in &stream.errors {
            let subject = match error.subscription {
                ErrorSubject::Default(DefaultMarker::Default) => {
                    tracing::warn!(
                        stream = %stream.name,
                        "default subscription to the stream could not be resolved: {}",
                        error.message
                    );
                    default_row(conn, &stream.name)?
                }
                ErrorSubject::Other(_) => {
                    tracing::warn!(stream = %stream.name, "stream error: {}", error.message);
                    None
                }
                ErrorSubject::Request(index) => {
                    let requested = requested.get(index);
                    tracing::warn!(
                        stream = %stream.name,
                        parameters = requested.map_or("?", |r| r.key.params.as_str()),
                        "subscription to the stream could not be resolved: {}",
                        error.message
                    );
                    requested.map(|r| r.id)
                }
            };
            if let Some(id) = subject {
                errors.push(SubscriptionError {
                    id,
                    message: error.message.clone(),
                });
            }
        }
    }
    conn.execute_batch("DELETE FROM ps_stream_subscriptions WHERE ttl IS NULL AND NOT active")?;
    Ok(errors)
}

/// The row a `{"default": j}` reason refers to: the stream's parameterless row.
pub(crate) fn default_row(conn: &Connection, stream: &str) -> Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached(
            "SELECT id FROM ps_stream_subscriptions WHERE stream_name = ?1 AND local_params = 'null'",
        )?
        .query_row([stream], |r| r.get(0))
        .optional()?)
}

/// Forgets what the service said (for a sign-out): default subscriptions go, explicit
/// ones stay but are no longer active or synced.
pub(crate) fn clear(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM ps_stream_subscriptions WHERE ttl IS NULL; \
         UPDATE ps_stream_subscriptions SET active = FALSE, is_default = FALSE, last_synced_at = NULL;",
    )?;
    Ok(())
}

/// Records that the subscriptions `ids` were synced at `now` (docs/sync-protocol.md §6.6).
pub(crate) fn mark_synced(conn: &Connection, ids: &[i64], now: i64) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("UPDATE ps_stream_subscriptions SET last_synced_at = ?2 WHERE id = ?1")?;
    for id in ids {
        stmt.execute([*id, now])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_are_canonical_and_checked() {
        let a = StreamKey::new("lists", &json!({"b": [1, {"z": 1, "a": 2}], "a": "x"})).unwrap();
        assert_eq!(a.params, r#"{"a":"x","b":[1,{"a":2,"z":1}]}"#);
        assert_eq!(
            StreamKey::new("lists", &Value::Null).unwrap().params,
            "null"
        );
        assert_eq!(
            StreamKey::new("lists", &Value::Null)
                .unwrap()
                .params_value(),
            None
        );
        for bad in [json!(1), json!("x"), json!([1])] {
            let error = StreamKey::new("lists", &bad).unwrap_err();
            assert!(error.to_string().contains("JSON object"), "{error}");
        }
        assert!(StreamKey::new(" ", &Value::Null).is_err());
    }

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            crate::schema::sql::INTERNAL_TABLES_V3
                .split("INSERT INTO ps_migration")
                .next()
                .unwrap(),
        )
        .unwrap();
        conn
    }

    fn priority(conn: &Connection, key: &StreamKey) -> Option<u8> {
        conn.query_row(
            "SELECT local_priority FROM ps_stream_subscriptions WHERE stream_name = ?1 AND local_params = ?2",
            params![key.name, key.params],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn subscribing_again_keeps_the_higher_priority() {
        let conn = table();
        let key = StreamKey::new("lists", &Value::Null).unwrap();
        subscribe(&conn, &key, 60, Some(2), 0).unwrap();
        subscribe(&conn, &key, 60, Some(3), 0).unwrap();
        assert_eq!(
            priority(&conn, &key),
            Some(2),
            "a lower priority does not win"
        );
        subscribe(&conn, &key, 60, Some(1), 0).unwrap();
        assert_eq!(priority(&conn, &key), Some(1), "a higher one does");
        subscribe(&conn, &key, 60, None, 0).unwrap();
        assert_eq!(
            priority(&conn, &key),
            Some(1),
            "no priority keeps the old one"
        );

        let open = StreamKey::new("todos", &Value::Null).unwrap();
        subscribe(&conn, &open, 60, None, 0).unwrap();
        subscribe(&conn, &open, 60, Some(0), 0).unwrap();
        assert_eq!(
            priority(&conn, &open),
            None,
            "\"stream default\" stays (official SQL)"
        );

        // A row known only as a default stream takes the requested priority.
        conn.execute_batch("INSERT INTO ps_stream_subscriptions(stream_name, active, is_default) VALUES ('global', 1, 1)")
            .unwrap();
        let global = StreamKey::new("global", &Value::Null).unwrap();
        subscribe(&conn, &global, 60, Some(1), 0).unwrap();
        assert_eq!(priority(&conn, &global), Some(1));
    }

    #[test]
    fn the_sweep_keeps_held_keys_and_removes_expired_and_unlisted_ones() {
        let conn = table();
        let held = StreamKey::new("a", &Value::Null).unwrap();
        let released = StreamKey::new("b", &Value::Null).unwrap();
        subscribe(&conn, &held, 60, None, 0).unwrap();
        subscribe(&conn, &released, 60, None, 0).unwrap();
        conn.execute_batch("INSERT INTO ps_stream_subscriptions(stream_name) VALUES ('unlisted')")
            .unwrap();
        // 2 minutes later both expired, but `held` has a handle.
        refresh_and_sweep(&conn, std::slice::from_ref(&held), 120_000_000).unwrap();
        let left: Vec<String> = rows(&conn)
            .unwrap()
            .into_iter()
            .map(|r| r.key.name)
            .collect();
        assert_eq!(left, ["a"]);
        assert_eq!(rows(&conn).unwrap()[0].expires_at, Some(180_000_000));
    }
}
