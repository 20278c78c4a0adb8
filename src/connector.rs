//! The app's side of syncing: where to connect with which token, and how local writes
//! reach the app's backend.

use std::future::Future;
use std::time::SystemTime;

use crate::{Database, Result};

/// What [`BackendConnector::fetch_credentials`] returns: the sync service to connect to
/// and the token (a JWT) to present.
///
/// ```
/// let credentials = livesync::Credentials::new("http://127.0.0.1:8080", "eyJhbGciOi...");
/// assert_eq!(credentials.endpoint, "http://127.0.0.1:8080");
/// assert!(credentials.expires_at.is_none());
/// ```
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct Credentials {
    /// Base URL of the PowerSync Service, such as `https://abc.powersync.journeyapps.com`
    /// or `http://127.0.0.1:8080`. A trailing `/` is ignored; a path prefix is kept
    /// (requests go to `<endpoint>/sync/stream`).
    pub endpoint: String,
    /// The JWT sent as `Authorization: Token <token>`. Never logged.
    pub token: String,
    /// When the token expires, if the connector knows; used to refresh it in time.
    pub expires_at: Option<SystemTime>,
}

impl Credentials {
    /// Credentials without a known expiry.
    pub fn new(endpoint: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            token: token.into(),
            expires_at: None,
        }
    }
}

impl std::fmt::Debug for Credentials {
    // The token is a secret: keep it out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("endpoint", &self.endpoint)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Connects livesync to the app's backend: the same two duties as `PowerSyncBackendConnector`
/// in the official SDKs.
///
/// - [`fetch_credentials`](Self::fetch_credentials) asks the app's auth for a sync
///   token; it is called before connecting and whenever the token expired or was refused.
/// - [`upload_data`](Self::upload_data) sends queued local writes to the app's backend
///   (which writes them to its database, from where they sync back down): take
///   [`Database::get_next_crud_transaction`] (or a batch), send it, and call
///   [`complete`](crate::CrudTransaction::complete) only once the backend accepted it.
///   livesync calls it again while writes remain and retries after an error.
///
/// Implement the methods as `async fn`s; the futures must be `Send`.
///
/// ```
/// use livesync::{BackendConnector, Credentials, Database, Error, Result};
///
/// struct MyBackend {
///     token: String,
/// }
///
/// impl BackendConnector for MyBackend {
///     async fn fetch_credentials(&self) -> Result<Credentials> {
///         Ok(Credentials::new("http://127.0.0.1:8080", self.token.clone()))
///     }
///
///     async fn upload_data(&self, db: &Database) -> Result<()> {
///         while let Some(transaction) = db.get_next_crud_transaction().await? {
///             for entry in &transaction.crud {
///                 // send `entry` to the backend here; on failure return an error:
///                 if entry.table == "forbidden" {
///                     return Err(Error::connector("the backend refused the write"));
///                 }
///             }
///             transaction.complete().await?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait BackendConnector: Send + Sync + 'static {
    /// Returns the endpoint and a valid token. Errors are reported in the sync status
    /// and retried after the retry delay.
    fn fetch_credentials(&self) -> impl Future<Output = Result<Credentials>> + Send;

    /// Uploads queued local writes and completes them. Errors are reported in the sync
    /// status and retried after the retry delay; nothing is lost or reordered.
    fn upload_data(&self, db: &Database) -> impl Future<Output = Result<()>> + Send;

    /// Called when the service refused the current token (HTTP 401) or it expired, before
    /// [`fetch_credentials`](Self::fetch_credentials) is called again: drop any cached
    /// token here.
    fn invalidate_credentials(&self) {}
}
