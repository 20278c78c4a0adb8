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
        }
    }
}

impl SyncOptions {
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
    /// naming this option. The service splits large downloads into many lines, so only
    /// single rows larger than this need a higher limit.
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
}
