//! [`TestConnector`]: a [`BackendConnector`] for [`TestSyncService`](super::TestSyncService),
//! minting tokens in-process and uploading through the service's `/upload` endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::Shared;
use crate::{BackendConnector, Credentials, Database, Error, Result};

/// The app side of a [`TestSyncService`](super::TestSyncService) for one user: tokens
/// come from the service's key, uploads go to its `POST /upload` endpoint (one request
/// per local transaction, completed only after HTTP 200).
///
/// Cloning shares the counters.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use livesync::BackendConnector;
/// use livesync::testing::TestSyncService;
/// let service = TestSyncService::start().await?;
/// let connector = service.connector("user-1");
/// let credentials = connector.fetch_credentials().await?;
/// assert_eq!(credentials.endpoint, service.url());
/// assert_eq!(connector.credentials_fetched(), 1);
/// # service.shutdown().await; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TestConnector {
    shared: Arc<Shared>,
    url: String,
    user_id: String,
    token_lifetime: Duration,
    /// Built once; an error (no TLS provider) is reported at the first upload.
    http: Arc<Result<crate::http_client::HttpClient>>,
    fetched: Arc<AtomicUsize>,
    invalidated: Arc<AtomicUsize>,
}

impl std::fmt::Debug for TestConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestConnector")
            .field("url", &self.url)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl TestConnector {
    pub(super) fn new(shared: Arc<Shared>, url: String, user_id: &str) -> Self {
        Self {
            shared,
            url,
            user_id: user_id.to_owned(),
            token_lifetime: Duration::from_secs(3600),
            http: Arc::new(crate::http_client::HttpClient::ambient()),
            fetched: Arc::default(),
            invalidated: Arc::default(),
        }
    }

    /// Tokens from this connector expire after `lifetime` (whole seconds; default one
    /// hour).
    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// The user this connector syncs as (the token's `sub`).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// How many times [`fetch_credentials`](BackendConnector::fetch_credentials) ran.
    pub fn credentials_fetched(&self) -> usize {
        self.fetched.load(Ordering::Relaxed)
    }

    /// How many times [`invalidate_credentials`](BackendConnector::invalidate_credentials)
    /// ran.
    pub fn credentials_invalidated(&self) -> usize {
        self.invalidated.load(Ordering::Relaxed)
    }

    async fn post_upload(&self, body: &Value) -> Result<()> {
        let url = format!("{}/upload", self.url);
        let token = self
            .shared
            .mint_token(&self.user_id, self.token_lifetime, None);
        let http = match self.http.as_ref() {
            Ok(http) => http,
            Err(error) => return Err(Error::connector(error.to_string())),
        };
        let authorization = http::HeaderValue::try_from(format!("Token {token}"))
            .map_err(|_| Error::connector("the minted token cannot be sent in a header"))?;
        let post = crate::http_client::Request::post(&url)
            .header(http::header::AUTHORIZATION, authorization)
            .json(body);
        http.send(post).await.map(drop)
    }
}

impl BackendConnector for TestConnector {
    async fn fetch_credentials(&self) -> Result<Credentials> {
        self.fetched.fetch_add(1, Ordering::Relaxed);
        let token = self
            .shared
            .mint_token(&self.user_id, self.token_lifetime, None);
        Ok(Credentials {
            endpoint: self.url.clone(),
            token,
            expires_at: Some(SystemTime::now() + self.token_lifetime),
        })
    }

    async fn upload_data(&self, db: &Database) -> Result<()> {
        let client_id = db.client_id().await?;
        while let Some(transaction) = db.get_next_crud_transaction().await? {
            let batch: Vec<Value> = transaction.crud.iter().map(|e| e.to_json()).collect();
            self.post_upload(&json!({"client_id": client_id, "batch": batch}))
                .await?;
            transaction.complete().await?;
        }
        Ok(())
    }

    fn invalidate_credentials(&self) {
        self.invalidated.fetch_add(1, Ordering::Relaxed);
    }
}
