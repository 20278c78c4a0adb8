//! [`SyncStatus`]: what the sync engine is doing, as a value the UI can render, and the
//! cell that publishes changes of it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::options::SyncMode;
use crate::{Error, Result};

/// The priority number of a complete sync in [`PriorityStatus`] (every priority synced).
///
/// ```
/// assert_eq!(livesync::FULL_SYNC, i32::MAX);
/// ```
pub const FULL_SYNC: i32 = i32::MAX;

/// A snapshot of the sync engine's state, from [`Database::status`](crate::Database::status)
/// or [`Database::watch_status`](crate::Database::watch_status).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// let db = livesync::Database::in_memory(livesync::Schema::default()).await?;
/// let status = db.status();
/// assert!(!status.connected && !status.has_synced);
/// assert_eq!(status.last_synced_at, None);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SyncStatus {
    /// A sync stream is open (the service answered).
    pub connected: bool,
    /// A connection attempt is under way.
    pub connecting: bool,
    /// Progress towards the checkpoint being downloaded; `None` when idle.
    pub downloading: Option<DownloadProgress>,
    /// Local writes are being handed to the connector.
    pub uploading: bool,
    /// A complete checkpoint has been applied at least once (persisted across restarts).
    pub has_synced: bool,
    /// When the last complete checkpoint was applied.
    pub last_synced_at: Option<SystemTime>,
    /// Last sync per priority, highest priority (lowest number) first; an entry with
    /// priority [`FULL_SYNC`] means everything was synced at that time.
    pub priority_status: Vec<PriorityStatus>,
    /// Why the last download attempt failed; cleared when a checkpoint is applied (or a
    /// new connection delivers its first line). In
    /// [`SyncMode::DownloadOnly`] also why downloaded data is held back
    /// ([`Error::LocalWritesNotUploaded`]: queued writes nothing uploads).
    pub download_error: Option<SyncError>,
    /// Why the last upload failed; cleared by the next successful upload.
    pub upload_error: Option<SyncError>,
    /// Every stored stream subscription (explicit or default), oldest first.
    pub streams: Vec<SyncStreamStatus>,
    /// The [`SyncMode`] of the running connection (full, download-only or
    /// upload-only); `None` while not connected.
    ///
    /// ```
    /// # let status = livesync::SyncStatus::default();
    /// match status.mode {
    ///     Some(livesync::SyncMode::DownloadOnly) => println!("uploads paused"),
    ///     Some(livesync::SyncMode::UploadOnly) => println!("downloads paused"),
    ///     Some(_) => println!("syncing"),
    ///     None => println!("offline"),
    /// }
    /// ```
    pub mode: Option<SyncMode>,
}

impl SyncStatus {
    /// Whether a checkpoint is being downloaded.
    pub fn is_downloading(&self) -> bool {
        self.downloading.is_some()
    }

    /// When data of priority `priority` (0 = highest) was last synced: by a partial sync
    /// of that or a higher-numbered priority, or by a complete sync.
    pub fn last_synced_for_priority(&self, priority: u8) -> Option<SystemTime> {
        self.priority_status
            .iter()
            .find(|p| p.priority >= i32::from(priority))
            .map(|p| p.last_synced_at)
    }

    /// The download or upload error, if any.
    pub fn any_error(&self) -> Option<&SyncError> {
        self.download_error.as_ref().or(self.upload_error.as_ref())
    }

    /// The status of the subscription to stream `name` with `parameters` (`None` or
    /// JSON `null` for none), if there is one.
    ///
    /// ```
    /// # let status = livesync::SyncStatus::default();
    /// use serde_json::json;
    /// if let Some(lists) = status.for_stream("lists", json!({"owner": "u1"})) {
    ///     println!("lists synced: {}", lists.has_synced());
    /// }
    /// ```
    pub fn for_stream(
        &self,
        name: &str,
        parameters: impl Into<Option<serde_json::Value>>,
    ) -> Option<&SyncStreamStatus> {
        let parameters = parameters.into().filter(|p| !p.is_null());
        self.streams
            .iter()
            .find(|s| s.name == name && s.parameters == parameters)
    }
}

/// One stream subscription in [`SyncStatus::streams`]: what was asked for, what the
/// service said about it, and how far its data is.
///
/// ```
/// # let status = livesync::SyncStatus::default();
/// for stream in &status.streams {
///     let synced = stream.last_synced_at.map(|_| "synced").unwrap_or("not synced yet");
///     println!("{} {:?}: {synced}", stream.name, stream.parameters);
///     for error in &stream.errors {
///         eprintln!("the service refused it: {error}");
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SyncStreamStatus {
    /// The stream's name in the service's sync config.
    pub name: String,
    /// Subscription parameters (`None` for a parameterless or default subscription).
    pub parameters: Option<serde_json::Value>,
    /// The priority its data syncs at (the lowest priority of its buckets), once a
    /// checkpoint has listed them.
    pub priority: Option<u8>,
    /// The last checkpoint included the stream.
    pub active: bool,
    /// The service subscribes every client to this stream.
    pub is_default: bool,
    /// The app subscribed to it ([`SyncStream::subscribe`](crate::SyncStream::subscribe)).
    pub has_explicit_subscription: bool,
    /// When the subscription expires unless a handle holds it (explicit ones only).
    pub expires_at: Option<SystemTime>,
    /// When its data was last applied (persisted).
    pub last_synced_at: Option<SystemTime>,
    /// Operations of its buckets downloaded / to download, while a checkpoint downloads.
    pub progress: Option<StreamProgress>,
    /// Why the service could not resolve this subscription (from the last checkpoint).
    pub errors: Vec<String>,
}

impl SyncStreamStatus {
    /// Whether the stream's data has been applied at least once.
    pub fn has_synced(&self) -> bool {
        self.last_synced_at.is_some()
    }
}

/// Download progress of one stream's buckets, counted in operations.
///
/// ```
/// let progress = livesync::StreamProgress { downloaded: 1, total: 4 };
/// assert_eq!(progress.fraction(), 0.25);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamProgress {
    /// Operations received since the last applied checkpoint.
    pub downloaded: u64,
    /// Operations the current checkpoint adds over the last applied one.
    pub total: u64,
}

impl StreamProgress {
    /// `downloaded / total` between 0 and 1 (0 when there is nothing to download).
    pub fn fraction(&self) -> f64 {
        fraction(self.downloaded, self.total)
    }
}

/// When data up to one priority was last synced.
///
/// ```
/// # let status = livesync::SyncStatus::default();
/// for entry in &status.priority_status {
///     if entry.priority == livesync::FULL_SYNC {
///         println!("everything synced at {:?}", entry.last_synced_at);
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityStatus {
    /// The priority number (0 highest), or [`FULL_SYNC`].
    pub priority: i32,
    /// When it was synced.
    pub last_synced_at: SystemTime,
}

/// How much of the current checkpoint has been downloaded, counted in operations.
///
/// ```
/// # let progress = livesync::DownloadProgress::default();
/// println!("{}/{} ({:.0} %)", progress.downloaded, progress.total, progress.fraction() * 100.0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadProgress {
    /// Operations received since the last applied checkpoint.
    pub downloaded: u64,
    /// Operations the current checkpoint adds over the last applied one.
    pub total: u64,
    /// Per bucket priority present, highest priority (lowest number) first.
    pub per_priority: Vec<PriorityProgress>,
}

/// Download progress of the buckets of one priority (or, from
/// [`DownloadProgress::until_priority`], of all priorities up to one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PriorityProgress {
    /// The bucket priority (0 is the highest).
    pub priority: u8,
    /// Operations received since the last applied checkpoint.
    pub downloaded: u64,
    /// Operations the current checkpoint adds over the last applied one.
    pub total: u64,
}

impl PriorityProgress {
    /// `downloaded / total` between 0 and 1 (0 when there is nothing to download).
    pub fn fraction(&self) -> f64 {
        fraction(self.downloaded, self.total)
    }
}

impl DownloadProgress {
    /// `downloaded / total` between 0 and 1 (0 when there is nothing to download).
    pub fn fraction(&self) -> f64 {
        fraction(self.downloaded, self.total)
    }

    /// The progress over buckets of priority number ≤ `priority` (what a partial
    /// checkpoint of that priority waits for).
    ///
    /// ```
    /// use livesync::{DownloadProgress, PriorityProgress};
    /// let progress = DownloadProgress {
    ///     downloaded: 3,
    ///     total: 10,
    ///     per_priority: vec![
    ///         PriorityProgress { priority: 0, downloaded: 1, total: 1 },
    ///         PriorityProgress { priority: 3, downloaded: 2, total: 9 },
    ///     ],
    /// };
    /// assert_eq!(progress.until_priority(1).total, 1);
    /// ```
    pub fn until_priority(&self, priority: u8) -> PriorityProgress {
        self.per_priority
            .iter()
            .filter(|p| p.priority <= priority)
            .fold(
                PriorityProgress {
                    priority,
                    ..PriorityProgress::default()
                },
                |sum, p| PriorityProgress {
                    downloaded: sum.downloaded.saturating_add(p.downloaded),
                    total: sum.total.saturating_add(p.total),
                    ..sum
                },
            )
    }
}

fn fraction(done: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (done as f64 / total as f64).min(1.0)
    }
}

/// A sync error kept in the status: cheap to clone, displays the underlying [`Error`].
///
/// ```
/// # let status = livesync::SyncStatus::default();
/// if let Some(error) = &status.download_error {
///     if let livesync::Error::HttpStatus { status: 401, .. } = error.error() {
///         println!("signed out? {error}");
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct SyncError(Error);

impl SyncError {
    /// The error.
    pub fn error(&self) -> &Error {
        &self.0
    }
}

impl From<Error> for SyncError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl PartialEq for SyncError {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How many status changes a slow [`StatusCell::changes`] subscriber may fall behind
/// before it skips to the current status.
const CHANGE_BUFFER: usize = 64;

/// Publishes status changes; only real changes wake watchers.
///
/// The current value lives in a watch channel (for `status()` and waiting on a
/// condition); every change is also broadcast, so a status stream sees transient states
/// (an error that a quick retry clears) instead of only the latest value.
#[derive(Debug)]
pub(crate) struct StatusCell {
    sender: watch::Sender<SyncStatus>,
    changes: broadcast::Sender<SyncStatus>,
    /// Set by `Database::close`: waits end with `Error::Closed` (the senders live on in
    /// every clone of the handle, so the channels alone never report it).
    closed: AtomicBool,
    /// The largest `write_checkpoint` of a checkpoint applied in full since the database
    /// opened (or was cleared), 0 for none: what checkpoint requests wait for.
    applied_write_checkpoint: watch::Sender<i64>,
}

impl StatusCell {
    pub(crate) fn new() -> Self {
        Self {
            sender: watch::Sender::new(SyncStatus::default()),
            changes: broadcast::Sender::new(CHANGE_BUFFER),
            closed: AtomicBool::new(false),
            applied_write_checkpoint: watch::Sender::new(0),
        }
    }

    /// Whether the database was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// A checkpoint carrying `write_checkpoint` was applied in full.
    pub(crate) fn record_applied_write_checkpoint(&self, write_checkpoint: i64) {
        self.applied_write_checkpoint.send_if_modified(|applied| {
            let newer = write_checkpoint > *applied;
            if newer {
                *applied = write_checkpoint;
            }
            newer
        });
    }

    /// Forgets the applied write checkpoints (sign-out: the ids start again).
    pub(crate) fn reset_applied_write_checkpoint(&self) {
        self.applied_write_checkpoint.send_replace(0);
    }

    /// The largest write checkpoint applied in full (0 for none).
    pub(crate) fn applied_write_checkpoint(&self) -> i64 {
        *self.applied_write_checkpoint.borrow()
    }

    /// Follows [`applied_write_checkpoint`](Self::applied_write_checkpoint).
    pub(crate) fn watch_applied_write_checkpoint(&self) -> watch::Receiver<i64> {
        self.applied_write_checkpoint.subscribe()
    }

    /// The database was closed: every wait, current and future, ends with
    /// [`Error::Closed`].
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // Wakes the waiters so they see the flag.
        self.sender.send_modify(|_| {});
        self.applied_write_checkpoint.send_modify(|_| {});
    }

    /// Waits until `done` holds for the status; [`Error::Closed`] once the database is
    /// closed (also when `done` held before).
    pub(crate) async fn wait_until(&self, mut done: impl FnMut(&SyncStatus) -> bool) -> Result<()> {
        let closed = || self.closed.load(Ordering::SeqCst);
        self.subscribe()
            .wait_for(|status| closed() || done(status))
            .await
            .map_err(|_| Error::Closed)?;
        if closed() { Err(Error::Closed) } else { Ok(()) }
    }

    /// Every change from now on (subscribe before reading the current value).
    pub(crate) fn changes(&self) -> broadcast::Receiver<SyncStatus> {
        self.changes.subscribe()
    }

    pub(crate) fn get(&self) -> SyncStatus {
        self.sender.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<SyncStatus> {
        self.sender.subscribe()
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut SyncStatus)) {
        self.sender.send_if_modified(|status| {
            let before = status.clone();
            change(status);
            let changed = *status != before;
            if changed && self.changes.receiver_count() > 0 {
                // Sent while the watch value is locked, so changes are broadcast in the
                // order they were made.
                let _ = self.changes.send(status.clone());
            }
            changed
        });
    }

    /// The current status, then every change of it, in order; a consumer more than 64
    /// changes behind skips to the current status.
    pub(crate) fn watch(&self) -> BoxStream<'static, SyncStatus> {
        let changes = self.changes();
        let current = self.subscribe();
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

    /// Waits until a complete checkpoint has been applied.
    pub(crate) async fn wait_for_first_sync(&self) -> Result<()> {
        self.wait_until(|s| s.has_synced).await
    }

    /// Sets the persisted part (`priority_status`, `has_synced`, `last_synced_at`) from
    /// stored `(priority, µs)` pairs.
    pub(crate) fn set_synced(&self, stored: &[(i64, i64)]) {
        let priority_status = priority_status(stored);
        self.update(|status| apply_synced(status, priority_status));
    }
}

pub(crate) fn apply_synced(status: &mut SyncStatus, priority_status: Vec<PriorityStatus>) {
    let full = priority_status.iter().find(|p| p.priority == FULL_SYNC);
    status.has_synced = full.is_some();
    status.last_synced_at = full.map(|p| p.last_synced_at);
    status.priority_status = priority_status;
}

pub(crate) fn priority_status(stored: &[(i64, i64)]) -> Vec<PriorityStatus> {
    stored
        .iter()
        .map(|&(priority, micros)| PriorityStatus {
            priority: i32::try_from(priority).unwrap_or(FULL_SYNC),
            last_synced_at: from_micros(micros),
        })
        .collect()
}

/// The current Unix time in microseconds, for sync times and subscription expiry.
///
/// It is the later of the wall clock and "wall clock at first use + tokio's elapsed
/// time": in an app both agree (and a wall clock set back does not revive expired
/// subscriptions), while a test on tokio's paused clock moves subscription TTLs forward
/// with `tokio::time::advance`.
pub(crate) fn now_micros() -> i64 {
    static START: std::sync::OnceLock<(SystemTime, crate::runtime::Instant)> =
        std::sync::OnceLock::new();
    let wall = crate::runtime::system_now();
    let (wall_start, tokio_start) = *START.get_or_init(|| (wall, crate::runtime::ambient_now()));
    let tokio_elapsed = crate::runtime::ambient_now().saturating_duration_since(tokio_start);
    let now = wall.max(wall_start + tokio_elapsed);
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn from_micros(micros: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(micros.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_lookup_follows_partial_and_full_syncs() {
        let status = SyncStatus {
            priority_status: priority_status(&[(1, 10), (i64::from(FULL_SYNC), 5)]),
            ..Default::default()
        };
        assert_eq!(status.last_synced_for_priority(0), Some(from_micros(10)));
        assert_eq!(status.last_synced_for_priority(1), Some(from_micros(10)));
        assert_eq!(status.last_synced_for_priority(3), Some(from_micros(5)));
    }

    #[test]
    fn progress_sums_per_priority() {
        let progress = DownloadProgress {
            downloaded: 3,
            total: 12,
            per_priority: vec![
                PriorityProgress {
                    priority: 0,
                    downloaded: 1,
                    total: 1,
                },
                PriorityProgress {
                    priority: 2,
                    downloaded: 2,
                    total: u64::MAX,
                },
            ],
        };
        let first = progress.until_priority(0);
        assert_eq!((first.priority, first.downloaded, first.total), (0, 1, 1));
        // Sums saturate: a hostile count cannot wrap or panic.
        let all = progress.until_priority(3);
        assert_eq!((all.downloaded, all.total), (3, u64::MAX));
        assert!((progress.fraction() - 0.25).abs() < 1e-9);
        assert_eq!(DownloadProgress::default().fraction(), 0.0);
    }

    #[test]
    fn only_real_changes_notify() {
        let cell = StatusCell::new();
        let watcher = cell.subscribe();
        cell.update(|s| s.connected = false);
        assert!(!watcher.has_changed().unwrap());
        cell.update(|s| s.connected = true);
        assert!(watcher.has_changed().unwrap());
    }
}
