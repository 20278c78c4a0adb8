//! Sync streams, the app side (docs/sync-protocol.md §6): [`SyncStream`] names a stream and its
//! parameters, [`SyncStream::subscribe`] keeps it synced while the returned
//! [`SyncStreamSubscription`] lives (and for a TTL afterwards).
//!
//! Subscriptions are stored in the database (they survive restarts); which ones have live
//! handles is kept in memory here, in the [`StreamRegistry`] of each database.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::status::{SyncStreamStatus, now_micros};
use super::stream_state::offline_statuses;
use super::subscriptions::{self, StreamKey};
use crate::{Database, Error, Result};

/// How long a subscription outlives its last handle unless set otherwise (one day, as
/// in the official SDKs).
pub const DEFAULT_STREAM_TTL: Duration = Duration::from_secs(86_400);

/// The longest TTL a subscription may have (about 100 years; expiry times are stored as
/// microseconds and must not overflow).
pub const MAX_STREAM_TTL: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Which subscriptions have live handles, and a signal when that or the stored
/// subscriptions change (the sync engine then rebuilds its request).
#[derive(Debug)]
pub(crate) struct StreamRegistry {
    handles: Mutex<BTreeMap<StreamKey, usize>>,
    changed: watch::Sender<u64>,
    /// A sync iteration is live and keeps the per-stream status itself.
    iteration_live: AtomicBool,
}

impl StreamRegistry {
    pub(crate) fn new() -> Self {
        Self {
            handles: Mutex::new(BTreeMap::new()),
            changed: watch::Sender::new(0),
            iteration_live: AtomicBool::new(false),
        }
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, BTreeMap<StreamKey, usize>> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn acquire(&self, key: &StreamKey) {
        *self.handles().entry(key.clone()).or_default() += 1;
    }

    /// Drops one handle; `true` when it was the key's last.
    fn release(&self, key: &StreamKey) -> bool {
        let mut handles = self.handles();
        match handles.get_mut(key) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                handles.remove(key);
                true
            }
            None => false,
        }
    }

    /// The subscriptions with live handles.
    pub(crate) fn active_keys(&self) -> Vec<StreamKey> {
        self.handles().keys().cloned().collect()
    }

    /// Signals a change of the active set or the stored subscriptions.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn notify(&self) {
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Marks a sync iteration as live (it publishes the per-stream status) until the
    /// returned guard is dropped.
    pub(crate) fn iteration_live(&self) -> LiveGuard<'_> {
        self.iteration_live.store(true, Ordering::SeqCst);
        LiveGuard(self)
    }
}

pub(crate) struct LiveGuard<'a>(&'a StreamRegistry);

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.0.iteration_live.store(false, Ordering::SeqCst);
    }
}

/// Options for [`SyncStream::subscribe_with`].
///
/// ```
/// use std::time::Duration;
/// let options = livesync::SubscribeOptions::default()
///     .ttl(Duration::from_secs(3600)) // kept for an hour after the last handle drops
///     .priority(1); // synced before priority 2 and 3 data
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct SubscribeOptions {
    ttl: Option<Duration>,
    priority: Option<u8>,
}

impl SubscribeOptions {
    /// How long the subscription stays after its last handle is dropped (default
    /// [`DEFAULT_STREAM_TTL`]; whole seconds, at least one).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sync this subscription's data at `priority` (0 highest … 3) instead of the
    /// stream's own priority.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }
}

/// A sync stream of the service's sync config with parameters, from
/// [`Database::sync_stream`]. Subscribing makes the service send its data.
///
/// ```no_run
/// # async fn run(db: livesync::Database) -> livesync::Result<()> {
/// use serde_json::json;
/// let todos = db.sync_stream("list_todos", json!({"list_id": "l1"}));
/// let subscription = todos.subscribe().await?;
/// subscription.wait_for_first_sync().await?; // the list's todos are in the database
/// drop(subscription); // kept for the TTL (a day by default), then removed
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a sync stream is not subscribed until `subscribe()`"]
pub struct SyncStream {
    db: Database,
    name: String,
    parameters: Option<Value>,
}

/// Renews the TTLs of subscriptions with handles, drops expired ones, publishes the
/// stored subscriptions (unless a live connection does) and tells the engine.
pub(crate) async fn refresh_subscriptions(db: &Database) -> Result<()> {
    let registry = &db.sync_slot().streams;
    let active = registry.active_keys();
    let now = now_micros();
    let stored = db
        .store()
        .transaction(move |tx| subscriptions::refreshed(tx, &active, now))
        .await?;
    if !registry.iteration_live.load(Ordering::SeqCst) {
        db.sync_slot()
            .status
            .update(|s| s.streams = offline_statuses(&stored.rows, &s.streams));
    }
    registry.notify();
    Ok(())
}

impl SyncStream {
    pub(crate) fn new(db: Database, name: String, parameters: Option<Value>) -> Self {
        Self {
            db,
            name,
            parameters: parameters.filter(|p| !p.is_null()),
        }
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subscription parameters, `None` for none.
    pub fn parameters(&self) -> Option<&Value> {
        self.parameters.as_ref()
    }

    fn key(&self) -> Result<StreamKey> {
        StreamKey::new(&self.name, self.parameters.as_ref().unwrap_or(&Value::Null))
    }

    /// Subscribes with the default TTL and the stream's own priority: see
    /// [`subscribe_with`](Self::subscribe_with).
    ///
    /// ```no_run
    /// # async fn run(db: livesync::Database) -> livesync::Result<()> {
    /// let _subscription = db.sync_stream("lists", None).subscribe().await?;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(&self) -> Result<SyncStreamSubscription> {
        self.subscribe_with(SubscribeOptions::default()).await
    }

    /// Subscribes: the stream is requested from the service from now on (a live
    /// connection reconnects at once with the new request), and stays subscribed while
    /// the returned handle (or another one for the same stream and parameters) lives,
    /// then for `options.ttl`. Stored in the database: survives restarts.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for parameters that are not a JSON object, an empty
    /// name, a priority above 3 or a TTL under one second; database errors.
    ///
    /// ```no_run
    /// # async fn run(db: livesync::Database) -> livesync::Result<()> {
    /// use std::time::Duration;
    /// use livesync::SubscribeOptions;
    /// use serde_json::json;
    /// let urgent = db
    ///     .sync_stream("alerts", json!({"site": 4}))
    ///     .subscribe_with(SubscribeOptions::default().priority(0).ttl(Duration::from_secs(600)))
    ///     .await?;
    /// # drop(urgent); Ok(()) }
    /// ```
    pub async fn subscribe_with(
        &self,
        options: SubscribeOptions,
    ) -> Result<SyncStreamSubscription> {
        let key = self.key()?;
        if let Some(priority) = options.priority
            && priority > 3
        {
            return Err(Error::InvalidParameter(format!(
                "stream priority must be 0 (highest) to 3, got {priority}"
            )));
        }
        let ttl = options.ttl.unwrap_or(DEFAULT_STREAM_TTL).as_secs();
        if !(1..=MAX_STREAM_TTL.as_secs()).contains(&ttl) {
            return Err(Error::InvalidParameter(format!(
                "a stream subscription's TTL must be between one second and {} days, got {ttl} s",
                MAX_STREAM_TTL.as_secs() / 86_400
            )));
        }
        let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
        let stored = key.clone();
        let now = now_micros();
        self.db
            .store()
            .transaction(move |tx| {
                subscriptions::subscribe(tx, &stored, ttl, options.priority, now)
            })
            .await?;
        let registry = &self.db.sync_slot().streams;
        registry.acquire(&key);
        let handle = SyncStreamSubscription {
            db: self.db.clone(),
            key,
        };
        refresh_subscriptions(&self.db).await?;
        Ok(handle)
    }

    /// Ends the explicit subscription to this stream with these parameters, whatever
    /// handles are alive: it is no longer requested, and its data goes once the service
    /// stops sending it.
    ///
    /// ```no_run
    /// # async fn run(db: livesync::Database) -> livesync::Result<()> {
    /// db.sync_stream("lists", None).unsubscribe_all().await?;
    /// # Ok(()) }
    /// ```
    pub async fn unsubscribe_all(&self) -> Result<()> {
        let key = self.key()?;
        self.db
            .store()
            .transaction(move |tx| subscriptions::unsubscribe_all(tx, &key))
            .await?;
        refresh_subscriptions(&self.db).await
    }

    /// This stream's entry in the current [`SyncStatus`](crate::SyncStatus), if it is
    /// subscribed (explicitly or as a default stream).
    pub fn status(&self) -> Option<SyncStreamStatus> {
        self.db
            .status()
            .for_stream(&self.name, self.parameters.clone())
            .cloned()
    }
}

/// Keeps a stream subscribed while it lives, from [`SyncStream::subscribe`]. Dropping it
/// (or [`unsubscribe`](Self::unsubscribe)) starts the subscription's TTL.
///
/// ```no_run
/// # async fn run(db: livesync::Database) -> livesync::Result<()> {
/// let subscription = db.sync_stream("lists", None).subscribe().await?;
/// subscription.wait_for_first_sync().await?;
/// assert!(subscription.status().is_some_and(|s| s.has_synced()));
/// subscription.unsubscribe();
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping the subscription releases it at once"]
pub struct SyncStreamSubscription {
    db: Database,
    key: StreamKey,
}

impl SyncStreamSubscription {
    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// The subscription parameters, `None` for none.
    pub fn parameters(&self) -> Option<Value> {
        self.key.params_value()
    }

    /// This subscription's entry in the current [`SyncStatus`](crate::SyncStatus).
    pub fn status(&self) -> Option<SyncStreamStatus> {
        self.db
            .status()
            .for_stream(&self.key.name, self.key.params_value())
            .cloned()
    }

    /// Waits until the stream's data has been applied at least once (at once if that
    /// happened before, even in an earlier session). It waits as long as that takes (also
    /// while offline): wrap it in a timeout where the app must not wait.
    ///
    /// # Errors
    /// [`Error::Closed`] if the status can no longer change.
    pub async fn wait_for_first_sync(&self) -> Result<()> {
        let parameters = self.key.params_value();
        self.db
            .sync_slot()
            .status
            .wait_until(|status| {
                status
                    .for_stream(&self.key.name, parameters.clone())
                    .is_some_and(SyncStreamStatus::has_synced)
            })
            .await
    }

    /// Releases this handle (the same as dropping it).
    pub fn unsubscribe(self) {
        drop(self);
    }
}

impl Drop for SyncStreamSubscription {
    fn drop(&mut self) {
        let registry = &self.db.sync_slot().streams;
        if !registry.release(&self.key) {
            return;
        }
        // The last handle: the TTL counts from now. Stored in the background (drop
        // cannot wait); without a runtime the write is still queued on the writer.
        // The other held keys are renewed too: the sweep must not remove them.
        let mut keys = registry.active_keys();
        keys.push(self.key.clone());
        let now = now_micros();
        let renewed = self
            .db
            .store()
            .queue_transaction(move |tx| subscriptions::refresh_and_sweep(tx, &keys, now));
        let db = self.db.clone();
        let stored = self.db.spawn_short(async move {
            let refreshed = match renewed.await {
                Ok(()) => refresh_subscriptions(&db).await,
                Err(error) => Err(error),
            };
            if let Err(error) = refreshed {
                tracing::debug!(%error, "could not renew a released stream subscription");
            }
        });
        if stored.is_err() {
            registry.notify();
        }
    }
}
