//! The running sync engine: the download loop (one iteration per `/sync/stream`
//! request, reconnecting with a fixed delay), the upload loop, cached credentials, and
//! the `Database` methods that start, stop and observe them.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures::stream::BoxStream;
use futures::{Future, StreamExt};
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::iteration::{Iteration, Next};
use super::lines::LineSplitter;
use super::options::SyncOptions;
use super::protocol::SyncLine;
use super::status::{StatusCell, SyncStatus, now_micros};
use super::stream_state::{StreamState, offline_statuses};
use super::streams::StreamRegistry;
use super::{storage, subscriptions, transport};
use crate::{BackendConnector, Credentials, Database, Error, Result};

/// How long a write-checkpoint request may take before the upload round fails (and is
/// retried); a hung request would otherwise hold every later upload.
const WRITE_CHECKPOINT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A line longer than this is refused instead of buffered without bound.
const MAX_LINE_BYTES: usize = 256 * 1024 * 1024;

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
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Everything the loops share.
struct Engine<C> {
    db: Database,
    connector: C,
    options: SyncOptions,
    client_id: String,
    http: reqwest::Client,
    credentials: Mutex<Option<Credentials>>,
    /// Ask the upload loop for a round now (the stream just opened).
    upload_now: Notify,
    /// The upload queue drained (and a write checkpoint was requested if needed).
    upload_finished: Notify,
}

impl<C: BackendConnector> Engine<C> {
    fn status(&self) -> &StatusCell {
        &self.db.sync_slot().status
    }

    async fn credentials(&self) -> Result<Credentials> {
        if let Some(cached) = self.cached_credentials() {
            return Ok(cached);
        }
        let fetched = self.connector.fetch_credentials().await?;
        self.remember_credentials(fetched.clone())?;
        Ok(fetched)
    }

    /// Caches credentials for the next requests, once their endpoint is a usable URL.
    fn remember_credentials(&self, credentials: Credentials) -> Result<()> {
        transport::service_url(&credentials.endpoint, "")?;
        *self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(credentials);
        Ok(())
    }

    /// The cached credentials, unless their token expires within 30 s (then the next
    /// request fetches new ones instead of being refused).
    fn cached_credentials(&self) -> Option<Credentials> {
        let cached = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let soon = std::time::SystemTime::now() + std::time::Duration::from_secs(30);
        let expiring = cached.expires_at.is_some_and(|expires| expires <= soon);
        (!expiring).then_some(cached)
    }

    fn invalidate_credentials(&self) {
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.connector.invalidate_credentials();
    }

    /// Notes an error from a request: a refused token is dropped so the next attempt
    /// fetches a new one.
    fn check_auth(&self, error: Error) -> Error {
        if transport::is_unauthorized(&error) {
            self.invalidate_credentials();
        }
        error
    }
}

/// How an iteration ended.
enum End {
    /// Reconnect at once, without showing a disconnect (new credentials).
    Hidden,
    /// Reconnect after the retry delay.
    Delayed(Option<Error>),
}

async fn download_loop<C: BackendConnector>(engine: Arc<Engine<C>>) {
    loop {
        let end = iteration(&engine)
            .instrument(tracing::debug_span!("sync_iteration"))
            .await;
        // The per-stream status goes back to what is stored (no progress), including
        // subscription changes the ended iteration did not get to.
        if let Err(error) = engine.db.refresh_subscriptions().await {
            tracing::debug!(%error, "could not refresh stream subscriptions");
        }
        // An interrupted large download leaves the WAL settings as for small writes.
        if let Err(error) = engine.db.set_bulk_writes(false).await {
            tracing::debug!(%error, "could not reset WAL checkpointing");
        }
        if let End::Delayed(error) = end {
            if let Some(error) = &error {
                tracing::warn!(%error, "sync iteration failed; retrying after the delay");
            }
            engine.status().update(|s| {
                s.connected = false;
                s.connecting = false;
                s.downloading = None;
                if let Some(error) = error {
                    s.download_error = Some(error.into());
                }
            });
            tokio::time::sleep(engine.options.retry_delay).await;
        }
    }
}

async fn iteration<C: BackendConnector>(engine: &Engine<C>) -> End {
    engine.status().update(|s| {
        s.connecting = true;
        s.downloading = None;
    });
    match stream(engine).await {
        Ok(end) => end,
        Err(error) => End::Delayed(Some(engine.check_auth(error))),
    }
}

type CredentialsFuture<'a> = Pin<Box<dyn Future<Output = Result<Credentials>> + Send + 'a>>;

async fn stream<C: BackendConnector>(engine: &Engine<C>) -> Result<End> {
    let credentials = engine.credentials().await?;
    let registry = &engine.db.sync_slot().streams;
    // Subscribed before the subscriptions are read: a change after this point is seen.
    let mut subscription_changes = registry.changes();
    subscription_changes.borrow_and_update();
    let active = registry.active_keys();
    let now = now_micros();
    // Read on the writer, behind any data line still being stored by a previous
    // connection, so the `after` positions include it (never re-download an op).
    let (buckets, requested, rows) = engine
        .db
        .transaction(move |tx| {
            subscriptions::refresh_and_sweep(tx, &active, now)?;
            Ok((
                storage::requested_buckets(tx)?,
                subscriptions::requested(tx)?,
                subscriptions::rows(tx)?,
            ))
        })
        .await?;
    // A new iteration starts from what is stored (spec §7.2).
    engine
        .status()
        .update(|s| s.streams = offline_statuses(&rows, &s.streams));
    let request = transport::StreamRequest {
        buckets: &buckets,
        client_id: &engine.client_id,
        parameters: &engine.options.params,
        include_default_streams: engine.options.include_default_streams,
        subscriptions: &requested,
        app_metadata: &engine.options.app_metadata,
    };
    tracing::debug!(buckets = buckets.len(), "opening sync stream");
    let idle = engine.options.idle_timeout;
    let response = tokio::time::timeout(
        idle,
        transport::open_stream(&engine.http, &credentials, &request),
    )
    .await
    .map_err(|_| Error::StreamIdle(idle))??;
    let url = response.url().to_string();
    engine.status().update(|s| {
        s.connected = true;
        s.connecting = false;
    });
    // Writes made while offline go out as soon as the service is reachable.
    engine.upload_now.notify_one();

    let _live = registry.iteration_live();
    let mut iteration = Iteration::new(
        buckets.into_iter().map(|(name, _)| name).collect(),
        StreamState::new(requested, rows),
    );
    let mut body = response.bytes_stream();
    let mut splitter = LineSplitter::default();
    let mut refresh: Option<CredentialsFuture<'_>> = None;
    // Only bytes from the service move the idle deadline (not uploads or refreshes).
    let mut deadline = tokio::time::Instant::now() + idle;
    loop {
        tokio::select! {
            chunk = tokio::time::timeout_at(deadline, body.next()) => {
                let chunk = match chunk {
                    Err(_) => return Err(Error::StreamIdle(idle)),
                    Ok(None) => {
                        if let Some(line) = splitter.finish() {
                            let bytes = line.len();
                            let line = SyncLine::parse(line)?;
                            if let Some(end) = on_line(engine, &mut iteration, &mut refresh, line, bytes).await? {
                                return Ok(end);
                            }
                        }
                        tracing::debug!("sync stream ended");
                        return Ok(End::Delayed(None));
                    }
                    Ok(Some(chunk)) => chunk.map_err(|source| Error::Transport { url: url.clone(), source })?,
                };
                deadline = tokio::time::Instant::now() + idle;
                splitter.push(&chunk);
                while let Some(line) = splitter.next_line() {
                    let bytes = line.len();
                    let line = SyncLine::parse(line)?;
                    if let Some(end) = on_line(engine, &mut iteration, &mut refresh, line, bytes).await? {
                        return Ok(end);
                    }
                }
                if splitter.pending_len() > MAX_LINE_BYTES {
                    return Err(Error::Protocol(format!("a sync line exceeded {MAX_LINE_BYTES} bytes")));
                }
            }
            () = engine.upload_finished.notified() => {
                iteration.upload_finished(&engine.db, engine.status()).await?;
            }
            changed = subscription_changes.changed() => {
                if changed.is_ok() && check_subscriptions(engine, &mut iteration).await? {
                    return Ok(End::Hidden);
                }
            }
            fetched = async {
                match refresh.as_mut() {
                    Some(fetching) => fetching.await,
                    None => std::future::pending().await,
                }
            }, if refresh.is_some() => {
                refresh = None;
                match fetched {
                    Ok(fresh) if fresh.token == credentials.token => {
                        // The connector had nothing newer; keep streaming until expiry.
                        tracing::debug!("the connector returned the same token");
                    }
                    Ok(fresh) => {
                        engine.remember_credentials(fresh)?;
                        // Stored data lines must be counted in the next request's positions.
                        iteration.flush(engine.status()).await?;
                        tracing::debug!("reconnecting with refreshed credentials");
                        return Ok(End::Hidden);
                    }
                    // Keep streaming with the current token; the next keepalive retries.
                    Err(error) => tracing::warn!(%error, "could not refresh credentials"),
                }
            }
        }
    }
}

/// Handles one line; `Some` ends the iteration.
async fn on_line<'a, C: BackendConnector>(
    engine: &'a Engine<C>,
    iteration: &mut Iteration,
    refresh: &mut Option<CredentialsFuture<'a>>,
    line: SyncLine,
    bytes: usize,
) -> Result<Option<End>> {
    match iteration
        .handle(&engine.db, engine.status(), line, bytes)
        .await?
    {
        Next::Continue => Ok(None),
        Next::CheckSubscriptions => {
            let changed = check_subscriptions(engine, iteration).await?;
            Ok(changed.then_some(End::Hidden))
        }
        Next::RefreshCredentials => {
            // Keepalives renew subscription TTLs whatever the token's lifetime.
            if check_subscriptions(engine, iteration).await? {
                return Ok(Some(End::Hidden));
            }
            if refresh.is_none() {
                tracing::debug!("token expires soon; fetching new credentials");
                // The connector drops its cached token first (spec §8.4), so it fetches
                // a new one rather than handing back the expiring one.
                engine.connector.invalidate_credentials();
                *refresh = Some(Box::pin(engine.connector.fetch_credentials()));
            }
            Ok(None)
        }
        Next::TokenExpired => {
            engine.invalidate_credentials();
            Ok(Some(End::Delayed(None)))
        }
        Next::Reconnect(error) => Ok(Some(End::Delayed(error))),
    }
}

/// Renews subscription TTLs and drops expired ones (spec §6.5). `true` when the
/// subscriptions to request differ from this iteration's: it must reconnect (hidden),
/// after storing what it received so the new request resumes behind it.
async fn check_subscriptions<C: BackendConnector>(
    engine: &Engine<C>,
    iteration: &mut Iteration,
) -> Result<bool> {
    let active = engine.db.sync_slot().streams.active_keys();
    let now = now_micros();
    let (requested, rows) = engine
        .db
        .transaction(move |tx| {
            subscriptions::refresh_and_sweep(tx, &active, now)?;
            Ok((subscriptions::requested(tx)?, subscriptions::rows(tx)?))
        })
        .await?;
    if requested != iteration.streams().requested() {
        iteration.flush(engine.status()).await?;
        tracing::debug!("stream subscriptions changed; reconnecting with the new request");
        return Ok(true);
    }
    iteration.subscriptions_changed(rows, engine.status());
    Ok(false)
}

async fn upload_loop<C: BackendConnector>(engine: Arc<Engine<C>>) {
    let mut changes = engine.db.watch_tables(["ps_crud"]).with_initial_event();
    loop {
        tokio::select! {
            change = changes.next() => if change.is_none() { return },
            () = engine.upload_now.notified() => {}
        }
        loop {
            let round = upload_round(&engine)
                .instrument(tracing::debug_span!("upload"))
                .await;
            match round {
                Ok(()) => {
                    engine.status().update(|s| {
                        s.uploading = false;
                        s.upload_error = None;
                    });
                    engine.upload_finished.notify_one();
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "upload failed; retrying after the delay");
                    let error = engine.check_auth(error);
                    engine.status().update(|s| {
                        s.uploading = false;
                        s.upload_error = Some(error.into());
                    });
                    tokio::time::sleep(engine.options.retry_delay).await;
                }
            }
        }
        tokio::time::sleep(engine.options.crud_upload_throttle).await;
    }
}

/// Hands queued transactions to the connector until the queue is empty, then obtains
/// the write checkpoint that opens the download gate (spec §5.2, §8.5).
async fn upload_round<C: BackendConnector>(engine: &Engine<C>) -> Result<()> {
    let mut previous_first = None;
    loop {
        let first: Option<i64> = engine
            .db
            .read(|conn| Ok(conn.query_row("SELECT min(id) FROM ps_crud", [], |r| r.get(0))?))
            .await?;
        let Some(first) = first else { break };
        if previous_first == Some(first) {
            return Err(Error::UploadStalled(first));
        }
        previous_first = Some(first);
        engine.status().update(|s| s.uploading = true);
        engine.connector.upload_data(&engine.db).await?;
    }
    let needs_checkpoint = engine.db.read(storage::needs_write_checkpoint).await?;
    if needs_checkpoint {
        let before = engine.db.crud_counter().await?;
        let credentials = engine.credentials().await?;
        let request = transport::write_checkpoint(&engine.http, &credentials, &engine.client_id);
        let checkpoint = tokio::time::timeout(WRITE_CHECKPOINT_TIMEOUT, request)
            .await
            .map_err(|_| Error::StreamIdle(WRITE_CHECKPOINT_TIMEOUT))??;
        let set = engine
            .db
            .transaction_with_crud_counter(move |tx, now| {
                // A write that raced in needs its own round (and checkpoint).
                let set = storage::crud_queue_empty(tx)? && now == before;
                if set {
                    storage::set_gate_target(tx, checkpoint)?;
                }
                Ok(set)
            })
            .await?;
        tracing::debug!(checkpoint, set, "requested write checkpoint");
    }
    Ok(())
}

impl Database {
    /// Starts syncing with the service `connector` points at: downloads run in a
    /// background task that reconnects after failures, and local writes are uploaded
    /// through `connector`. Connecting again first stops the previous connection. Needs
    /// a tokio runtime; returns once the tasks are started (watch
    /// [`status`](Self::status) or await [`wait_for_first_sync`](Self::wait_for_first_sync)).
    ///
    /// The background tasks hold a handle to the database, so syncing continues after
    /// the app drops its own handles: call [`disconnect`](Self::disconnect) or
    /// [`close`](Self::close) to stop it.
    ///
    /// ```no_run
    /// # async fn run(db: livesync::Database, connector: impl livesync::BackendConnector) -> livesync::Result<()> {
    /// db.connect(connector, livesync::SyncOptions::default()).await?;
    /// db.wait_for_first_sync().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect<C: BackendConnector>(
        &self,
        connector: C,
        options: SyncOptions,
    ) -> Result<()> {
        let mut running = self.sync_slot().running.lock().await;
        if let Some(previous) = running.take() {
            previous.stop().await;
        }
        let engine = Arc::new(Engine {
            db: self.clone(),
            client_id: self.client_id().await?,
            http: crate::http_client::http_client_with(options.user_agent.as_deref())?,
            connector,
            options,
            credentials: Mutex::new(None),
            upload_now: Notify::new(),
            upload_finished: Notify::new(),
        });
        let span = tracing::info_span!("livesync_sync", client_id = %engine.client_id);
        let tasks = vec![
            tokio::spawn(download_loop(Arc::clone(&engine)).instrument(span.clone())),
            tokio::spawn(upload_loop(engine).instrument(span)),
        ];
        *running = Some(Running { tasks });
        tracing::info!("sync started");
        Ok(())
    }

    /// Stops syncing: the stream is closed, uploads stop (an upload in progress is
    /// abandoned and retried at the next connect; nothing is lost), and no task keeps
    /// running. Local data stays. Does nothing when not connected.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
    /// db.disconnect().await;
    /// assert!(!db.status().connected && !db.status().connecting);
    /// # Ok(()) }
    /// ```
    pub async fn disconnect(&self) {
        let running = self.sync_slot().running.lock().await.take();
        if let Some(running) = running {
            running.stop().await;
            tracing::info!("sync stopped");
        }
        self.sync_slot().status.update(|s| {
            s.connected = false;
            s.connecting = false;
            s.downloading = None;
            s.uploading = false;
        });
        if let Err(error) = self.refresh_subscriptions().await {
            tracing::debug!(%error, "could not refresh stream subscriptions");
        }
        if let Err(error) = self.set_bulk_writes(false).await {
            tracing::debug!(%error, "could not reset WAL checkpointing");
        }
    }

    /// Disconnects, then deletes all synced data, sync state and queued uploads (for
    /// signing out). With `clear_local`, local-only tables are emptied too. The client id
    /// stays.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use livesync::{Column, Database, Schema, Table};
    /// let schema = Schema::new([Table::new("todos", [Column::text("title")])]);
    /// let db = Database::in_memory(schema).await?;
    /// db.execute("INSERT INTO todos(id, title) VALUES ('1', 'queued for upload')", ()).await?;
    /// db.disconnect_and_clear(false).await?;
    /// assert!(db.get_next_crud_transaction().await?.is_none());
    /// let left: i64 = db.read(|c| Ok(c.query_row("SELECT count(*) FROM todos", [], |r| r.get(0))?)).await?;
    /// assert_eq!(left, 0);
    /// # Ok(()) }
    /// ```
    pub async fn disconnect_and_clear(&self, clear_local: bool) -> Result<()> {
        self.disconnect().await;
        self.transaction(move |tx| storage::clear(tx, clear_local))
            .await?;
        self.sync_slot().status.update(|s| {
            *s = SyncStatus::default();
        });
        self.refresh_subscriptions().await
    }

    /// The current sync status (the persisted part, such as `has_synced`, is loaded when
    /// the database opens).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
    /// let status = db.status();
    /// assert!(!status.has_synced && status.any_error().is_none());
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> SyncStatus {
        self.sync_slot().status.get()
    }

    /// The current sync status, then every change of it, in order. A consumer that
    /// falls more than 64 changes behind skips to the current status.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use futures::StreamExt;
    /// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
    /// let mut statuses = db.watch_status();
    /// assert!(!statuses.next().await.unwrap().connected);
    /// # Ok(()) }
    /// ```
    pub fn watch_status(&self) -> BoxStream<'static, SyncStatus> {
        let cell = &self.sync_slot().status;
        let changes = cell.changes();
        let current = cell.subscribe();
        let first = current.borrow().clone();
        let rest = futures::stream::unfold(
            (changes, current, first.clone()),
            |(mut changes, current, mut last)| async move {
                loop {
                    let next = match changes.recv().await {
                        Ok(status) => status,
                        Err(RecvError::Lagged(_)) => current.borrow().clone(),
                        Err(RecvError::Closed) => return None,
                    };
                    // The first item may already include the oldest buffered change.
                    if next != last {
                        last = next.clone();
                        return Some((next, (changes, current, last)));
                    }
                }
            },
        );
        futures::stream::once(async move { first })
            .chain(rest)
            .boxed()
    }

    /// Waits until a complete checkpoint has been applied (at once if that happened in
    /// an earlier session). Combine with a timeout when offline start-up must not wait.
    ///
    /// ```no_run
    /// # async fn run(db: livesync::Database) -> livesync::Result<()> {
    /// use std::time::Duration;
    /// if tokio::time::timeout(Duration::from_secs(5), db.wait_for_first_sync()).await.is_err() {
    ///     println!("still downloading; showing what is local");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_first_sync(&self) -> Result<()> {
        let mut receiver = self.sync_slot().status.subscribe();
        receiver
            .wait_for(|s| s.has_synced)
            .await
            .map(drop)
            .map_err(|_| Error::Closed)
    }

    /// Loads the persisted part of the status (last sync times).
    pub(crate) async fn load_offline_status(&self) -> Result<()> {
        let synced = self.read(storage::sync_state).await?;
        self.sync_slot().status.set_synced(&synced);
        // Also sweeps subscriptions that expired while the app was closed.
        self.refresh_subscriptions().await
    }
}
