//! An in-process server speaking the PowerSync sync protocol, for tests and demos
//! (feature `testing`).
//!
//! [`TestSyncService`] listens on `127.0.0.1` with an OS-assigned port and serves what a
//! PowerSync client talks to: `POST /sync/stream` (checkpoints, data and keepalives,
//! resuming from each bucket's `after`; NDJSON, or BSON for a client that prefers it
//! (off with [`TestSyncServiceBuilder::bson`]); zstd or gzip compressed when asked), `GET /write-checkpoint2.json`,
//! `POST /sync/checkpoint-request` (client-chosen ids, as services from 1.24.0 serve
//! it; off with [`TestSyncServiceBuilder::checkpoint_requests`]), JWT
//! authentication (HS256) with the service's error bodies, and op checksums computed as
//! the real service computes them. It also plays the app's backend: `POST /upload`
//! receives CRUD batches (see [`TestConnector`]), applies them to the service's own
//! tables and routes the rows into buckets by simple [`BucketRule`]s, and
//! `GET /token?user_id=<id>` issues tokens as an auth backend would (`{"token",
//! "expires_at"}`, unauthenticated: for tests on 127.0.0.1 only).
//!
//! **It is a test and demo service.** It keeps everything in memory, implements a fixed
//! set of bucket rules instead of sync rules, and has no replication from a real
//! database. Production apps point their connector at a real PowerSync Service (cloud or
//! self-hosted, in front of Postgres, MongoDB or MySQL).
//!
//! Tests drive it directly: stage rows with [`put`](TestSyncService::put),
//! [`remove`](TestSyncService::remove), [`upsert_row`](TestSyncService::upsert_row)…,
//! publish them as one checkpoint with [`commit`](TestSyncService::commit), and inject
//! faults (dropped connections, error statuses, expired tokens, corrupt checksums, slow
//! or malformed lines) to see how a client copes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
//! use livesync::testing::{BucketRule, TestSyncService};
//! use serde_json::json;
//!
//! let service = TestSyncService::builder()
//!     .rule(BucketRule::global("global", ["todos"]))
//!     .start()
//!     .await?;
//! service.upsert_row("todos", "t1", json!({"description": "milk", "done": 0}));
//! let checkpoint = service.commit();
//! assert_eq!(checkpoint, 1);
//! assert!(service.url().starts_with("http://127.0.0.1:"));
//! let token = service.token("user-1"); // a JWT the service accepts
//! # let _ = token;
//! service.shutdown().await;
//! # Ok(()) }
//! ```

mod bson;
mod checksum;
mod compression;
mod connector;
mod faults;
mod http;
mod jwt;
mod rules;
mod store;
mod stream;
mod streams;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

pub use connector::TestConnector;
pub use rules::{BucketRule, ParameterSource};
pub use streams::TestStream;

use crate::{Error, Result};
use faults::{Faults, StreamEvent};
use jwt::TokenKey;
use store::{Change, Store};

/// Default time between `token_expires_in` keepalive lines (the real service: ~20 s).
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(20);

/// Configures and starts a [`TestSyncService`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use std::time::Duration;
/// use livesync::testing::{BucketRule, ParameterSource, TestSyncService};
/// let service = TestSyncService::builder()
///     .rule(BucketRule::per_value("by_owner", "lists", "owner_id", ParameterSource::UserId))
///     .keepalive_interval(Duration::from_secs(1))
///     .ops_per_line(50)
///     .priority("by_owner", 1) // sent before priority-3 buckets, with a partial complete
///     .start()
///     .await?;
/// # service.shutdown().await; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TestSyncServiceBuilder {
    rules: Vec<BucketRule>,
    key: TokenKey,
    keepalive: Duration,
    ops_per_line: usize,
    priorities: HashMap<String, u8>,
    streams: Vec<TestStream>,
    compression: bool,
    bson: bool,
    checkpoint_requests: bool,
}

impl TestSyncServiceBuilder {
    /// Adds a bucket rule. Without rules only buckets written with
    /// [`TestSyncService::put`] exist.
    pub fn rule(mut self, rule: BucketRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The `aud` claim tokens must carry (default `"livesync-test"`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.key.audience = audience.into();
        self
    }

    /// The key id (`kid` header) tokens must carry (default `"livesync-test"`); a token
    /// with another one is refused with `PSYNC_S2102`, as the service refuses a key its
    /// keystore lacks.
    pub fn key_id(mut self, kid: impl Into<String>) -> Self {
        self.key.kid = kid.into();
        self
    }

    /// The HS256 shared secret tokens are signed with.
    pub fn secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.key.secret = secret.into();
        self
    }

    /// Time between `token_expires_in` keepalive lines (default [`DEFAULT_KEEPALIVE`]).
    pub fn keepalive_interval(mut self, interval: Duration) -> Self {
        self.keepalive = interval.max(Duration::from_millis(1));
        self
    }

    /// Whether sync streams are compressed for clients that accept it (default `true`:
    /// zstd, else gzip, as the PowerSync Service does). `false` always sends plain
    /// NDJSON.
    ///
    /// ```
    /// let builder = livesync::testing::TestSyncService::builder().compression(false);
    /// # let _ = builder;
    /// ```
    pub fn compression(mut self, enabled: bool) -> Self {
        self.compression = enabled;
        self
    }

    /// Whether sync streams are framed as BSON for clients whose `Accept` prefers it
    /// (default `true`: `application/vnd.powersync.bson-stream`, as the PowerSync
    /// Service does for the official SDKs; combined with any compression). `false`
    /// always answers NDJSON, like a service that does not offer BSON.
    ///
    /// ```
    /// let ndjson_only = livesync::testing::TestSyncService::builder().bson(false);
    /// # let _ = ndjson_only;
    /// ```
    pub fn bson(mut self, enabled: bool) -> Self {
        self.bson = enabled;
        self
    }

    /// Whether `POST /sync/checkpoint-request` is served (default `true`, as PowerSync
    /// Service 1.24.0 and later do). `false` answers it with 404, like an older service.
    ///
    /// ```
    /// let old_service = livesync::testing::TestSyncService::builder().checkpoint_requests(false);
    /// # let _ = old_service;
    /// ```
    pub fn checkpoint_requests(mut self, served: bool) -> Self {
        self.checkpoint_requests = served;
        self
    }

    /// At most this many ops per `data` line (default 100), so large buckets arrive in
    /// several lines.
    pub fn ops_per_line(mut self, ops: usize) -> Self {
        self.ops_per_line = ops.max(1);
        self
    }

    /// Buckets of the rule named `rule` (or the `put` bucket of that name) get priority
    /// `priority` (0 highest, at most 3; default 3). Data is sent highest priority first,
    /// with a `partial_checkpoint_complete` line after each priority level that has
    /// lower-priority data after it, so clients can show urgent data early.
    pub fn priority(mut self, rule: impl Into<String>, priority: u8) -> Self {
        self.priorities.insert(rule.into(), priority.min(3));
        self
    }

    /// Adds a sync stream: clients subscribe to it by name with parameters
    /// (`db.sync_stream(name, params).subscribe()`), or get it by default when it
    /// [auto-subscribes](TestStream::auto_subscribe). Checkpoints then list the streams
    /// (with errors for subscriptions that cannot be resolved) and which subscription
    /// each bucket serves.
    pub fn stream(mut self, stream: TestStream) -> Self {
        self.streams.push(stream);
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    ///
    /// # Errors
    /// [`Error::Connector`] if no local port can be bound.
    pub async fn start(self) -> Result<TestSyncService> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::connector(format!("test service cannot bind 127.0.0.1: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::connector(format!("test service has no local address: {e}")))?;
        let (changes, _) = watch::channel(0);
        let (events, _) = broadcast::channel(64);
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            store: Mutex::new(
                Store::new(self.rules).with_stream_rules(
                    self.streams
                        .iter()
                        .flat_map(|s| s.rules.iter().cloned())
                        .collect(),
                ),
            ),
            streams: self.streams,
            faults: Mutex::new(Faults::default()),
            key: self.key,
            keepalive: self.keepalive,
            ops_per_line: self.ops_per_line,
            compression: self.compression,
            bson: self.bson,
            checkpoint_requests: self.checkpoint_requests,
            priorities: self.priorities,
            changes,
            events,
            shutdown,
            log: Mutex::new(RequestLog::default()),
            ops_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            hold_completes: watch::Sender::new(false),
            upload_write_checkpoints: AtomicBool::new(false),
        });
        let server = tokio::spawn(http::serve(listener, Arc::clone(&shared)));
        tracing::debug!(%address, "test sync service started");
        Ok(TestSyncService {
            shared,
            address,
            server: Mutex::new(Some(server)),
        })
    }
}

/// State shared by the service handle, the HTTP handlers and the open streams.
pub(crate) struct Shared {
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    key: TokenKey,
    keepalive: Duration,
    ops_per_line: usize,
    /// Compress sync streams for clients that accept it.
    pub(crate) compression: bool,
    /// Frame sync streams as BSON for clients that prefer it.
    pub(crate) bson: bool,
    /// Serve `POST /sync/checkpoint-request` (else 404, like a service before 1.24.0).
    checkpoint_requests: bool,
    /// Rule (bucket name before `[`) → priority; absent means 3.
    priorities: HashMap<String, u8>,
    streams: Vec<TestStream>,
    /// Bumped whenever what a stream would send may have changed.
    changes: watch::Sender<u64>,
    /// Told to every open stream.
    events: broadcast::Sender<StreamEvent>,
    shutdown: watch::Sender<bool>,
    log: Mutex<RequestLog>,
    ops_sent: AtomicU64,
    /// Bytes of sync stream bodies sent, as on the wire (after compression).
    pub(crate) bytes_sent: AtomicU64,
    /// While `true`, streams wait before sending `checkpoint_complete`.
    pub(crate) hold_completes: watch::Sender<bool>,
    /// `/upload` answers carry a write checkpoint (see
    /// [`TestSyncService::answer_uploads_with_write_checkpoints`]).
    upload_write_checkpoints: AtomicBool,
}

#[derive(Default)]
struct RequestLog {
    sync_requests: Vec<Value>,
    stream_encodings: Vec<String>,
    stream_content_types: Vec<String>,
    uploads: Vec<Value>,
    write_checkpoint_requests: usize,
    checkpoint_requests: Vec<Value>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log(&self) -> MutexGuard<'_, RequestLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The priority of `bucket` (named `rule[...]`).
    fn priority_of(&self, bucket: &str) -> u8 {
        let rule = bucket.split('[').next().unwrap_or(bucket);
        self.priorities.get(rule).copied().unwrap_or(3)
    }

    fn upload_write_checkpoints(&self) -> bool {
        self.upload_write_checkpoints.load(Ordering::Relaxed)
    }

    /// Wakes the open streams to recompute their checkpoint.
    fn notify_streams(&self) {
        self.changes.send_modify(|version| *version += 1);
    }

    fn mint_token(&self, user_id: &str, lifetime: Duration, parameters: Option<&Value>) -> String {
        let now = unix_now();
        let mut claims = json!({
            "sub": user_id,
            "aud": self.key.audience,
            "iat": now,
            "exp": now + lifetime.as_secs() as i64,
            "livesync_generation": self.faults().token_generation,
        });
        if let Some(parameters) = parameters {
            claims["parameters"] = parameters.clone();
        }
        self.key.sign(&claims)
    }
}

/// Resolves once the service is shutting down. (The watch guard is dropped inside, so
/// the future stays `Send`.)
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An in-process PowerSync-protocol service on `127.0.0.1`: see the [module
/// docs](self). Cheap to start (one task); stops on [`shutdown`](Self::shutdown) or
/// when dropped.
pub struct TestSyncService {
    shared: Arc<Shared>,
    address: SocketAddr,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for TestSyncService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSyncService")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl TestSyncService {
    /// A builder with no rules, audience `"livesync-test"` and a fixed test secret.
    pub fn builder() -> TestSyncServiceBuilder {
        TestSyncServiceBuilder {
            rules: Vec::new(),
            key: TokenKey {
                secret: b"livesync-test-secret".to_vec(),
                kid: "livesync-test".into(),
                audience: "livesync-test".into(),
                max_lifetime_secs: 86_400,
            },
            keepalive: DEFAULT_KEEPALIVE,
            ops_per_line: 100,
            priorities: HashMap::new(),
            streams: Vec::new(),
            compression: true,
            bson: true,
            checkpoint_requests: true,
        }
    }

    /// Starts a service with the default settings and no bucket rules.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// The base URL, `http://127.0.0.1:<port>`: the `endpoint` for credentials.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops accepting connections, ends every open stream and waits for the server task.
    pub async fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        let server = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            let _ = server.await;
        }
    }

    // --- tokens -------------------------------------------------------------------

    /// A token for `user_id`, valid for one hour.
    pub fn token(&self, user_id: &str) -> String {
        self.shared
            .mint_token(user_id, Duration::from_secs(3600), None)
    }

    /// A token for `user_id` valid for `lifetime` (whole seconds; the service refuses
    /// more than one day), with an optional `parameters` claim (a JSON object read by
    /// [`ParameterSource::TokenParameter`]).
    pub fn token_with(
        &self,
        user_id: &str,
        lifetime: Duration,
        parameters: Option<Value>,
    ) -> String {
        self.shared
            .mint_token(user_id, lifetime, parameters.as_ref())
    }

    /// A client for this service's backend endpoints that syncs as `user_id`.
    pub fn connector(&self, user_id: &str) -> TestConnector {
        TestConnector::new(Arc::clone(&self.shared), self.url(), user_id)
    }

    // --- data -----------------------------------------------------------------------

    /// Stages a PUT of row `table/id` into `bucket` (created on demand; buckets written
    /// this way are sent to every user). `data` is the row without `id`, a JSON object
    /// (any other JSON value is stored as `{"value": <it>}`). Visible to clients after
    /// [`commit`](Self::commit).
    pub fn put(&self, bucket: &str, table: &str, id: &str, data: Value) {
        let data = into_object(data);
        self.shared.store().stage(Change::Put {
            bucket: bucket.into(),
            table: table.into(),
            id: id.into(),
            data,
        });
    }

    /// Stages a REMOVE of row `table/id` from `bucket`.
    pub fn remove(&self, bucket: &str, table: &str, id: &str) {
        self.shared.store().stage(Change::Remove {
            bucket: bucket.into(),
            table: table.into(),
            id: id.into(),
        });
    }

    /// Stages a write of the backend row `table/id` (as an upload would): the bucket
    /// rules route it (and send REMOVEs from buckets it left). `row` is a JSON object
    /// (any other JSON value is stored as `{"value": <it>}`).
    pub fn upsert_row(&self, table: &str, id: &str, row: Value) {
        let row = into_object(row);
        self.shared.store().stage(Change::Upsert {
            table: table.into(),
            id: id.into(),
            row,
        });
    }

    /// Stages the deletion of the backend row `table/id` from every bucket holding it.
    pub fn delete_row(&self, table: &str, id: &str) {
        self.shared.store().stage(Change::Delete {
            table: table.into(),
            id: id.into(),
        });
    }

    /// Stages a CLEAR of `bucket`: its log is replaced by one CLEAR op and its rows are
    /// gone for clients.
    pub fn clear_bucket(&self, bucket: &str) {
        self.shared.store().stage(Change::ClearBucket {
            bucket: bucket.into(),
        });
    }

    /// Stages dropping `bucket` altogether: clients are told it was removed.
    pub fn delete_bucket(&self, bucket: &str) {
        self.shared.store().stage(Change::DeleteBucket {
            bucket: bucket.into(),
        });
    }

    /// Publishes every staged change as one checkpoint; returns its id (`last_op_id`).
    pub fn commit(&self) -> i64 {
        let checkpoint = self.shared.store().commit();
        self.shared.notify_streams();
        checkpoint
    }

    /// Compacts `bucket` now: ops superseded by a later op on the same row become MOVE
    /// ops (same id and checksum). Clients that download the bucket afterwards receive
    /// the MOVEs.
    pub fn compact(&self, bucket: &str) {
        self.shared.store().compact(bucket);
    }

    /// From now on, uploaded writes to `table` are acknowledged but dropped, as a backend
    /// that rejects them would do (the client's local change is then reverted).
    pub fn reject_uploads_to(&self, table: &str) {
        self.shared.store().reject_uploads_to(table);
    }

    /// The backend table as the service holds it: rows with `id`, sorted by id.
    pub fn rows(&self, table: &str) -> Vec<Value> {
        self.shared.store().rows(table)
    }

    // --- faults ---------------------------------------------------------------------

    /// The next `count` sync requests are answered with HTTP `status` (and the service's
    /// error body).
    pub fn fail_next_requests(&self, count: usize, status: u16) {
        self.shared
            .faults()
            .failing_statuses
            .extend(std::iter::repeat_n(status, count));
    }

    /// The next sync stream to open is cut (connection reset) after `lines` lines.
    pub fn drop_next_connection_after(&self, lines: usize) {
        self.shared.faults().drop_after_lines = Some(lines);
    }

    /// The next checkpoint line that names `bucket` reports a wrong checksum for it.
    pub fn corrupt_next_checksum(&self, bucket: &str) {
        self.shared.faults().corrupt_buckets.insert(bucket.into());
    }

    /// Waits `delay` before every line (zero turns it off).
    pub fn set_line_delay(&self, delay: Duration) {
        self.shared.faults().line_delay = delay;
    }

    /// While `hold` is `true`, every stream sends its checkpoint's data and then waits
    /// before `checkpoint_complete` (as a service pausing between lines would); `false`
    /// lets the held streams go on. To observe what a client shows mid-download.
    ///
    /// ```
    /// # async fn demo(service: livesync::testing::TestSyncService) {
    /// service.hold_checkpoint_completes(true);
    /// // … connect a client and watch `status().downloading` reach the total …
    /// service.hold_checkpoint_completes(false);
    /// # }
    /// ```
    pub fn hold_checkpoint_completes(&self, hold: bool) {
        self.shared.hold_completes.send_replace(hold);
    }

    /// The next `count` checkpoint requests (`POST /sync/checkpoint-request`) are
    /// answered with HTTP `status` (and the service's error body), without keeping the
    /// id.
    ///
    /// ```
    /// # async fn demo(service: livesync::testing::TestSyncService) {
    /// service.fail_next_checkpoint_requests(1, 503);
    /// # }
    /// ```
    pub fn fail_next_checkpoint_requests(&self, count: usize, status: u16) {
        self.shared
            .faults()
            .failing_checkpoint_requests
            .extend(std::iter::repeat_n(status, count));
    }

    /// While `lose` is `true`, `POST /sync/checkpoint-request` acknowledges each id but
    /// does not keep it, as a service that lost it (a failover) would: no checkpoint
    /// carries it until the client posts it again.
    ///
    /// ```
    /// # async fn demo(service: livesync::testing::TestSyncService) {
    /// service.lose_checkpoint_requests(true);
    /// // … a client's request is acknowledged, never synced …
    /// service.lose_checkpoint_requests(false); // the client's repost is kept
    /// # }
    /// ```
    pub fn lose_checkpoint_requests(&self, lose: bool) {
        self.shared.faults().lose_checkpoint_requests = lose;
    }

    /// Sends `line` (any text, valid JSON or not) on every open sync stream, or on the
    /// next one to open when none is open.
    pub fn inject_line(&self, line: impl Into<String>) {
        let line = line.into();
        if self.shared.events.receiver_count() == 0 {
            self.shared.faults().pending_lines.push(line);
        } else {
            let _ = self.shared.events.send(StreamEvent::Line(line));
        }
    }

    /// Sends a line that is not a valid sync line (see [`inject_line`](Self::inject_line)).
    pub fn send_malformed_line(&self) {
        self.inject_line("this is not a sync line");
    }

    /// Expires every token issued so far: open streams send `token_expires_in: 0` and
    /// end, and those tokens are refused with 401 from now on. Tokens minted afterwards
    /// work.
    pub fn expire_tokens(&self) {
        self.shared.faults().token_generation += 1;
        let _ = self.shared.events.send(StreamEvent::ExpireToken);
    }

    /// With `true`, every `/upload` answer that names a `client_id` carries a write
    /// checkpoint covering the upload (`{"data": {"applied": n, "write_checkpoint":
    /// "<id>"}}`), as a backend using custom write checkpoints answers; a client passes
    /// it to `CrudTransaction::complete_with_checkpoint` and needs no
    /// `/write-checkpoint2.json` request.
    pub fn answer_uploads_with_write_checkpoints(&self, answer: bool) {
        self.shared
            .upload_write_checkpoints
            .store(answer, Ordering::Relaxed);
    }

    // --- observation ----------------------------------------------------------------

    /// The JSON bodies of every `/sync/stream` request so far, oldest first (to check
    /// `after` values, `client_id`, parameters).
    pub fn sync_requests(&self) -> Vec<Value> {
        self.shared.log().sync_requests.clone()
    }

    /// The JSON bodies of every `/upload` request so far, oldest first.
    pub fn uploads(&self) -> Vec<Value> {
        self.shared.log().uploads.clone()
    }

    /// How many `/write-checkpoint2.json` requests were answered so far.
    pub fn write_checkpoint_requests(&self) -> usize {
        self.shared.log().write_checkpoint_requests
    }

    /// The JSON bodies of every `POST /sync/checkpoint-request` so far, oldest first,
    /// also those answered 404 by a service built with
    /// [`checkpoint_requests(false)`](TestSyncServiceBuilder::checkpoint_requests): to
    /// check `client_id` and the ids a client proposes.
    ///
    /// ```
    /// # async fn check(service: livesync::testing::TestSyncService) {
    /// for body in service.checkpoint_requests() {
    ///     assert!(body["checkpoint_request_id"].is_string());
    /// }
    /// # }
    /// ```
    pub fn checkpoint_requests(&self) -> Vec<Value> {
        self.shared.log().checkpoint_requests.clone()
    }

    /// How many ops all `data` lines have carried so far (to check nothing is
    /// downloaded twice).
    pub fn ops_sent(&self) -> u64 {
        self.shared.ops_sent.load(Ordering::Relaxed)
    }

    /// How many bytes of sync stream bodies were sent so far, as on the wire (after
    /// compression, before TCP/HTTP framing): to measure what compression saves.
    pub fn stream_bytes_sent(&self) -> u64 {
        self.shared.bytes_sent.load(Ordering::Relaxed)
    }

    /// The `Content-Encoding` of every sync stream served so far, oldest first
    /// (`"identity"` for plain NDJSON).
    pub fn stream_encodings(&self) -> Vec<String> {
        self.shared.log().stream_encodings.clone()
    }

    /// The `Content-Type` of every sync stream served so far, oldest first:
    /// `"application/x-ndjson"` or `"application/vnd.powersync.bson-stream"` (see
    /// [`TestSyncServiceBuilder::bson`]).
    ///
    /// ```
    /// # async fn check(service: livesync::testing::TestSyncService) {
    /// let bson = service
    ///     .stream_content_types()
    ///     .iter()
    ///     .all(|t| t == "application/vnd.powersync.bson-stream");
    /// # let _ = bson;
    /// # }
    /// ```
    pub fn stream_content_types(&self) -> Vec<String> {
        self.shared.log().stream_content_types.clone()
    }

    /// How many sync streams are open right now.
    pub fn open_streams(&self) -> usize {
        self.shared.changes.receiver_count()
    }
}

impl Drop for TestSyncService {
    fn drop(&mut self) {
        self.shared.hold_completes.send_replace(false);
        self.shared.shutdown.send_replace(true);
    }
}

/// A JSON object, or `{"value": v}` for anything else (rows are always objects).
fn into_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => Map::from_iter([("value".to_owned(), other)]),
    }
}
