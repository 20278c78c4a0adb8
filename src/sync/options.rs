//! [`SyncOptions`]: how [`Database::connect`](crate::Database::connect) syncs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

/// Settings for [`Database::connect`](crate::Database::connect). The defaults match the
/// official SDKs (5 s fixed retry delay) with a 1 s upload throttle.
///
/// ```
/// use std::time::Duration;
/// use livesync::SyncOptions;
///
/// let options = SyncOptions::default()
///     .retry_delay(Duration::from_secs(2))
///     .param("region", "eu")
///     .app_metadata("app_version", "1.4.0")
///     .user_agent("todo-app/1.4.0");
/// assert_eq!(options.retry_delay_value(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SyncOptions {
    pub(crate) retry_delay: Duration,
    pub(crate) params: Map<String, Value>,
    pub(crate) crud_upload_throttle: Duration,
    pub(crate) app_metadata: BTreeMap<String, String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) idle_timeout: Duration,
    pub(crate) include_default_streams: bool,
    pub(crate) max_line_bytes: usize,
    pub(crate) compressed: bool,
    pub(crate) accept_bson: bool,
    pub(crate) mode: SyncMode,
    pub(crate) checkpoint_mode: CheckpointMode,
    pub(crate) checkpoint_repost_delay: Duration,
}

/// Which directions a connection syncs in ([`SyncOptions::mode`]). Switching is
/// disconnecting and connecting again with another mode; the upload queue stays as it
/// is in between, so nothing is lost.
///
/// ```
/// use livesync::{SyncMode, SyncOptions};
///
/// // On a metered network: keep the data current, upload later.
/// let options = SyncOptions::default().mode(SyncMode::DownloadOnly);
/// assert_eq!(options.mode_value(), SyncMode::DownloadOnly);
/// assert_eq!(SyncMode::default(), SyncMode::Full);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyncMode {
    /// Download and upload (the default).
    #[default]
    Full,
    /// Only the sync stream: the connector's `upload_data` is never called and local
    /// writes stay queued. As in the official SDKs, queued writes still hold downloaded
    /// data back (the write gate stays shut, docs/sync-protocol.md §5.5), so the status
    /// shows [`Error::LocalWritesNotUploaded`](crate::Error::LocalWritesNotUploaded) as
    /// its download error while a checkpoint waits for them; priority-0 data is applied
    /// regardless. A connection in [`Full`](Self::Full) or
    /// [`UploadOnly`](Self::UploadOnly) mode uploads them later.
    DownloadOnly,
    /// Only uploads: no sync stream is opened, the service is never contacted (no write
    /// checkpoint either: the next connection that downloads asks for it), and failed
    /// uploads are retried after [`SyncOptions::retry_delay`]. `status().connected`
    /// stays `false`.
    UploadOnly,
}

impl SyncMode {
    /// Whether this mode opens the sync stream.
    ///
    /// ```
    /// use livesync::SyncMode;
    /// assert!(SyncMode::Full.downloads() && SyncMode::DownloadOnly.downloads());
    /// assert!(!SyncMode::UploadOnly.downloads());
    /// ```
    pub fn downloads(self) -> bool {
        self != Self::UploadOnly
    }

    /// Whether this mode hands local writes to the connector.
    ///
    /// ```
    /// use livesync::SyncMode;
    /// assert!(SyncMode::Full.uploads() && SyncMode::UploadOnly.uploads());
    /// assert!(!SyncMode::DownloadOnly.uploads());
    /// ```
    pub fn uploads(self) -> bool {
        self != Self::DownloadOnly
    }
}

/// How a connection asks the service for the write checkpoint that confirms its uploads
/// ([`SyncOptions::checkpoint_mode`], docs/sync-protocol.md §5.2–§5.3).
///
/// ```
/// use livesync::{CheckpointMode, SyncOptions};
///
/// // PowerSync Service 1.24.0 or later:
/// let options = SyncOptions::default().checkpoint_mode(CheckpointMode::Requests);
/// assert_eq!(options.checkpoint_mode_value(), CheckpointMode::Requests);
/// assert_eq!(CheckpointMode::default(), CheckpointMode::Legacy);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckpointMode {
    /// `GET /write-checkpoint2.json`: the service picks the id. Works with every
    /// service version (the default, as in the official SDKs).
    #[default]
    Legacy,
    /// `POST /sync/checkpoint-request`: the client picks monotonic ids (persisted in
    /// the database) and the service acknowledges them; needs PowerSync Service 1.24.0
    /// or later. Enables [`Database::request_checkpoint`](crate::Database::request_checkpoint).
    /// A service that answers 404 (older than 1.24.0) is reported with a warning and
    /// the connection falls back to legacy write checkpoints for its uploads, so sync
    /// keeps working; `request_checkpoint` then fails with
    /// [`Error::CheckpointRequestsUnsupported`](crate::Error::CheckpointRequestsUnsupported).
    Requests,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            retry_delay: Duration::from_secs(5),
            params: Map::new(),
            crud_upload_throttle: Duration::from_secs(1),
            app_metadata: BTreeMap::new(),
            user_agent: None,
            idle_timeout: Duration::from_secs(90),
            include_default_streams: true,
            max_line_bytes: Self::DEFAULT_MAX_LINE_BYTES,
            compressed: true,
            accept_bson: Self::DEFAULT_ACCEPT_BSON,
            mode: SyncMode::Full,
            checkpoint_mode: CheckpointMode::Legacy,
            checkpoint_repost_delay: Self::DEFAULT_CHECKPOINT_REPOST_DELAY,
        }
    }
}

impl SyncOptions {
    /// The default of [`checkpoint_repost_delay`](Self::checkpoint_repost_delay): 10 s,
    /// as in the official SDKs.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(livesync::SyncOptions::DEFAULT_CHECKPOINT_REPOST_DELAY, Duration::from_secs(10));
    /// ```
    pub const DEFAULT_CHECKPOINT_REPOST_DELAY: Duration = Duration::from_secs(10);

    /// The default of [`accept_bson`](Self::accept_bson): `false`, NDJSON only. Measured
    /// on a 100k-row initial sync (README, sync benchmark): BSON took 0.94×–1.00× NDJSON's
    /// time and, with zstd, sent 1.05× its bytes; the row data is JSON text in both.
    ///
    /// ```
    /// assert!(!livesync::SyncOptions::DEFAULT_ACCEPT_BSON);
    /// ```
    pub const DEFAULT_ACCEPT_BSON: bool = false;

    /// The default of [`max_line_bytes`](Self::max_line_bytes): 32 MiB.
    pub const DEFAULT_MAX_LINE_BYTES: usize = 32 * 1024 * 1024;

    /// Wait this long after a failed (or ended) connection, or a failed upload, before
    /// trying again (default 5 s). `disconnect()` interrupts the wait.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The configured retry delay.
    pub fn retry_delay_value(&self) -> Duration {
        self.retry_delay
    }

    /// A client parameter for the service's sync rules (`request.parameters()` /
    /// `connection.parameters()`).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    /// Uploads start at most once per `throttle` (default 1 s); the first write after a
    /// quiet period uploads at once.
    pub fn crud_upload_throttle(mut self, throttle: Duration) -> Self {
        self.crud_upload_throttle = throttle;
        self
    }

    /// Whether the service should also send the streams its sync config marks as
    /// auto-subscribed (default `true`); explicit subscriptions are sent either way.
    ///
    /// ```
    /// let options = livesync::SyncOptions::default().include_default_streams(false);
    /// # let _ = options;
    /// ```
    pub fn include_default_streams(mut self, include: bool) -> Self {
        self.include_default_streams = include;
        self
    }

    /// Free-form metadata the service logs with the connection.
    pub fn app_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.app_metadata.insert(key.into(), value.into());
        self
    }

    /// Appended to livesync's `User-Agent` (for example `todo-app/1.4.0`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Reconnect when the stream sends nothing for this long (default 90 s; the service
    /// sends a keepalive about every 20 s), to notice dead connections.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The longest sync line accepted (default [`DEFAULT_MAX_LINE_BYTES`](Self::DEFAULT_MAX_LINE_BYTES), 32 MiB). A
    /// line is buffered whole before it is parsed, so this bounds the memory one line
    /// can take; a longer one fails the connection with [`Error::Protocol`](crate::Error)
    /// naming this option. On a BSON stream ([`accept_bson`](Self::accept_bson)) it bounds
    /// a document the same way, refused as soon as its length prefix arrives. The service
    /// splits large downloads into many lines, so only single rows larger than this need
    /// a higher limit.
    ///
    /// ```
    /// let options = livesync::SyncOptions::default().max_line_bytes(128 * 1024 * 1024);
    /// # let _ = options;
    /// ```
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes.max(1);
        self
    }

    /// Whether to ask the service for a compressed sync stream (default `true`:
    /// `Accept-Encoding: zstd, gzip`, decoded as the bytes arrive, never buffered whole).
    /// A large initial sync is several times smaller on the wire (see the README's sync
    /// benchmark); turn it off only to trade bandwidth for CPU on a fast local link. In the
    /// browser, `fetch` negotiates compression itself and this has no effect.
    ///
    /// ```
    /// let options = livesync::SyncOptions::default().compressed(false);
    /// # let _ = options;
    /// ```
    pub fn compressed(mut self, compressed: bool) -> Self {
        self.compressed = compressed;
        self
    }

    /// Whether to offer the service BSON framing for the sync stream (default
    /// [`DEFAULT_ACCEPT_BSON`](Self::DEFAULT_ACCEPT_BSON)). With `true` the request says
    /// `Accept: application/vnd.powersync.bson-stream;q=0.9,application/x-ndjson;q=0.8`,
    /// as the official SDKs do; with `false`, `Accept: application/x-ndjson`. Either way
    /// the framing is read from the response's `Content-Type`, so a service that answers
    /// NDJSON to a BSON offer still works. Both framings are parsed as the bytes arrive
    /// with the same limits ([`max_line_bytes`](Self::max_line_bytes) bounds a BSON
    /// document as it does a line); the README's sync benchmark compares them.
    ///
    /// ```
    /// let options = livesync::SyncOptions::default().accept_bson(true);
    /// assert!(options.accept_bson_value());
    /// ```
    pub fn accept_bson(mut self, accept: bool) -> Self {
        self.accept_bson = accept;
        self
    }

    /// Whether the sync stream request offers BSON framing (see
    /// [`accept_bson`](Self::accept_bson)).
    ///
    /// ```
    /// let options = livesync::SyncOptions::default();
    /// assert_eq!(options.accept_bson_value(), livesync::SyncOptions::DEFAULT_ACCEPT_BSON);
    /// ```
    pub fn accept_bson_value(&self) -> bool {
        self.accept_bson
    }

    /// Which directions to sync in (default [`SyncMode::Full`]); see [`SyncMode`].
    ///
    /// ```no_run
    /// # async fn run(db: livesync::Database, connector: impl livesync::BackendConnector + Clone) -> livesync::Result<()> {
    /// use livesync::{SyncMode, SyncOptions};
    /// db.connect(connector.clone(), SyncOptions::default().mode(SyncMode::DownloadOnly)).await?;
    /// // … later, on a good network: upload what was queued meanwhile.
    /// db.disconnect().await;
    /// db.connect(connector, SyncOptions::default()).await?;
    /// # Ok(()) }
    /// ```
    pub fn mode(mut self, mode: SyncMode) -> Self {
        self.mode = mode;
        self
    }

    /// The configured [`SyncMode`].
    ///
    /// ```
    /// assert_eq!(livesync::SyncOptions::default().mode_value(), livesync::SyncMode::Full);
    /// ```
    pub fn mode_value(&self) -> SyncMode {
        self.mode
    }

    /// How write checkpoints are requested (default [`CheckpointMode::Legacy`], which
    /// every service version supports); [`CheckpointMode::Requests`] needs PowerSync
    /// Service 1.24.0 or later and enables
    /// [`Database::request_checkpoint`](crate::Database::request_checkpoint).
    ///
    /// ```
    /// use livesync::{CheckpointMode, SyncOptions};
    /// let options = SyncOptions::default().checkpoint_mode(CheckpointMode::Requests);
    /// # let _ = options;
    /// ```
    pub fn checkpoint_mode(mut self, mode: CheckpointMode) -> Self {
        self.checkpoint_mode = mode;
        self
    }

    /// The configured [`CheckpointMode`].
    ///
    /// ```
    /// use livesync::{CheckpointMode, SyncOptions};
    /// assert_eq!(SyncOptions::default().checkpoint_mode_value(), CheckpointMode::Legacy);
    /// ```
    pub fn checkpoint_mode_value(&self) -> CheckpointMode {
        self.checkpoint_mode
    }

    /// In [`CheckpointMode::Requests`]: while connected, the newest checkpoint request
    /// that no applied checkpoint has shown yet is posted again (same id) after this
    /// long without news (default
    /// [`DEFAULT_CHECKPOINT_REPOST_DELAY`](Self::DEFAULT_CHECKPOINT_REPOST_DELAY), 10 s;
    /// at least 1 s). Posting an id again is a no-op for a service that has it; it
    /// recovers one the service lost. Every reconnect also posts it again.
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = livesync::SyncOptions::default().checkpoint_repost_delay(Duration::from_secs(30));
    /// # let _ = options;
    /// ```
    pub fn checkpoint_repost_delay(mut self, delay: Duration) -> Self {
        self.checkpoint_repost_delay = delay.max(Duration::from_secs(1));
        self
    }
}
