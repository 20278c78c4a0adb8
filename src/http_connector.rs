//! [`HttpConnector`]: a ready-made [`BackendConnector`] for the common case, where the
//! sync token comes from an HTTP endpoint of the app's backend (or is fixed, for
//! development) and local writes are posted as JSON to an HTTP endpoint of the app's API.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::http_client::{Capped, HttpClient, Request, Response, error_from_response, read_capped};
use crate::{BackendConnector, Credentials, CrudEntry, CrudTransaction, Database, Error, Result};

/// How long one request to the token endpoint or the upload endpoint may take; a
/// backend that hangs fails the round, which livesync retries after its retry delay.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a reply is read: a token or an upload answer is a small JSON object.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// What the app's backend does with a queued transaction that it refused for good
/// (an HTTP 4xx other than 401, 408 and 429): see [`HttpConnectorBuilder::on_rejected`].
type RejectionHandler = Arc<dyn Fn(RejectedUpload) + Send + Sync>;

/// A [`BackendConnector`] speaking plain HTTP + JSON to the app's backend.
///
/// **Credentials.** With [`token_endpoint`](HttpConnectorBuilder::token_endpoint),
/// every [`fetch_credentials`](BackendConnector::fetch_credentials) sends
/// `GET <token endpoint>` (with the [`header`](HttpConnectorBuilder::header)s you set,
/// typically the user's session) and expects `{"token": "<JWT>", "expires_at": <Unix
/// seconds>}`; `expires_at` is optional (the token's own `exp` claim is used instead),
/// and an optional `"endpoint"` (or `"powersync_url"`) replaces the service URL. With
/// [`token`](HttpConnectorBuilder::token) a fixed token is used (a development token).
/// livesync fetches new credentials 30 s before `expires_at`, after a 401, and when the
/// service says the token is about to expire.
///
/// **Uploads.** Each queued [`CrudTransaction`] is one `POST <upload URL>` with the body
///
/// ```json
/// {"client_id": "…", "transaction_id": 7, "idempotency_key": "…",
///  "batch": [{"op_id": 12, "op": "PUT", "type": "todos", "id": "…", "tx_id": 7, "data": {…}}, …]}
/// ```
///
/// (entries as [`CrudEntry::to_json`]), the same key in an `Idempotency-Key` header, and
/// `Authorization: Bearer <sync token>` unless you set an `Authorization` header
/// yourself. The idempotency key ([`HttpConnector::idempotency_key`]) is the same every
/// time the transaction is sent again (after a timeout, a crash or a lost answer) and
/// differs for any other transaction, so the backend can recognise a transaction it
/// already applied and answer 2xx without applying it twice. The answer decides:
///
/// | answer | what happens |
/// | --- | --- |
/// | 2xx | the transaction is completed; a `write_checkpoint` in the answer (`{"write_checkpoint": "42"}` or `{"data": {"write_checkpoint": 42}}`) is passed to [`CrudTransaction::complete_with_checkpoint`] |
/// | 401 | the cached token is dropped, a new one fetched and the request sent once more; a second 401 fails the round (retried later) |
/// | 408, 429, 5xx, no answer | the round fails with the error (shown in `status.upload_error`) and is retried after the retry delay; nothing is lost |
/// | any other 4xx | **the transaction is dropped from the queue** — see below |
///
/// **A 4xx that is not 401, 408 or 429 means the backend will never accept this
/// transaction** (a validation error, a permission denied, a row that no longer
/// exists). Retrying it forever would block every later write, so the connector hands
/// it to the [`on_rejected`](HttpConnectorBuilder::on_rejected) callback (or logs it
/// with `tracing::error!` when there is none) and **completes it: the local change is
/// then replaced by the server's version at the next sync, i.e. reverted**. Keep what
/// the user wrote from the callback (a local-only table, a message to the user) if it
/// must not be lost, and make the backend answer 5xx, not 4xx, for failures that may
/// pass later.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use livesync::HttpConnector;
///
/// let connector = HttpConnector::builder("https://my-instance.powersync.example")
///     .token_endpoint("https://api.example.com/powersync/token")
///     .header("Cookie", "session=abc123")
///     .upload_url("https://api.example.com/powersync/upload")
///     .on_rejected(|rejected| {
///         eprintln!("the backend refused transaction {:?}: {}", rejected.transaction_id, rejected.error);
///     })
///     .build()?;
/// # let _ = connector;
/// // db.connect(connector, livesync::SyncOptions::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpConnector {
    inner: Arc<Inner>,
}

struct Inner {
    service_url: String,
    token: TokenSource,
    upload_url: String,
    headers: HeaderMap,
    on_rejected: Option<RejectionHandler>,
    /// Through reqwest under tokio, else through the backend that needs no tokio
    /// (feature `async-io-http`).
    http: HttpClient,
    /// The credentials last fetched, whose token also authenticates uploads.
    cached: Mutex<Option<Credentials>>,
}

#[derive(Clone)]
enum TokenSource {
    Fixed(String),
    Endpoint(String),
}

impl std::fmt::Debug for HttpConnector {
    // No token and no header values: they are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = match &self.inner.token {
            TokenSource::Fixed(_) => "fixed token".to_owned(),
            TokenSource::Endpoint(url) => url.clone(),
        };
        f.debug_struct("HttpConnector")
            .field("service_url", &self.inner.service_url)
            .field("token", &token)
            .field("upload_url", &self.inner.upload_url)
            .finish_non_exhaustive()
    }
}

/// A transaction the backend refused with a 4xx that will never succeed, handed to
/// [`HttpConnectorBuilder::on_rejected`] before it is removed from the upload queue.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RejectedUpload {
    /// The local transaction id (`None` for entries written without one).
    pub transaction_id: Option<i64>,
    /// The refused writes, oldest first (with their data: keep them if they matter).
    pub entries: Vec<CrudEntry>,
    /// The idempotency key the transaction was sent with.
    pub idempotency_key: String,
    /// The backend's answer: an [`Error::HttpStatus`] with its status and description.
    pub error: Error,
}

/// Configures an [`HttpConnector`]; from [`HttpConnector::builder`].
#[derive(Clone)]
#[must_use]
pub struct HttpConnectorBuilder {
    service_url: String,
    token: Option<TokenSource>,
    upload_url: Option<String>,
    headers: Vec<(String, String)>,
    on_rejected: Option<RejectionHandler>,
}

impl std::fmt::Debug for HttpConnectorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConnectorBuilder")
            .field("service_url", &self.service_url)
            .field("upload_url", &self.upload_url)
            .finish_non_exhaustive()
    }
}

impl HttpConnector {
    /// Starts configuring a connector for the PowerSync Service at `service_url` (its
    /// base URL, such as `https://abc.powersync.journeyapps.com`; livesync adds
    /// `/sync/stream` itself).
    pub fn builder(service_url: impl Into<String>) -> HttpConnectorBuilder {
        HttpConnectorBuilder {
            service_url: service_url.into(),
            token: None,
            upload_url: None,
            headers: Vec::new(),
            on_rejected: None,
        }
    }

    /// The idempotency key of `transaction`: `<client id>:<op id of its first
    /// entry>:<hash of its entries>`. The same for every retry, also after a restart (the
    /// queued entries do not change); the hash keeps it apart from a later transaction
    /// that reuses an op id (possible after `disconnect_and_clear` dropped queued
    /// entries and the app restarted).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use livesync::{Column, Database, HttpConnector, Schema, Table};
    /// let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("title")])])).await?;
    /// db.execute("INSERT INTO todos(id, title) VALUES ('t1', 'milk')", ()).await?;
    /// let client_id = db.client_id().await?;
    /// let transaction = db.get_next_crud_transaction().await?.unwrap();
    /// let key = HttpConnector::idempotency_key(&client_id, &transaction);
    /// assert!(key.starts_with(&format!("{client_id}:{}:", transaction.crud[0].client_id)));
    /// let again = db.get_next_crud_transaction().await?.unwrap();
    /// assert_eq!(HttpConnector::idempotency_key(&client_id, &again), key);
    /// # Ok(()) }
    /// ```
    pub fn idempotency_key(client_id: &str, transaction: &CrudTransaction) -> String {
        let first = transaction.crud.first().map_or(0, |entry| entry.client_id);
        // FNV-1a over the entries' JSON, which is the same text for the same queued
        // entries: stable across runs and platforms, unlike `std`'s seeded hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for entry in &transaction.crud {
            for byte in entry.to_json().to_string().bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{client_id}:{first}:{hash:016x}")
    }

    fn cached(&self) -> Option<Credentials> {
        self.inner
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn forget_token(&self) {
        self.inner
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// The token for upload requests: the cached one unless it expires within 30 s.
    async fn upload_token(&self) -> Result<String> {
        let soon = SystemTime::now() + Duration::from_secs(30);
        match self.cached() {
            Some(cached) if cached.expires_at.is_none_or(|at| at > soon) => Ok(cached.token),
            _ => Ok(self.fetch_credentials().await?.token),
        }
    }

    async fn request_token(&self, url: &str) -> Result<Credentials> {
        let request = Request::get(url)
            .headers(self.inner.headers.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .timeout(REQUEST_TIMEOUT);
        let response = self.inner.http.send(request).await?;
        let body = read_json_reply(url, response).await?;
        let shape = "expected {\"token\": \"<JWT>\", \"expires_at\": <Unix seconds, optional>}";
        let token = body
            .get("token")
            .and_then(Value::as_str)
            .filter(|token| !token.trim().is_empty())
            .ok_or_else(|| {
                Error::connector(format!(
                    "the token endpoint {url} answered without a \"token\" string: {shape}"
                ))
            })?;
        let expires_at = match body.get("expires_at") {
            None | Some(Value::Null) => jwt_expiry(token),
            Some(value) => Some(value.as_u64().map(unix_time).ok_or_else(|| {
                Error::connector(format!(
                    "the token endpoint {url} answered with an \"expires_at\" that is not a \
                     number of seconds since 1970: {shape}"
                ))
            })?),
        };
        let endpoint = ["endpoint", "powersync_url"]
            .iter()
            .find_map(|key| body.get(*key).and_then(Value::as_str))
            .unwrap_or(self.inner.service_url.as_str());
        crate::endpoint::check_endpoint(endpoint)?;
        Ok(Credentials {
            endpoint: endpoint.to_owned(),
            token: token.to_owned(),
            expires_at,
        })
    }

    async fn post_upload(&self, body: &Value, key: &str, token: &str) -> Result<Response> {
        let url = &self.inner.upload_url;
        let mut headers = self.inner.headers.clone();
        if !headers.contains_key(AUTHORIZATION) {
            let bearer = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
                Error::InvalidCredentials(
                    "the token contains characters a header cannot carry".into(),
                )
            })?;
            headers.insert(AUTHORIZATION, bearer);
        }
        let key = HeaderValue::try_from(key)
            .map_err(|_| Error::connector("the idempotency key cannot be sent in a header"))?;
        let request = Request::post(url)
            .headers(headers)
            .header(HeaderName::from_static("idempotency-key"), key)
            .timeout(REQUEST_TIMEOUT)
            .json(body);
        self.inner.http.execute(request).await
    }

    /// Sends one transaction, answering what to do with it.
    async fn upload(&self, client_id: &str, transaction: &CrudTransaction) -> Result<Outcome> {
        let key = Self::idempotency_key(client_id, transaction);
        let body = json!({
            "client_id": client_id,
            "transaction_id": transaction.transaction_id,
            "idempotency_key": key,
            "batch": transaction.crud.iter().map(CrudEntry::to_json).collect::<Vec<_>>(),
        });
        let mut response = self
            .post_upload(&body, &key, &self.upload_token().await?)
            .await?;
        if response.status == 401 {
            tracing::debug!("the upload endpoint refused the token; fetching a new one");
            self.forget_token();
            let token = self.fetch_credentials().await?.token;
            response = self.post_upload(&body, &key, &token).await?;
        }
        let url = self.inner.upload_url.clone();
        let status = response.status;
        match classify(status) {
            Verdict::Accepted => {
                let reply = read_json_reply(&url, response).await.unwrap_or(Value::Null);
                Ok(Outcome::Accepted(write_checkpoint_of(&reply)))
            }
            Verdict::Retry => Err(error_from_response(response).await),
            Verdict::Rejected => Ok(Outcome::Rejected(RejectedUpload {
                transaction_id: transaction.transaction_id,
                entries: transaction.crud.clone(),
                idempotency_key: key,
                error: error_from_response(response).await,
            })),
        }
    }

    fn report(&self, rejected: RejectedUpload) {
        // Tables and operations only: row data stays out of logs.
        let writes: Vec<String> = rejected
            .entries
            .iter()
            .map(|entry| format!("{} {}", entry.op.as_str(), entry.table))
            .collect();
        match &self.inner.on_rejected {
            Some(handler) => {
                tracing::warn!(
                    error = %rejected.error,
                    writes = ?writes,
                    "the backend refused a transaction for good; handed to on_rejected and removed from the upload queue"
                );
                handler(rejected);
            }
            None => tracing::error!(
                error = %rejected.error,
                writes = ?writes,
                "the backend refused a transaction for good; it is removed from the upload queue and the local change will be reverted (set HttpConnectorBuilder::on_rejected to keep it)"
            ),
        }
    }
}

enum Outcome {
    /// Applied by the backend, with the write checkpoint its answer named.
    Accepted(Option<i64>),
    /// Refused for good.
    Rejected(RejectedUpload),
}

/// How an upload answer's status is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accepted,
    /// May pass later: keep the transaction and fail the round.
    Retry,
    /// Will never pass: hand it to the app and complete it.
    Rejected,
}

fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Accepted,
        // 401 left after a fresh token: the round fails and is retried.
        401 | 408 | 429 => Verdict::Retry,
        400..=499 => Verdict::Rejected,
        _ => Verdict::Retry,
    }
}

/// `write_checkpoint` of an upload answer, top level or under `data`, as a decimal
/// string or a number.
fn write_checkpoint_of(reply: &Value) -> Option<i64> {
    let value = reply
        .get("write_checkpoint")
        .or_else(|| reply.get("data")?.get("write_checkpoint"))?;
    value
        .as_i64()
        .or_else(|| value.as_str()?.trim().parse().ok())
}

async fn read_json_reply(url: &str, response: Response) -> Result<Value> {
    let bytes = match read_capped(response, MAX_REPLY_BYTES).await {
        Ok(Capped::Whole(bytes)) => bytes,
        Ok(Capped::Truncated(_)) => {
            return Err(Error::connector(format!(
                "{url} answered with more than {MAX_REPLY_BYTES} bytes; expected a small JSON object"
            )));
        }
        Err(error) => return Err(error),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::connector(format!("{url} answered with invalid JSON: {e}")))
}

fn unix_time(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// The `exp` claim of a JWT, without verifying it (the service does that): only to know
/// when to fetch the next one.
fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&base64url_decode(payload)?).ok()?;
    claims.get("exp")?.as_u64().map(unix_time)
}

/// Decodes unpadded (or padded) base64url.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

impl HttpConnectorBuilder {
    /// A fixed token (for example a development token from the PowerSync dashboard, or
    /// one signed with the service's HS256 development key). Its `exp` claim, if any,
    /// is its expiry; once it expired the service refuses it and syncing stops with
    /// the service's `PSYNC_S2103` error.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(TokenSource::Fixed(token.into()));
        self
    }

    /// Fetch tokens with `GET <url>` from the app's backend; see [`HttpConnector`] for
    /// the answer it expects. Replaces a fixed [`token`](Self::token).
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token = Some(TokenSource::Endpoint(url.into()));
        self
    }

    /// Where local writes are posted (required); see [`HttpConnector`] for the request
    /// and how the answer is treated.
    pub fn upload_url(mut self, url: impl Into<String>) -> Self {
        self.upload_url = Some(url.into());
        self
    }

    /// A header sent with every request to the token endpoint and the upload URL (the
    /// user's session cookie or API key). An `Authorization` header set here replaces
    /// the `Bearer <sync token>` that uploads carry otherwise.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Called with every transaction the backend refused for good (a 4xx other than
    /// 401, 408 and 429) **before it is removed from the upload queue**. Without it,
    /// such a transaction is logged with `tracing::error!` and removed. Either way the
    /// local change is reverted by the next sync; keep what matters from here.
    pub fn on_rejected(mut self, handler: impl Fn(RejectedUpload) + Send + Sync + 'static) -> Self {
        self.on_rejected = Some(Arc::new(handler));
        self
    }

    /// Checks the settings and builds the connector.
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`] for a service URL that is not a base URL (see
    /// [`Credentials::endpoint`]), and [`Error::Connector`] when no token source or
    /// upload URL was set, a URL is not `http(s)://`, or a header is not valid HTTP.
    pub fn build(self) -> Result<HttpConnector> {
        crate::endpoint::check_endpoint(&self.service_url)?;
        let token = self.token.ok_or_else(|| {
            Error::connector(
                "HttpConnector needs a token source: call .token(..) or .token_endpoint(..)",
            )
        })?;
        if let TokenSource::Endpoint(url) = &token {
            require_http_url("token endpoint", url)?;
        }
        let upload_url = self.upload_url.ok_or_else(|| {
            Error::connector("HttpConnector needs .upload_url(..): where local writes are posted")
        })?;
        require_http_url("upload URL", &upload_url)?;
        let mut headers = HeaderMap::new();
        for (name, value) in self.headers {
            let header = HeaderName::try_from(name.as_str()).map_err(|_| {
                Error::connector(format!("{name:?} is not a valid HTTP header name"))
            })?;
            let value = HeaderValue::try_from(value).map_err(|_| {
                Error::connector(format!("the value of header {name} is not valid in HTTP"))
            })?;
            headers.insert(header, value);
        }
        Ok(HttpConnector {
            inner: Arc::new(Inner {
                service_url: self.service_url.trim().to_owned(),
                token,
                upload_url,
                headers,
                on_rejected: self.on_rejected,
                http: HttpClient::ambient()?,
                cached: Mutex::new(None),
            }),
        })
    }
}

fn require_http_url(what: &str, url: &str) -> Result<()> {
    let ok = url
        .split_once("://")
        .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && !rest.is_empty());
    if ok {
        Ok(())
    } else {
        Err(Error::connector(format!(
            "the {what} {url:?} must be an http:// or https:// URL"
        )))
    }
}

impl BackendConnector for HttpConnector {
    async fn fetch_credentials(&self) -> Result<Credentials> {
        let credentials = match &self.inner.token {
            TokenSource::Fixed(token) => Credentials {
                endpoint: self.inner.service_url.clone(),
                token: token.clone(),
                expires_at: jwt_expiry(token),
            },
            TokenSource::Endpoint(url) => self.request_token(url).await?,
        };
        *self
            .inner
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(credentials.clone());
        Ok(credentials)
    }

    async fn upload_data(&self, db: &Database) -> Result<()> {
        let client_id = db.client_id().await?;
        while let Some(transaction) = db.get_next_crud_transaction().await? {
            match self.upload(&client_id, &transaction).await? {
                Outcome::Accepted(Some(checkpoint)) => {
                    transaction.complete_with_checkpoint(checkpoint).await?;
                }
                Outcome::Accepted(None) => transaction.complete().await?,
                Outcome::Rejected(rejected) => {
                    self.report(rejected);
                    transaction.complete().await?;
                }
            }
        }
        Ok(())
    }

    fn invalidate_credentials(&self) {
        self.forget_token();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_sorted_into_accept_retry_and_reject() {
        assert_eq!(classify(200), Verdict::Accepted);
        assert_eq!(classify(204), Verdict::Accepted);
        for status in [401, 408, 429, 500, 502, 503, 504, 302] {
            assert_eq!(classify(status), Verdict::Retry, "{status}");
        }
        for status in [400, 403, 404, 409, 410, 422] {
            assert_eq!(classify(status), Verdict::Rejected, "{status}");
        }
    }

    #[test]
    fn write_checkpoints_are_read_from_the_top_level_or_data() {
        assert_eq!(
            write_checkpoint_of(&json!({"write_checkpoint": "42"})),
            Some(42)
        );
        assert_eq!(
            write_checkpoint_of(&json!({"data": {"write_checkpoint": 7}})),
            Some(7)
        );
        assert_eq!(write_checkpoint_of(&json!({"data": {"applied": 1}})), None);
        assert_eq!(write_checkpoint_of(&json!({"write_checkpoint": "x"})), None);
        assert_eq!(write_checkpoint_of(&Value::Null), None);
    }

    #[test]
    fn a_jwt_expiry_is_read_from_its_exp_claim() {
        // {"alg":"HS256"} . {"sub":"u","exp":1700000000} . signature
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1IiwiZXhwIjoxNzAwMDAwMDAwfQ.c2ln";
        assert_eq!(jwt_expiry(token), Some(unix_time(1_700_000_000)));
        assert_eq!(jwt_expiry("not a jwt"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
    }

    #[test]
    fn base64url_decodes_with_and_without_padding() {
        assert_eq!(base64url_decode("aGk").unwrap(), b"hi");
        assert_eq!(base64url_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64url_decode("-_8").unwrap(), [0xfb, 0xff]);
        assert!(base64url_decode("a b").is_none());
    }

    #[test]
    fn building_refuses_missing_settings_and_protocol_paths() {
        let missing_token = HttpConnector::builder("https://h")
            .upload_url("https://api/u")
            .build();
        assert!(
            missing_token
                .unwrap_err()
                .to_string()
                .contains(".token_endpoint")
        );
        let missing_upload = HttpConnector::builder("https://h").token("t").build();
        assert!(
            missing_upload
                .unwrap_err()
                .to_string()
                .contains(".upload_url")
        );
        let with_path = HttpConnector::builder("https://h/sync/stream")
            .token("t")
            .upload_url("https://api/u")
            .build();
        assert!(
            with_path
                .unwrap_err()
                .to_string()
                .contains("already ends with /sync/stream")
        );
        let bad_header = HttpConnector::builder("https://h")
            .token("t")
            .upload_url("https://api/u")
            .header("bad header", "x")
            .build();
        assert!(bad_header.is_err());
    }
}
