//! The upload queue: local writes recorded by the view triggers, read back as
//! [`CrudEntry`]s grouped into [`CrudTransaction`]s for the app's backend connector.

use futures::Stream;
use rusqlite::{Connection, OptionalExtension};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::sync::write_gate;
use crate::{Database, Error, Result};

/// The kind of a local write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum UpdateType {
    /// Insert or replace the whole row (`data` holds every non-null column).
    Put,
    /// Update some columns (`data` holds the changed ones; `null` means cleared).
    Patch,
    /// Delete the row.
    Delete,
}

/// One local write waiting to be uploaded.
#[derive(Debug, Clone, PartialEq)]
pub struct CrudEntry {
    /// Position in the upload queue (increasing).
    pub client_id: i64,
    /// The local transaction this write belongs to.
    pub transaction_id: Option<i64>,
    /// Put, patch or delete.
    pub op: UpdateType,
    /// The table name (not a view name override).
    pub table: String,
    /// The row's id.
    pub id: String,
    /// New values (`Put`: all non-null columns; `Patch`: the changed columns).
    pub data: Option<Map<String, Value>>,
    /// Previous values, for tables with `track_previous_values`.
    pub previous_values: Option<Map<String, Value>>,
    /// `_metadata` written with the change, for tables with `track_metadata`.
    pub metadata: Option<String>,
}

/// The JSON stored in `ps_crud.data`.
#[derive(Deserialize)]
struct StoredEntry {
    op: UpdateType,
    #[serde(rename = "type")]
    table: String,
    id: String,
    data: Option<Map<String, Value>>,
    old: Option<Map<String, Value>>,
    metadata: Option<String>,
}

impl CrudEntry {
    fn from_row(client_id: i64, transaction_id: Option<i64>, json: &str) -> Result<Self> {
        let stored: StoredEntry = serde_json::from_str(json)
            .map_err(|e| Error::json(format!("upload queue entry {client_id}"), e))?;
        Ok(Self {
            client_id,
            transaction_id,
            op: stored.op,
            table: stored.table,
            id: stored.id,
            data: stored.data,
            previous_values: stored.old,
            metadata: stored.metadata,
        })
    }

    /// The entry as JSON in the shape the PowerSync JS SDK gives backends:
    /// `{"op_id", "op", "type", "id", "tx_id", "data", "old", "metadata"}` (absent
    /// values left out). Handy for posting a batch to a backend.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use livesync::{Column, Database, Schema, Table};
    /// let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("title")])])).await?;
    /// db.execute("INSERT INTO todos(id, title) VALUES ('t1', 'milk')", ()).await?;
    /// let upload = db.get_next_crud_transaction().await?.unwrap();
    /// let json = upload.crud[0].to_json();
    /// assert_eq!(json["op"], "PUT");
    /// assert_eq!(json["type"], "todos");
    /// assert_eq!(json["data"]["title"], "milk");
    /// # Ok(()) }
    /// ```
    pub fn to_json(&self) -> Value {
        let mut json = Map::new();
        json.insert("op_id".into(), self.client_id.into());
        json.insert("op".into(), self.op.as_str().into());
        json.insert("type".into(), self.table.clone().into());
        json.insert("id".into(), self.id.clone().into());
        json.insert("tx_id".into(), self.transaction_id.into());
        if let Some(data) = &self.data {
            json.insert("data".into(), Value::Object(data.clone()));
        }
        if let Some(old) = &self.previous_values {
            json.insert("old".into(), Value::Object(old.clone()));
        }
        if let Some(metadata) = &self.metadata {
            json.insert("metadata".into(), metadata.clone().into());
        }
        Value::Object(json)
    }
}

impl UpdateType {
    /// `"PUT"`, `"PATCH"` or `"DELETE"`, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// All writes of one local transaction, oldest first. Upload them, then call
/// [`complete`](Self::complete).
#[derive(Debug, Clone)]
#[must_use = "the entries stay queued until `complete()` is called"]
pub struct CrudTransaction {
    /// The local transaction id (`None` for entries written without one).
    pub transaction_id: Option<i64>,
    /// The writes.
    pub crud: Vec<CrudEntry>,
    db: Database,
}

impl CrudTransaction {
    /// Removes this transaction's entries, and everything queued before them, from the
    /// upload queue.
    pub async fn complete(self) -> Result<()> {
        complete_through(&self.db, self.last_client_id(), None).await
    }

    /// Like [`complete`](Self::complete), for backends that create their own write
    /// checkpoints: once the queue is empty, downloaded data is held back until a
    /// checkpoint carrying `checkpoint` (or later) has arrived.
    pub async fn complete_with_checkpoint(self, checkpoint: i64) -> Result<()> {
        complete_through(&self.db, self.last_client_id(), Some(checkpoint)).await
    }

    fn last_client_id(&self) -> i64 {
        self.crud.last().map_or(0, |e| e.client_id)
    }
}

/// Up to `limit` of the oldest queued writes, across transactions.
#[derive(Debug, Clone)]
#[must_use = "the entries stay queued until `complete()` is called"]
pub struct CrudBatch {
    /// The writes, oldest first.
    pub crud: Vec<CrudEntry>,
    /// Whether more entries are queued after these.
    pub have_more: bool,
    db: Database,
}

impl CrudBatch {
    /// Removes these entries, and everything before them, from the upload queue.
    pub async fn complete(self) -> Result<()> {
        let last = self.crud.last().map_or(0, |e| e.client_id);
        complete_through(&self.db, last, None).await
    }
}

async fn complete_through(
    db: &Database,
    last_client_id: i64,
    checkpoint: Option<i64>,
) -> Result<()> {
    let insert_only = db.store().insert_only_tables();
    db.store().transaction(move |tx| {
        // Uploaded rows are re-derived from server data at the next full sync apply, so a
        // write the backend rejected reverts. (Marked here rather than by the triggers:
        // no apply can happen while the entries are queued anyway.)
        tx.execute(
            "INSERT OR IGNORE INTO ps_updated_rows(row_type, row_id) \
             SELECT json_extract(data, '$.type'), json_extract(data, '$.id') FROM ps_crud \
             WHERE id <= ?1 AND json_extract(data, '$.type') NOT IN (SELECT value FROM json_each(?2))",
            (last_client_id, insert_only),
        )?;
        // Persist the id counters' high-water marks before the entries that carry them go.
        tx.execute(
            "UPDATE ps_tx SET \
               next_tx = max(next_tx, ifnull((SELECT max(tx_id) + 1 FROM ps_crud WHERE id <= ?1), 1)), \
               next_crud_id = max(next_crud_id, ?1 + 1) \
             WHERE id = 1",
            [last_client_id],
        )?;
        tx.execute("DELETE FROM ps_crud WHERE id <= ?1", [last_client_id])?;
        write_gate::close_after_upload(tx, checkpoint)
    })
    .await
}

fn read_transaction(
    conn: &Connection,
    after: i64,
) -> Result<Option<(Option<i64>, Vec<CrudEntry>)>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, tx_id, data FROM ps_crud WHERE id > ?1 ORDER BY id")?;
    let mut rows = stmt.query([after])?;
    let mut entries: Vec<CrudEntry> = Vec::new();
    let mut tx_id = None;
    while let Some(row) = rows.next()? {
        let (id, row_tx): (i64, Option<i64>) = (row.get(0)?, row.get(1)?);
        if !entries.is_empty() && (row_tx.is_none() || row_tx != tx_id) {
            // A transaction is the run of queued entries sharing one (non-null) tx_id.
            // Entry ids may skip inside it (a rolled-back savepoint or a failed statement
            // consumed some), so they are not required to be consecutive.
            break;
        }
        tx_id = row_tx;
        let data: String = row.get(2)?;
        entries.push(CrudEntry::from_row(id, row_tx, &data)?);
        if row_tx.is_none() {
            break;
        }
    }
    Ok((!entries.is_empty()).then_some((tx_id, entries)))
}

/// [`Database::get_next_crud_transaction`].
pub(crate) async fn next_transaction(db: &Database) -> Result<Option<CrudTransaction>> {
    let found = db.store().read(|conn| read_transaction(conn, 0)).await?;
    Ok(found.map(|(transaction_id, crud)| CrudTransaction {
        transaction_id,
        crud,
        db: db.clone(),
    }))
}

/// [`Database::get_crud_batch`].
pub(crate) async fn batch(db: &Database, limit: usize) -> Result<Option<CrudBatch>> {
    let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
    let (crud, have_more) = db
        .store()
        .read(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT id, tx_id, data FROM ps_crud ORDER BY id LIMIT ?1")?;
            let rows = stmt.query_map([limit.saturating_add(1)], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<i64>>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })?;
            let mut crud = Vec::new();
            let mut have_more = false;
            for row in rows {
                let (id, tx_id, data) = row?;
                if crud.len() as i64 == limit {
                    have_more = true;
                    break;
                }
                crud.push(CrudEntry::from_row(id, tx_id, &data)?);
            }
            Ok((crud, have_more))
        })
        .await?;
    Ok((!crud.is_empty()).then(|| CrudBatch {
        crud,
        have_more,
        db: db.clone(),
    }))
}

/// [`Database::crud_transactions`].
pub(crate) fn transactions(
    db: &Database,
) -> impl Stream<Item = Result<CrudTransaction>> + Send + 'static {
    let db = db.clone();
    futures::stream::unfold(Some(0i64), move |after| {
        let db = db.clone();
        async move {
            let after = after?;
            match db
                .store()
                .read(move |conn| read_transaction(conn, after))
                .await
            {
                Ok(Some((transaction_id, crud))) => {
                    let last = crud.last().map_or(after, |e| e.client_id);
                    let tx = CrudTransaction {
                        transaction_id,
                        crud,
                        db,
                    };
                    Some((Ok(tx), Some(last)))
                }
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}

/// How many local writes wait for upload, from [`Database::upload_queue_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadQueueStats {
    /// Queued CRUD entries.
    pub count: u64,
    /// Their approximate size: the bytes of their JSON.
    pub size_bytes: u64,
}

/// [`Database::upload_queue_stats`].
pub(crate) async fn queue_stats(db: &Database) -> Result<UploadQueueStats> {
    db.store()
        .read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT count(*), ifnull(sum(length(data)), 0) FROM ps_crud",
                    [],
                    |r| {
                        Ok(UploadQueueStats {
                            count: r.get::<_, i64>(0)?.max(0) as u64,
                            size_bytes: r.get::<_, i64>(1)?.max(0) as u64,
                        })
                    },
                )
                .optional()?
                .unwrap_or_default())
        })
        .await
}
