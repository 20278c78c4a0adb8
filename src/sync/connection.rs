//! A connection to the sync service: the [`SyncSlot`] each database has, starting and
//! stopping the download and upload tasks, and the credentials they share
//! (docs/sync-protocol.md §8.2, §8.4).

use std::sync::Arc;

use tokio::sync::Notify;
use tracing::Instrument;

use super::checkpoint_requests::{Seeding, ServiceLink};
use super::options::SyncOptions;
use super::status::{StatusCell, SyncStatus};
use super::streams::{StreamRegistry, refresh_subscriptions};
use super::{apply, clear, download, schema_coverage, transport, upload, write_gate};
use crate::runtime::BackgroundTask;
use crate::{BackendConnector, Credentials, Database, Error, Result};

/// The sync part of a [`Database`]: its status and, while connected, its tasks.
#[derive(Debug)]
pub(crate) struct SyncSlot {
    pub(crate) status: StatusCell,
    pub(crate) streams: StreamRegistry,
    running: tokio::sync::Mutex<Option<Running>>,
}

impl SyncSlot {
    pub(crate) fn new() -> Self {
        Self {
            status: StatusCell::new(),
            streams: StreamRegistry::new(),
            running: tokio::sync::Mutex::new(None),
        }
    }
}

#[derive(Debug)]
struct Running {
    tasks: Vec<BackgroundTask>,
    link: Arc<ServiceLink>,
}

impl Running {
    async fn stop(self) {
        futures::future::join_all(self.tasks.into_iter().map(BackgroundTask::cancel)).await;
        // A checkpoint request waiting for this connection to seed gives up now.
        self.link
            .set_seeding(Seeding::Unavailable(Error::Disconnected(
                "the connection was stopped".into(),
            )));
    }
}

/// The service link of the running connection, if any.
pub(super) async fn current_link(db: &Database) -> Option<Arc<ServiceLink>> {
    let running = db.sync_slot().running.lock().await;
    running.as_ref().map(|running| Arc::clone(&running.link))
}

/// Everything the download and upload loops of one connection share.
pub(super) struct Engine<C> {
    pub(super) db: Database,
    pub(super) connector: C,
    pub(super) options: SyncOptions,
    /// The HTTP client, client id, cached credentials and checkpoint-request state,
    /// shared with `Database::request_checkpoint`.
    pub(super) link: Arc<ServiceLink>,
    /// Ask the upload loop for a round now (the stream just opened).
    pub(super) upload_now: Notify,
    /// The upload queue drained (and a write checkpoint was requested if needed).
    pub(super) upload_finished: Notify,
}

impl<C: BackendConnector> Engine<C> {
    pub(super) fn status(&self) -> &StatusCell {
        &self.db.sync_slot().status
    }

    pub(super) async fn credentials(&self) -> Result<Credentials> {
        if let Some(cached) = self.cached_credentials() {
            return Ok(cached);
        }
        let fetched = self.connector.fetch_credentials().await?;
        self.remember_credentials(fetched.clone())?;
        Ok(fetched)
    }

    /// Caches credentials for the next requests, once their endpoint is a usable URL.
    pub(super) fn remember_credentials(&self, credentials: Credentials) -> Result<()> {
        transport::service_url(&credentials.endpoint, "")?;
        self.link.set_credentials(Some(credentials));
        Ok(())
    }

    /// The cached credentials, unless their token expires within 30 s (then the next
    /// request fetches new ones instead of being refused).
    fn cached_credentials(&self) -> Option<Credentials> {
        let cached = self.link.cached_credentials()?;
        let soon = crate::runtime::system_now() + std::time::Duration::from_secs(30);
        let expiring = cached.expires_at.is_some_and(|expires| expires <= soon);
        (!expiring).then_some(cached)
    }

    pub(super) fn invalidate_credentials(&self) {
        self.link.set_credentials(None);
        self.connector.invalidate_credentials();
    }

    /// Notes an error from a request: a refused token is dropped so the next attempt
    /// fetches a new one.
    pub(super) fn check_auth(&self, error: Error) -> Error {
        if transport::is_unauthorized(&error) {
            self.invalidate_credentials();
        }
        error
    }
}

/// [`Database::connect`]: stops a previous connection, then starts the two loops.
pub(crate) async fn connect<C: BackendConnector>(
    db: &Database,
    connector: C,
    options: SyncOptions,
) -> Result<()> {
    let mut running = db.sync_slot().running.lock().await;
    if let Some(previous) = running.take() {
        previous.stop().await;
    }
    let mode = options.mode;
    let link = Arc::new(ServiceLink::new(
        // The backend fits the database's runtime: no tokio outside `Runtime::tokio()`.
        crate::http_client::HttpClient::for_runtime(
            db.runtime(),
            options.user_agent.as_deref(),
            options.compressed,
        )?,
        db.client_id().await?,
        mode,
        options.checkpoint_mode,
    ));
    let engine = Arc::new(Engine {
        db: db.clone(),
        link: Arc::clone(&link),
        connector,
        options,
        upload_now: Notify::new(),
        upload_finished: Notify::new(),
    });
    let span = tracing::info_span!("livesync_sync", client_id = %engine.link.client_id, ?mode);
    let mut tasks = Vec::with_capacity(2);
    if mode.downloads() {
        let synced_before = db.status().last_synced_at;
        // The one-time schema coverage warning rides along with the download loop (in the
        // same task, so `disconnect` cancels both and the task count stays two).
        let coverage = schema_coverage::warn_after_first_sync(db.clone(), synced_before);
        let download_loop = download::download_loop(Arc::clone(&engine));
        tasks.push(
            db.spawn(
                async move {
                    futures::join!(download_loop, coverage);
                }
                .instrument(span.clone()),
            )?,
        );
    }
    // Also in download-only mode, which hands nothing to the connector but may have to
    // ask for the write checkpoint an earlier session's upload left pending.
    match db.spawn(upload::upload_loop(engine).instrument(span)) {
        Ok(upload) => tasks.push(upload),
        Err(error) => {
            futures::future::join_all(tasks.into_iter().map(BackgroundTask::cancel)).await;
            return Err(error);
        }
    }
    *running = Some(Running { tasks, link });
    db.sync_slot().status.update(|s| s.mode = Some(mode));
    tracing::info!("sync started");
    Ok(())
}

/// [`Database::disconnect`]: stops the tasks and shows the stored state again.
pub(crate) async fn disconnect(db: &Database) {
    let running = db.sync_slot().running.lock().await.take();
    if let Some(running) = running {
        running.stop().await;
        tracing::info!("sync stopped");
    }
    db.sync_slot().status.update(|s| {
        s.connected = false;
        s.connecting = false;
        s.downloading = None;
        s.uploading = false;
        s.mode = None;
    });
    after_iteration(db).await;
}

/// What follows every end of a connection, whether the loop retries or the app
/// disconnected: the per-stream status goes back to what is stored (no progress, any
/// subscription change the connection did not get to), and an interrupted large
/// download leaves the WAL settings as for small writes.
pub(super) async fn after_iteration(db: &Database) {
    if let Err(error) = refresh_subscriptions(db).await {
        tracing::debug!(%error, "could not refresh stream subscriptions");
    }
    if let Err(error) = db.store().set_bulk_writes(false).await {
        tracing::debug!(%error, "could not reset WAL checkpointing");
    }
}

/// [`Database::disconnect_and_clear`].
pub(crate) async fn disconnect_and_clear(db: &Database, clear_local: bool) -> Result<()> {
    disconnect(db).await;
    let raw_tables = db.store().raw_tables();
    db.store()
        .transaction(move |tx| clear::clear(tx, clear_local, &raw_tables))
        .await?;
    db.sync_slot().status.update(|s| {
        *s = SyncStatus::default();
    });
    db.sync_slot().status.reset_applied_write_checkpoint();
    refresh_subscriptions(db).await
}

/// Loads the persisted part of the status (last sync times) when a database opens.
pub(crate) async fn load_offline_status(db: &Database) -> Result<()> {
    let (synced, applied) = db
        .store()
        .read(|conn| Ok((apply::sync_state(conn)?, write_gate::last_applied(conn)?)))
        .await?;
    db.sync_slot().status.set_synced(&synced);
    if let Some(applied) = applied {
        db.sync_slot()
            .status
            .record_applied_write_checkpoint(applied);
    }
    // Also sweeps subscriptions that expired while the app was closed.
    refresh_subscriptions(db).await
}
