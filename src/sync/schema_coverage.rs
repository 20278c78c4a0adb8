//! After the first complete sync of a connection, one warning when the schema and what
//! the service sends do not meet: synced tables that stayed empty, and rows of object
//! types the schema has no table for (kept in `ps_untyped`). Both usually mean a name
//! differs between the service's sync config and the app's schema, which would
//! otherwise show up only as an empty screen.

use std::time::SystemTime;

use futures::StreamExt;
use rusqlite::Connection;

use crate::schema::names;
use crate::{Database, Result};

/// What the first complete sync left in the database.
#[derive(Debug, Default, PartialEq, Eq)]
struct Coverage {
    /// Synced schema tables without a row, sorted.
    empty_tables: Vec<String>,
    /// Object types the service sent that no schema table stores: (type, rows), sorted.
    untyped: Vec<(String, i64)>,
}

/// Waits for a complete checkpoint applied after `synced_before` (the last sync time when
/// the connection started), then checks the tables once. Ends when the database closes;
/// runs as one of the connection's tasks, so a disconnect stops it.
pub(super) async fn warn_after_first_sync(db: Database, synced_before: Option<SystemTime>) {
    let mut statuses = db.watch_status();
    loop {
        match statuses.next().await {
            Some(status)
                if status.last_synced_at.is_some() && status.last_synced_at != synced_before =>
            {
                break;
            }
            Some(_) => {}
            None => return,
        }
    }
    match db.store().read(coverage).await {
        Ok(coverage) => coverage.warn(),
        Err(error) => tracing::debug!(%error, "could not check which tables the service syncs"),
    }
}

fn coverage(conn: &Connection) -> Result<Coverage> {
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB ?1")?
        .query_map([names::SYNCED_GLOB], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    tables.sort();
    let mut empty_tables = Vec::new();
    for table in &tables {
        let Some(object_type) = names::synced_type(table) else {
            continue;
        };
        let empty: bool = conn.query_row(
            &format!("SELECT NOT EXISTS (SELECT 1 FROM {})", names::quote(table)),
            [],
            |r| r.get(0),
        )?;
        if empty {
            empty_tables.push(object_type.to_owned());
        }
    }
    let untyped = conn
        .prepare("SELECT type, count(*) FROM ps_untyped GROUP BY type ORDER BY type")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Coverage {
        empty_tables,
        untyped,
    })
}

impl Coverage {
    fn warn(&self) {
        if !self.empty_tables.is_empty() {
            tracing::warn!(
                tables = %self.empty_tables.join(", "),
                "after the first complete sync these synced tables of the schema have no rows: \
                 if the service should send some, check that a stream of its sync config selects \
                 them under the same name as the schema's table (or `AS` that name), and that \
                 the user's token and stream parameters match rows"
            );
        }
        if !self.untyped.is_empty() {
            let types: Vec<String> = self
                .untyped
                .iter()
                .map(|(name, rows)| format!("{name} ({rows} rows)"))
                .collect();
            tracing::warn!(
                types = %types.join(", "),
                "the service sent rows of types the schema has no table for: they are kept aside \
                 (in ps_untyped) and appear once a table of that name is added to the schema; \
                 check for a name that differs between the sync config and the schema"
            );
        }
        if self.empty_tables.is_empty() && self.untyped.is_empty() {
            tracing::debug!("every synced table received rows");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tables_and_untyped_rows_are_found() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE ps_data__todos(id TEXT PRIMARY KEY, data TEXT);
             CREATE TABLE ps_data__lists(id TEXT PRIMARY KEY, data TEXT);
             CREATE TABLE ps_data_local__drafts(id TEXT PRIMARY KEY, data TEXT);
             CREATE TABLE ps_untyped(type TEXT NOT NULL, id TEXT NOT NULL, data TEXT, PRIMARY KEY(type, id));
             INSERT INTO ps_data__todos VALUES ('t1', '{}');
             INSERT INTO ps_untyped VALUES ('todo', 'a', '{}'), ('todo', 'b', '{}'), ('item', 'c', '{}');",
        )
        .unwrap();
        assert_eq!(
            coverage(&conn).unwrap(),
            Coverage {
                empty_tables: vec!["lists".into()],
                untyped: vec![("item".into(), 1), ("todo".into(), 2)],
            }
        );
    }
}
