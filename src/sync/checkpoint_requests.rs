//! Checkpoint requests (docs/sync-protocol.md §5.3): client-chosen write checkpoint ids,
//! posted to `POST /sync/checkpoint-request` of a PowerSync Service 1.24.0 or later, and
//! the public [`CheckpointRequest`] handle that waits until one is applied locally.
//!
//! Ids come from `ps_kv` (`write_gate` keeps them) and only grow. Every connection
//! first *seeds*: it proposes the last id it allocated (which re-posts a request that may
//! never have reached the service) and records the id the service holds, so the next id
//! allocated is new to the service even after a sign-out cleared the local counter. No
//! id is allocated before seeding succeeded; until then requests wait (bounded).
//!
//! The state lives in the connection's [`ServiceLink`] (with the HTTP client, client id
//! and cached credentials it needs), which is not generic over the connector, so that
//! [`Database::request_checkpoint`] can reach the running connection. The `ps_kv` keys
//! stay in `write_gate`; the gate's target is still set only by the upload round.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::options::{CheckpointMode, SyncMode};
use super::{transport, write_gate};
use crate::store::Store;
use crate::{Credentials, Database, Error, Result};

/// How long a write checkpoint or checkpoint request may take, waiting for the connection
/// to seed included, before the caller gets an error (an upload round is then retried).
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the current connection may allocate checkpoint request ids.
#[derive(Debug, Clone)]
pub(super) enum Seeding {
    /// A connection attempt is under way and has not seeded yet.
    Pending,
    /// Seeded: ids may be allocated and posted.
    Ready,
    /// The service answered 404: uploads use legacy write checkpoints.
    Unsupported(Error),
    /// No usable connection (a failed attempt, a stopped connection): requests fail
    /// with this error until the next attempt.
    Unavailable(Error),
}

/// What a connection shares with requests made outside its two loops: the HTTP client,
/// the client id, the cached credentials and the checkpoint-request state. Not generic
/// over the connector, so [`Database::request_checkpoint`] can reach it.
#[derive(Debug)]
pub(super) struct ServiceLink {
    pub(super) http: crate::http_client::HttpClient,
    pub(super) client_id: String,
    pub(super) mode: SyncMode,
    pub(super) checkpoints: CheckpointMode,
    credentials: Mutex<Option<Credentials>>,
    seeding: watch::Sender<Seeding>,
    warned_unsupported: AtomicBool,
}

impl ServiceLink {
    pub(super) fn new(
        http: crate::http_client::HttpClient,
        client_id: String,
        mode: SyncMode,
        checkpoints: CheckpointMode,
    ) -> Self {
        Self {
            http,
            client_id,
            mode,
            checkpoints,
            credentials: Mutex::new(None),
            seeding: watch::Sender::new(Seeding::Pending),
            warned_unsupported: AtomicBool::new(false),
        }
    }

    /// The cached credentials, whatever their expiry.
    pub(super) fn cached_credentials(&self) -> Option<Credentials> {
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_credentials(&self, credentials: Option<Credentials>) {
        *self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = credentials;
    }

    pub(super) fn uses_requests(&self) -> bool {
        self.checkpoints == CheckpointMode::Requests && self.mode.downloads()
    }

    pub(super) fn set_seeding(&self, seeding: Seeding) {
        self.seeding.send_replace(seeding);
    }

    /// Seeds a new connection (docs/sync-protocol.md §5.3 step 1): proposes the last
    /// allocated id (re-posting it) and records the id the service holds. A 404 is
    /// not an error of the connection: its uploads fall back to legacy write
    /// checkpoints. Any other failure is returned, and fails the connection attempt.
    pub(super) async fn seed(&self, store: &Store, credentials: &Credentials) -> Result<()> {
        let proposal = store.read(write_gate::seed_proposal).await?;
        let posted =
            transport::checkpoint_request(&self.http, credentials, &self.client_id, proposal).await;
        match posted {
            Ok(acknowledged) => {
                store
                    .transaction(move |tx| write_gate::record_requested(tx, acknowledged))
                    .await?;
                tracing::debug!(proposal, acknowledged, "seeded checkpoint requests");
                self.set_seeding(Seeding::Ready);
                Ok(())
            }
            Err(error @ Error::CheckpointRequestsUnsupported { .. }) => {
                if !self.warned_unsupported.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        %error,
                        "falling back to legacy write checkpoints for this connection"
                    );
                }
                self.set_seeding(Seeding::Unsupported(error));
                Ok(())
            }
            Err(error) => {
                self.set_seeding(Seeding::Unavailable(error.clone()));
                Err(error)
            }
        }
    }

    /// Waits (at most [`REQUEST_TIMEOUT`]) until the connection has seeded: `Ok(true)`
    /// when ids may be allocated, `Ok(false)` when the service has no checkpoint
    /// requests (use the legacy write checkpoint).
    async fn wait_until_seeded(&self, db: &Database) -> Result<bool> {
        let mut seeding = self.seeding.subscribe();
        let settled = seeding.wait_for(|s| !matches!(s, Seeding::Pending));
        let seeding = db
            .runtime()
            .timeout(REQUEST_TIMEOUT, settled)
            .await
            .map_err(|_| {
                Error::Disconnected(format!(
                    "the connection did not open within {REQUEST_TIMEOUT:?}"
                ))
            })?
            .map_err(|_| Error::Disconnected("the connection was stopped".into()))?
            .clone();
        match seeding {
            Seeding::Ready => Ok(true),
            Seeding::Unsupported(_) => Ok(false),
            Seeding::Unavailable(error) => Err(error),
            Seeding::Pending => Err(Error::Disconnected("the connection is starting".into())),
        }
    }

    /// The error [`Database::request_checkpoint`] gets when the service has no
    /// checkpoint requests.
    fn unsupported(&self) -> Error {
        match &*self.seeding.borrow() {
            Seeding::Unsupported(error) => error.clone(),
            _ => Error::CheckpointRequestsUnsupported {
                url: String::from("/sync/checkpoint-request"),
            },
        }
    }

    /// A write checkpoint for the uploads so far, in this connection's mode: a new
    /// checkpoint request id (acknowledged by the service), or a legacy write checkpoint
    /// (also after a 404 from the request route).
    pub(super) async fn write_checkpoint(
        &self,
        db: &Database,
        credentials: &Credentials,
    ) -> Result<i64> {
        if self.uses_requests() && self.wait_until_seeded(db).await? {
            return self.post_next(db, credentials).await;
        }
        let request = transport::write_checkpoint(&self.http, credentials, &self.client_id);
        db.runtime()
            .timeout(REQUEST_TIMEOUT, request)
            .await
            .map_err(|_| Error::WriteCheckpointTimeout(REQUEST_TIMEOUT))?
    }

    /// Allocates the next id (persisted first) and posts it; returns the id the service
    /// acknowledged.
    async fn post_next(&self, db: &Database, credentials: &Credentials) -> Result<i64> {
        let store = db.store();
        let id = store
            .transaction(|tx| write_gate::next_request_id(tx))
            .await?;
        let request = transport::checkpoint_request(&self.http, credentials, &self.client_id, id);
        let acknowledged = db
            .runtime()
            .timeout(REQUEST_TIMEOUT, request)
            .await
            .map_err(|_| Error::WriteCheckpointTimeout(REQUEST_TIMEOUT))??;
        store
            .transaction(move |tx| write_gate::record_requested(tx, acknowledged))
            .await?;
        tracing::debug!(id, acknowledged, "posted checkpoint request");
        Ok(acknowledged)
    }

    /// Posts the newest request again if no checkpoint has shown it yet and the
    /// connection is seeded (docs/sync-protocol.md §5.3 step 4); the same id, so a
    /// service that has it answers with a no-op. A checkpoint that carried it but was
    /// held back by local writes counts as shown: the service has the id.
    pub(super) async fn repost_unapplied(&self, db: &Database) -> Result<()> {
        if !matches!(*self.seeding.borrow(), Seeding::Ready) {
            return Ok(());
        }
        let (newest, seen) = db
            .store()
            .read(|conn| {
                Ok((
                    write_gate::last_requested(conn)?,
                    write_gate::last_seen(conn)?,
                ))
            })
            .await?;
        let shown = seen
            .unwrap_or(0)
            .max(db.sync_slot().status.applied_write_checkpoint());
        if newest <= shown {
            return Ok(());
        }
        let Some(credentials) = self.cached_credentials() else {
            return Ok(());
        };
        tracing::debug!(id = newest, "posting an unapplied checkpoint request again");
        let request =
            transport::checkpoint_request(&self.http, &credentials, &self.client_id, newest);
        let acknowledged = db
            .runtime()
            .timeout(REQUEST_TIMEOUT, request)
            .await
            .map_err(|_| Error::WriteCheckpointTimeout(REQUEST_TIMEOUT))??;
        db.store()
            .transaction(move |tx| write_gate::record_requested(tx, acknowledged))
            .await
    }

    /// [`Database::request_checkpoint`] on this connection.
    async fn request(&self, db: &Database) -> Result<i64> {
        if !self.mode.downloads() {
            return Err(Error::Disconnected(
                "the connection is upload-only (SyncMode::UploadOnly) and never contacts the sync service".into(),
            ));
        }
        if self.checkpoints != CheckpointMode::Requests {
            return Err(Error::CheckpointRequestsDisabled);
        }
        if !self.wait_until_seeded(db).await? {
            return Err(self.unsupported());
        }
        let credentials = self.cached_credentials().ok_or_else(|| {
            Error::Disconnected("the connection is fetching new credentials".into())
        })?;
        self.post_next(db, &credentials).await
    }
}

/// A checkpoint request made with [`Database::request_checkpoint`]: wait with
/// [`wait_for_sync`](Self::wait_for_sync) until the local database has applied a
/// checkpoint at or after it, that is, until it shows everything the service had when
/// the request was made (an explicit "refresh" for a pull-to-refresh gesture or a
/// test).
///
/// The id lives in the database, so a handle stays usable across disconnects: a wait
/// interrupted by one fails, and the same handle can be awaited again after a
/// reconnect (the reconnect re-posts the newest request). After
/// [`disconnect_and_clear`](Database::disconnect_and_clear) request a new one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use livesync::testing::{BucketRule, TestSyncService};
/// use livesync::{CheckpointMode, Column, Database, Schema, SyncOptions, Table};
///
/// let service = TestSyncService::builder().rule(BucketRule::global("all", ["todos"])).start().await?;
/// let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("title")])])).await?;
/// let options = SyncOptions::default().checkpoint_mode(CheckpointMode::Requests);
/// db.connect(service.connector("u1"), options).await?;
///
/// // The backend changed something; make sure it is local before going on.
/// service.upsert_row("todos", "t1", serde_json::json!({"title": "from the server"}));
/// service.commit();
/// let request = db.request_checkpoint().await?;
/// request.wait_for_sync().await?;
/// assert!(request.has_synced());
/// let titles: Vec<String> = db.query("SELECT title FROM todos").fetch_all().await?;
/// assert_eq!(titles, ["from the server"]);
/// # db.disconnect().await; service.shutdown().await; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointRequest {
    id: i64,
    db: Database,
}

impl CheckpointRequest {
    /// The request id the service acknowledged.
    ///
    /// ```no_run
    /// # async fn run(db: livesync::Database) -> livesync::Result<()> {
    /// let request = db.request_checkpoint().await?;
    /// println!("waiting for checkpoint request {}", request.id());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Whether a checkpoint at or after this request has been applied locally.
    ///
    /// ```no_run
    /// # async fn run(db: livesync::Database) -> livesync::Result<()> {
    /// let request = db.request_checkpoint().await?;
    /// if !request.has_synced() {
    ///     println!("refreshing…");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn has_synced(&self) -> bool {
        self.db.sync_slot().status.applied_write_checkpoint() >= self.id
    }

    /// Waits until a checkpoint at or after this request has been applied locally (at
    /// once if it already was). Downloaded data held back by local writes counts only
    /// once it is applied, after the upload.
    ///
    /// # Errors
    /// [`Error::Disconnected`] when the connection stops or fails before that (a
    /// reconnecting connection, between attempts); the error in the status when a
    /// download or upload error shows while waiting; [`Error::Closed`] when the database
    /// closes. Await it again once the connection is back.
    ///
    /// ```no_run
    /// # async fn run(db: livesync::Database) -> livesync::Result<()> {
    /// use std::time::Duration;
    /// let request = db.request_checkpoint().await?;
    /// match tokio::time::timeout(Duration::from_secs(10), request.wait_for_sync()).await {
    ///     Ok(Ok(())) => println!("up to date"),
    ///     Ok(Err(error)) => println!("could not refresh: {error}"),
    ///     Err(_) => println!("still refreshing"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_sync(&self) -> Result<()> {
        let status = &self.db.sync_slot().status;
        let mut applied = status.watch_applied_write_checkpoint();
        let mut changes = status.subscribe();
        loop {
            if *applied.borrow_and_update() >= self.id {
                return Ok(());
            }
            if status.is_closed() {
                return Err(Error::Closed);
            }
            {
                let current = changes.borrow_and_update();
                if let Some(error) = current.any_error() {
                    return Err(error.error().clone());
                }
                if !current.connected && !current.connecting {
                    return Err(Error::Disconnected(format!(
                        "the connection ended before checkpoint request {} was applied",
                        self.id
                    )));
                }
            }
            tokio::select! {
                changed = applied.changed() => changed.map_err(|_| Error::Closed)?,
                changed = changes.changed() => changed.map_err(|_| Error::Closed)?,
            }
        }
    }
}

/// [`Database::request_checkpoint`].
pub(crate) async fn request_checkpoint(db: &Database) -> Result<CheckpointRequest> {
    let link = super::connection::current_link(db).await.ok_or_else(|| {
        Error::Disconnected("request_checkpoint was called while not connected".into())
    })?;
    let id = link.request(db).await?;
    Ok(CheckpointRequest { id, db: db.clone() })
}
