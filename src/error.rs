//! The one error type of livesync, with messages that say what to do next.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::ErrorCode;

/// Shorthand for `Result<T, livesync::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in livesync.
///
/// Errors are cheap to clone (the underlying library errors are shared), so one error
/// can be stored in a status, a UI signal and a log at once.
///
/// Each variant is something a caller can act on; the message names the object involved
/// and suggests a fix. SQLite failures are sorted into the variants an app usually wants
/// to handle on their own (`NotADatabase`, `Corrupt`, `ReadOnly`, `Busy`, `CannotOpen`); the rest
/// arrive as [`Error::Sqlite`], carrying the statement text when one was involved.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use livesync::{Database, Error, Schema};
/// let db = Database::in_memory(Schema::default()).await.unwrap();
/// let err = db.execute("SELEC 1", ()).await.unwrap_err();
/// assert!(matches!(err, Error::Sqlite { .. }));
/// assert!(err.to_string().contains("SELEC 1"));
/// # }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A statement failed inside SQLite (syntax error, constraint violation, ...).
    ///
    /// The message names app tables (`todos`), never the data tables behind them
    /// (`ps_data__todos`); the source is SQLite's error as it was reported.
    #[error("SQLite error: {}{}", sqlite_message(.source), sql_suffix(.sql))]
    Sqlite {
        /// The error reported by SQLite.
        #[source]
        source: Arc<rusqlite::Error>,
        /// The statement that failed, when known.
        sql: Option<String>,
    },

    /// The file exists but is not an SQLite database (or is encrypted or corrupt).
    #[error(
        "{} is not an SQLite database (or it is encrypted or corrupt): point livesync at a new path or restore the file from a backup",
        .path.display()
    )]
    NotADatabase {
        /// The path that was opened.
        path: PathBuf,
    },

    /// Another process has the database file open (livesync allows one process per file;
    /// within a process, opening a file again shares the handle already open).
    #[error(
        "{} is open in another process: livesync allows one process per database file; close the other instance of the app, or give each process its own file",
        .path.display()
    )]
    OpenInAnotherProcess {
        /// The path that was opened.
        path: PathBuf,
    },

    /// In the browser: another tab or worker of this app has the database open (livesync
    /// allows one per origin's storage, guarded by a Web Lock that the browser releases
    /// when that tab closes the database, reloads or closes).
    #[error(
        "{} is open in another tab or worker of this app (it holds livesync's Web Lock on the browser storage): close the other tab, or use the database from one tab only",
        .path.display()
    )]
    OpenInAnotherTab {
        /// The database name that was opened.
        path: PathBuf,
    },

    /// In the browser: the persistent storage livesync needs is not available here (OPFS
    /// outside a dedicated worker, private browsing, storage disabled, no Web Locks).
    #[error("browser storage unavailable: {reason}")]
    StorageUnavailable {
        /// What is missing and what to do instead.
        reason: String,
    },

    /// The database's storage is full: the disk, a browser's storage quota (OPFS,
    /// `QuotaExceededError`) or `PRAGMA max_page_count`. The write that hit it was rolled
    /// back (or, for the page's snapshot storage in the browser, is kept in memory and saved
    /// with the next write); everything before it is kept and reads go on.
    #[error(
        "the database's storage is full ({reason}): free space on the device or in the browser's storage for this site, or delete data; the failed write was not saved, everything before it is kept"
    )]
    StorageFull {
        /// What refused the write.
        reason: String,
    },

    /// The file is an SQLite database, but SQLite found malformed pages in it (a disk or
    /// file-system failure, or something other than SQLite wrote to it). Reported when the
    /// damage is met: at open if it hits the schema, otherwise by the first statement that
    /// reads a damaged page.
    #[error(
        "{} is corrupt (SQLite found malformed pages in it): restore it from a backup, or close every handle and delete it together with its -wal and -shm files so that livesync creates a new database and syncs the data down again (local writes not yet uploaded are lost)",
        .path.display()
    )]
    Corrupt {
        /// The path that was opened.
        path: PathBuf,
    },

    /// The database (or its directory, which must hold the WAL files) cannot be written.
    #[error(
        "{} is read-only: livesync needs write access to the database file and to its directory (for the -wal and -shm files); check permissions or open a writable copy",
        .path.display()
    )]
    ReadOnly {
        /// The path that was opened.
        path: PathBuf,
    },

    /// Another connection or process holds a lock for longer than the busy timeout.
    #[error(
        "the database is locked by another connection or process and stayed locked for the whole busy timeout: close the other writer, or raise `OpenOptions::busy_timeout`{}",
        sql_suffix(.sql)
    )]
    Busy {
        /// The statement that was waiting, when known.
        sql: Option<String>,
    },

    /// The file could not be opened or created at all.
    #[error(
        "cannot open database file {}: check that the directory exists and is writable ({source})",
        .path.display()
    )]
    CannotOpen {
        /// The path that was opened.
        path: PathBuf,
        /// The underlying SQLite error.
        #[source]
        source: Arc<rusqlite::Error>,
    },

    /// The schema is invalid, or applying it conflicts with objects already in the database.
    #[error("invalid schema: {message}")]
    Schema {
        /// What is wrong, naming the table, column or index and the rule it breaks.
        message: String,
    },

    /// A raw table's statements or SQLite table do not fit the rows sync brings, or its
    /// table is not there yet (see [`RawTable`](crate::RawTable)).
    #[error("raw table {table:?}: {message}")]
    RawTable {
        /// The raw table's name (the synced type).
        table: String,
        /// What went wrong and what to do about it.
        message: String,
    },

    /// A name used as an SQL identifier does not follow the identifier rules.
    #[error(
        "invalid {kind} name {name:?}: {reason} (names must match [A-Za-z_][A-Za-z0-9_]*; table and view names must not start with \"ps_\" or \"sqlite_\")"
    )]
    InvalidIdentifier {
        /// What the name is for: "table", "column", "view" or "index".
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// The database was closed with [`Database::close`](crate::Database::close).
    #[error("the database is closed: open it again with `Database::open` before using it")]
    Closed,

    /// A closure passed to `read`, `write` or `transaction` panicked. Any transaction it
    /// had open was rolled back and the database stays usable.
    #[error("a database closure panicked (its transaction was rolled back): {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },

    /// JSON stored in the database, or a schema JSON, could not be parsed.
    #[error("invalid JSON ({context}): {source}")]
    Json {
        /// What was being parsed.
        context: String,
        /// The parser's error.
        #[source]
        source: Arc<serde_json::Error>,
    },

    /// A query result column could not be decoded into the requested Rust type.
    #[error("cannot decode column {column:?}: {message}{}", sql_suffix(.sql))]
    Decode {
        /// The column (`#n` for positional decoding).
        column: String,
        /// What was expected and what was found.
        message: String,
        /// The query, when known.
        sql: Option<String>,
    },

    /// `fetch_one` found no row.
    #[error("the query returned no row{}: use fetch_optional when a missing row is expected", sql_suffix(.sql))]
    NotFound {
        /// The query.
        sql: Option<String>,
    },

    /// A value bound to a query parameter could not be converted, or names no parameter.
    #[error("invalid query parameter: {0}")]
    InvalidParameter(String),

    /// A value did not have the expected shape (for example a CRUD entry with an unknown `op`).
    #[error("unexpected data: {0}")]
    UnexpectedData(String),

    /// The app's [`BackendConnector`](crate::BackendConnector) reported a failure (its
    /// backend refused an upload, its auth could not issue a token, ...).
    #[error("the backend connector failed: {0}")]
    Connector(#[source] Arc<dyn std::error::Error + Send + Sync>),

    /// A sync service (or backend) answered with an error status. `code` and
    /// `description` come from the PowerSync error body when there was one
    /// (`PSYNC_S21xx` codes are authentication problems: check the token's `aud`, `exp`
    /// and signing key).
    /// For the codes a client can fix (the `PSYNC_S21xx` authentication errors, a missing
    /// sync config) the message ends with a hint naming what to check.
    #[error("{url} answered HTTP {status}{}: {description}{}", code_suffix(.code), code_hint(.code))]
    HttpStatus {
        /// The request URL (without query string).
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The service's error code, such as `PSYNC_S2106`.
        code: Option<String>,
        /// What the service said went wrong.
        description: String,
    },

    /// A request could not be sent or its response could not be read (connection refused
    /// or reset, DNS, TLS, timeout). The message names the root cause (the innermost
    /// error, e.g. `invalid peer certificate: UnknownIssuer`) and what to check for it.
    #[error("request to {url} failed: {cause} ({})", .kind.advice())]
    Transport {
        /// The request URL (without query string).
        url: String,
        /// What kind of failure it was.
        kind: TransportFailure,
        /// The root cause's message (the innermost error of the chain).
        cause: String,
        /// The HTTP client's error (reqwest's under tokio and in the browser, hyper's or
        /// an I/O error under other runtimes).
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },

    /// The TLS configuration for requests to the service could not be built (e.g. the
    /// platform's certificate store could not be read).
    #[error("could not set up TLS for requests to the sync service: {0}")]
    Tls(String),

    /// The sync service sent something that does not follow the PowerSync protocol.
    #[error("sync protocol error: {0}")]
    Protocol(String),

    /// Downloaded data did not add up to the checksums of the checkpoint. The named
    /// buckets were dropped and are downloaded again; if this keeps happening the
    /// service's bucket data is inconsistent.
    #[error("checksums did not match for {0}; re-downloading those buckets")]
    ChecksumMismatch(String),

    /// The sync stream sent nothing (not even a keepalive) for longer than the idle
    /// timeout, so the connection is presumed dead and is reopened.
    #[error(
        "the sync stream sent nothing for {0:?}; reconnecting (raise SyncOptions::idle_timeout if the network is that slow)"
    )]
    StreamIdle(std::time::Duration),

    /// The service did not answer a write-checkpoint request in time. The upload round
    /// is retried after `SyncOptions::retry_delay`; local writes stay queued.
    #[error(
        "the sync service did not issue a write checkpoint within {0:?}; the upload round is retried (check the service's health and its connection to the source database)"
    )]
    WriteCheckpointTimeout(std::time::Duration),

    /// [`Database::request_checkpoint`](crate::Database::request_checkpoint) or
    /// [`CheckpointRequest::wait_for_sync`](crate::CheckpointRequest::wait_for_sync) needs
    /// a connection to the sync service, and there is none: the database is not
    /// connected, the connection was stopped, it is between two attempts (after a
    /// failure, which the status shows), or it runs in [`SyncMode::UploadOnly`](crate::SyncMode::UploadOnly).
    /// The message says which.
    #[error(
        "not connected to the sync service ({0}): call Database::connect (in a mode that downloads), or wait until it has reconnected, then try again"
    )]
    Disconnected(String),

    /// [`Database::request_checkpoint`](crate::Database::request_checkpoint) was called on
    /// a connection made with [`CheckpointMode::Legacy`](crate::CheckpointMode::Legacy).
    #[error(
        "checkpoint requests are off for this connection (it uses legacy write checkpoints): connect with SyncOptions::checkpoint_mode(CheckpointMode::Requests) to use request_checkpoint (needs PowerSync Service 1.24.0 or later)"
    )]
    CheckpointRequestsDisabled,

    /// The sync service answered 404 to `POST /sync/checkpoint-request`: it is older
    /// than PowerSync Service 1.24.0. The connection keeps syncing with legacy write
    /// checkpoints; only [`Database::request_checkpoint`](crate::Database::request_checkpoint)
    /// is unavailable.
    #[error(
        "the sync service does not support checkpoint requests ({url} answered 404; they need PowerSync Service 1.24.0 or later): upgrade the service, or connect with CheckpointMode::Legacy (uploads keep working with legacy write checkpoints meanwhile)"
    )]
    CheckpointRequestsUnsupported {
        /// The request URL.
        url: String,
    },

    /// A checkpoint was downloaded but not applied because local writes wait in the
    /// upload queue and the connection runs in
    /// [`SyncMode::DownloadOnly`](crate::SyncMode::DownloadOnly), which uploads nothing
    /// (docs/sync-protocol.md §5.5). Shown as the status's download error; the data is
    /// applied once a connection that uploads has sent the writes.
    #[error(
        "synced data is held back because local writes wait for upload and the connection is download-only: connect with SyncMode::Full (or SyncMode::UploadOnly, then SyncMode::Full) to upload them"
    )]
    LocalWritesNotUploaded,

    /// livesync could not start one of its worker threads (the writer or a reader).
    #[error(
        "cannot start the {thread} thread: {source} (the process may have reached its thread or memory limit)"
    )]
    ThreadSpawn {
        /// Which thread: `"writer"` or `"reader"`.
        thread: &'static str,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// The database has no executor to run background tasks on (the sync loops of
    /// [`Database::connect`](crate::Database::connect)); the message says which one is
    /// missing and how to name one ([`OpenOptions::runtime`](crate::OpenOptions::runtime)).
    #[error("{0}")]
    NoExecutor(String),

    /// The connector returned credentials livesync cannot use.
    #[error("invalid credentials: {0}")]
    InvalidCredentials(String),

    /// `upload_data` returned `Ok` without completing the oldest queued transaction, so
    /// uploads cannot make progress.
    #[error(
        "upload_data returned without completing queued writes (entry {0} is still first in the queue): call `complete()` on each transaction once the backend accepted it"
    )]
    UploadStalled(i64),

    /// An error that happened in another process and arrived here as its message only:
    /// for example a query that failed while a Leptos page was rendered on the server,
    /// delivered to the hydrating client inside the page. Errors serialize to their
    /// message and deserialize to this variant.
    #[error("{0}")]
    Remote(String),
}

/// An error serializes to its message, so values holding errors (such as a Leptos
/// resource's `Result`) can cross from server to client.
///
/// ```
/// let json = serde_json::to_string(&livesync::Error::Closed).unwrap();
/// let back: livesync::Error = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.to_string(), livesync::Error::Closed.to_string());
/// assert!(matches!(back, livesync::Error::Remote(_)));
/// ```
impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Reads what [`Serialize`](serde::Serialize) wrote, as [`Error::Remote`].
impl<'de> serde::Deserialize<'de> for Error {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::Remote)
    }
}

/// ` (hint: …)` for a service error code livesync has advice for.
fn code_hint(code: &Option<String>) -> String {
    match code.as_deref().and_then(crate::service_codes::hint) {
        Some(hint) => format!(" (hint: {hint})"),
        None => String::new(),
    }
}

fn code_suffix(code: &Option<String>) -> String {
    match code {
        Some(code) => format!(" ({code})"),
        None => String::new(),
    }
}

/// SQLite's message for `source`, with internal data table names replaced by the app
/// tables they store (the statement text itself is left as the app wrote it).
fn sqlite_message(source: &rusqlite::Error) -> String {
    use crate::schema::names::with_app_names;
    match source {
        rusqlite::Error::SqliteFailure(_, Some(message)) => with_app_names(message).into_owned(),
        rusqlite::Error::SqlInputError {
            msg, sql, offset, ..
        } => format!("{} in {sql} at offset {offset}", with_app_names(msg)),
        other => with_app_names(&other.to_string()).into_owned(),
    }
}

fn sql_suffix(sql: &Option<String>) -> String {
    match sql {
        Some(sql) => format!(" (in SQL: {sql})"),
        None => String::new(),
    }
}

impl Error {
    /// An error for a [`BackendConnector`](crate::BackendConnector) to return, from a
    /// message or any error type.
    ///
    /// ```
    /// let err = livesync::Error::connector("backend is down");
    /// assert_eq!(err.to_string(), "the backend connector failed: backend is down");
    /// ```
    pub fn connector(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Connector(Arc::from(error.into()))
    }

    /// An error for an HTTP request that failed (a transport-level failure), classified
    /// by its root cause.
    pub(crate) fn transport(url: impl Into<String>, source: reqwest::Error) -> Self {
        let (kind, cause) = TransportFailure::of(&source);
        Self::Transport {
            url: url.into(),
            kind,
            cause,
            source: Arc::new(source),
        }
    }

    /// An error for an HTTP request that failed at a step the caller knows (`kind`):
    /// the root cause of `source` goes into the message, and a refused certificate
    /// anywhere in its chain makes it a [`TransportFailure::Certificate`].
    #[cfg_attr(not(feature = "async-io-http"), allow(dead_code))]
    pub(crate) fn transport_failure(
        url: impl Into<String>,
        kind: TransportFailure,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source: Arc<dyn std::error::Error + Send + Sync> = Arc::from(source.into());
        let (cause, certificate) = root_cause(source.as_ref());
        Self::Transport {
            url: url.into(),
            kind: if certificate {
                TransportFailure::Certificate
            } else {
                kind
            },
            cause,
            source,
        }
    }

    /// An error for a worker thread that could not be started.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn thread_spawn(thread: &'static str, source: std::io::Error) -> Self {
        Self::ThreadSpawn {
            thread,
            source: Arc::new(source),
        }
    }

    /// Wraps an SQLite error, remembering the statement that caused it.
    pub(crate) fn sqlite_with_sql(source: rusqlite::Error, sql: impl Into<String>) -> Self {
        Self::classify(source, Some(sql.into()))
    }

    /// Sorts an SQLite error into the variant a caller can act on.
    fn classify(source: rusqlite::Error, sql: Option<String>) -> Self {
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Busy { sql },
            Some(ErrorCode::DiskFull) => Self::StorageFull {
                reason: source.to_string(),
            },
            _ => Self::Sqlite {
                source: Arc::new(source),
                sql,
            },
        }
    }

    /// Maps an error raised while opening `path` to the file-level variants.
    pub(crate) fn while_opening(source: rusqlite::Error, path: &std::path::Path) -> Self {
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Self::NotADatabase { path },
            Some(ErrorCode::DatabaseCorrupt) => Self::Corrupt { path },
            Some(ErrorCode::ReadOnly) => Self::ReadOnly { path },
            Some(ErrorCode::CannotOpen) => Self::CannotOpen {
                path,
                source: Arc::new(source),
            },
            _ => Self::classify(source, None),
        }
    }

    /// Re-labels file-level failures of an error that happened on an open database.
    pub(crate) fn on_file(self, path: &std::path::Path) -> Self {
        match self {
            Self::Sqlite { source, sql } => {
                let path = path.to_path_buf();
                match source.sqlite_error_code() {
                    Some(ErrorCode::NotADatabase) => Self::NotADatabase { path },
                    Some(ErrorCode::DatabaseCorrupt) => Self::Corrupt { path },
                    Some(ErrorCode::ReadOnly) => Self::ReadOnly { path },
                    Some(ErrorCode::CannotOpen) => Self::CannotOpen { path, source },
                    _ => Self::Sqlite { source, sql },
                }
            }
            other => other,
        }
    }

    /// Attaches the query text to decode errors that lack it.
    pub(crate) fn in_query(self, query: &str) -> Self {
        match self {
            Self::Decode {
                column,
                message,
                sql: None,
            } => Self::Decode {
                column,
                message,
                sql: Some(query.to_owned()),
            },
            other => other,
        }
    }

    pub(crate) fn schema(message: impl Into<String>) -> Self {
        Self::Schema {
            message: message.into(),
        }
    }

    pub(crate) fn json(context: impl Into<String>, source: serde_json::Error) -> Self {
        Self::Json {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(source: rusqlite::Error) -> Self {
        // rusqlite keeps the statement text for prepare errors; surface it.
        let sql = match &source {
            rusqlite::Error::SqlInputError { sql, .. } => Some(sql.clone()),
            _ => None,
        };
        Self::classify(source, sql)
    }
}

/// The kinds of [`Error::Transport`], each with its own advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportFailure {
    /// The service's TLS certificate was refused (untrusted issuer, expired, or issued
    /// for another host name).
    Certificate,
    /// No connection could be made (refused, DNS, connect timeout).
    Connect,
    /// The request or response took too long.
    Timeout,
    /// The connection broke while the response was being read (the service stopped or
    /// a proxy cut the stream).
    Body,
    /// Anything else the HTTP client reports.
    Other,
}

/// Whether reqwest failed to connect (it cannot tell in the browser, where fetch hides it).
fn is_connect(error: &reqwest::Error) -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    return error.is_connect();
    #[cfg(target_arch = "wasm32")]
    {
        let _ = error;
        false
    }
}

/// The message of the innermost error of `error`'s source chain, and whether the chain
/// says a TLS certificate was refused.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> (String, bool) {
    let mut root = error;
    #[cfg_attr(target_arch = "wasm32", allow(unused_mut))]
    let mut certificate = false;
    // (On wasm32 the loop has no rustls check in it, and clippy would have it a
    // `while let`.)
    #[cfg_attr(target_arch = "wasm32", allow(clippy::while_let_loop))]
    loop {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(tls) = root.downcast_ref::<rustls::Error>() {
            certificate |= matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        match root.source() {
            Some(inner) => root = inner,
            None => break,
        }
    }
    let cause = root.to_string();
    // rustls's error can reach us only as text inside an io::Error (hyper's connector
    // wraps it), so the message is checked too.
    let certificate = certificate || cause.contains("certificate");
    (cause, certificate)
}

impl TransportFailure {
    /// Sorts `error` by the errors of its source chain; the message of the innermost one
    /// is the root cause (reqwest's own message only says which step failed).
    fn of(error: &reqwest::Error) -> (Self, String) {
        let (cause, certificate) = root_cause(error);
        let kind = if certificate {
            Self::Certificate
        } else if error.is_timeout() {
            Self::Timeout
        } else if is_connect(error) {
            Self::Connect
        } else if error.is_body() || error.is_decode() {
            Self::Body
        } else {
            Self::Other
        };
        (kind, cause)
    }

    /// What a user should check for this kind of failure.
    pub fn advice(self) -> &'static str {
        match self {
            Self::Certificate => {
                "a TLS certificate problem: the service's certificate is not trusted by this \
                 device, has expired, or was issued for another host name"
            }
            Self::Connect => "check that the service is running and reachable at this URL",
            Self::Timeout => "the service or the network is too slow to answer; it is retried",
            Self::Body => {
                "the connection broke while the response was read (the service stopped or a \
                 proxy cut it); it is retried"
            }
            Self::Other => "check the URL and the network",
        }
    }
}
