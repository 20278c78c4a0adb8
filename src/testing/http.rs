//! The test service's HTTP side: accepting connections, routing, authentication, and
//! the service's JSON error bodies.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{
    ACCEPT, ACCEPT_ENCODING, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, CONTENT_ENCODING,
    CONTENT_TYPE, HeaderValue,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::bson::StreamFormat;
use super::compression::{Encoding, LineEncoder};
use super::jwt::VerifiedToken;
use super::store::Change;
use super::stream::{self, Session};
use super::{Shared, stopped, unix_now};

type Body = BoxBody<Bytes, std::io::Error>;

/// Largest request body accepted (uploads are the big ones).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Accepts connections until shutdown, then lets open ones finish (bounded wait).
pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut stop = shared.shutdown.subscribe();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "test service: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let shared = Arc::clone(&shared);
                connections.spawn(serve_connection(stream, shared));
            }
            () = stopped(&mut stop) => break,
        }
        while connections.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.abort_all();
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let mut stop = shared.shutdown.subscribe();
    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    tracing::debug!(method = %request.method(), %path, "test service request");
    let response = match (request.method(), path.as_str()) {
        (&Method::OPTIONS, _) => Ok(cors_preflight()),
        (&Method::POST, "/sync/stream") => sync_stream(&shared, request).await,
        (&Method::GET, "/write-checkpoint2.json") => write_checkpoint(&shared, &request),
        (&Method::POST, "/sync/checkpoint-request") => checkpoint_request(&shared, request).await,
        (&Method::POST, "/upload") => upload(&shared, request).await,
        (&Method::GET, "/token") => token(&shared, &request),
        _ => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "PSYNC_S0404",
            format!("no route for {} {path}", request.method()),
        )),
    };
    let mut response = response.unwrap_or_else(Refusal::into_response);
    // A browser app is served from another origin than the service: every answer
    // (errors included, so the app can read them) is readable from any origin.
    response
        .headers_mut()
        .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    Ok(response)
}

/// The answer to a browser's CORS preflight: a request with an `Authorization` header
/// (every sync request has one) is preceded by an `OPTIONS` request asking whether that
/// header and the method may be sent.
fn cors_preflight() -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
}

/// A refused request, answered with the service's error body.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
        }
    }

    /// `{"error": {"name", "code", "status", "description"}}`, as the service sends.
    fn into_response(self) -> Response<Body> {
        let name = if self.status == StatusCode::UNAUTHORIZED {
            "AuthorizationError"
        } else {
            "ServiceError"
        };
        let body = json!({"error": {
            "name": name,
            "code": self.code,
            "status": self.status.as_u16(),
            "description": self.description,
        }});
        json_response(self.status, &body)
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Checks `Authorization: Token <jwt>` (or `Bearer`) as the service does.
fn authenticate(shared: &Shared, request: &Request<Incoming>) -> Result<VerifiedToken, Refusal> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let token = header
        .and_then(|h| {
            h.strip_prefix("Token ")
                .or_else(|| h.strip_prefix("Bearer "))
        })
        .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace));
    let Some(token) = token else {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "PSYNC_S2106",
            "Authentication required",
        ));
    };
    let verified = shared
        .key
        .verify(token, unix_now())
        .map_err(|e| Refusal::new(StatusCode::UNAUTHORIZED, e.code, e.description))?;
    let current = shared.faults().token_generation;
    if verified.generation.is_some_and(|g| g < current) {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "PSYNC_S2103",
            "JWT has expired (expired by TestSyncService::expire_tokens)",
        ));
    }
    Ok(verified)
}

async fn read_json(request: Request<Incoming>) -> Result<Value, Refusal> {
    let bytes = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "PSYNC_S2002",
                format!("cannot read body: {e}"),
            )
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "PSYNC_S2002",
            format!("body is not valid JSON: {e}"),
        )
    })
}

async fn sync_stream(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Refusal> {
    let token = authenticate(shared, &request)?;
    if let Some(status) = shared.faults().take_failing_status() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(Refusal::new(
            status,
            "PSYNC_S2001",
            "injected failure (TestSyncService::fail_next_requests)",
        ));
    }
    let accept = request
        .headers()
        .get(ACCEPT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let encoding = Encoding::negotiate(accept.as_deref(), shared.compression);
    let format = StreamFormat::negotiate(
        request
            .headers()
            .get(ACCEPT)
            .and_then(|value| value.to_str().ok()),
        shared.bson,
    );
    let body = read_json(request).await?;
    {
        let mut log = shared.log();
        log.sync_requests.push(body.clone());
        log.stream_encodings
            .push(encoding.header().unwrap_or("identity").to_owned());
        log.stream_content_types
            .push(format.content_type().to_owned());
    }
    let session = Session::new(token, &body)
        .map_err(|message| Refusal::new(StatusCode::BAD_REQUEST, "PSYNC_S2002", message))?;

    let (lines, receiver) = mpsc::channel(16);
    tokio::spawn(stream::run(Arc::clone(shared), session, format, lines));
    let encoder = LineEncoder::new(encoding).map_err(|e| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "PSYNC_S2001",
            e.to_string(),
        )
    })?;
    let counter = Arc::clone(shared);
    // Each line goes through the encoder as it comes (flushed, so the stream stays live);
    // at the end the encoder's trailer closes the body.
    let frames = futures::stream::unfold(
        (receiver, Some(encoder)),
        move |(mut receiver, mut encoder)| {
            let counter = Arc::clone(&counter);
            async move {
                let frame = match receiver.recv().await {
                    Some(Ok(line)) => encoder.as_mut()?.encode(line),
                    Some(Err(error)) => Err(error),
                    None => encoder.take()?.finish(),
                };
                if let Ok(bytes) = &frame {
                    counter
                        .bytes_sent
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                Some((frame.map(Frame::data), (receiver, encoder)))
            }
        },
    );
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    let headers = response.headers_mut();
    if let Some(name) = encoding.header() {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(name));
    }
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn write_checkpoint(
    shared: &Shared,
    request: &Request<Incoming>,
) -> Result<Response<Body>, Refusal> {
    let token = authenticate(shared, request)?;
    let client_id = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("client_id="))
        .map(percent_decode)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "PSYNC_S2002",
                "missing query parameter client_id",
            )
        })?;
    let checkpoint = shared
        .store()
        .create_write_checkpoint(&token.user_id, &client_id);
    shared.log().write_checkpoint_requests += 1;
    shared.notify_streams();
    Ok(json_response(
        StatusCode::OK,
        &json!({"data": {"write_checkpoint": checkpoint.to_string()}}),
    ))
}

/// `POST /sync/checkpoint-request` (docs/sync-protocol.md §1.5): `{"client_id",
/// "checkpoint_request_id"}` with the id as a decimal string (or a JSON number up to
/// 2^53) in 1..=2^63-1; answers `{"data": {"checkpoint_request_id": "<held>"}}`. A
/// service built without checkpoint requests answers 404, as one before 1.24.0 does.
async fn checkpoint_request(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Refusal> {
    let token = authenticate(shared, &request)?;
    let body = read_json(request).await?;
    shared.log().checkpoint_requests.push(body.clone());
    if !shared.checkpoint_requests {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "PSYNC_S0404",
            "no route for POST /sync/checkpoint-request (TestSyncServiceBuilder::checkpoint_requests(false))",
        ));
    }
    let failing = {
        let mut faults = shared.faults();
        (!faults.failing_checkpoint_requests.is_empty())
            .then(|| faults.failing_checkpoint_requests.remove(0))
    };
    if let Some(status) = failing {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(Refusal::new(
            status,
            "PSYNC_S2001",
            "injected failure (TestSyncService::fail_next_checkpoint_requests)",
        ));
    }
    let bad = |message: &str| Refusal::new(StatusCode::BAD_REQUEST, "PSYNC_S2002", message);
    let client_id = body
        .get("client_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| bad("client_id must be a non-empty string"))?;
    const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
    let id = match body.get("checkpoint_request_id") {
        Some(Value::String(text)) => text.parse::<i64>().ok(),
        Some(Value::Number(number)) => number
            .as_u64()
            .filter(|n| *n <= MAX_SAFE_INTEGER)
            .and_then(|n| i64::try_from(n).ok()),
        _ => None,
    }
    .filter(|id| *id >= 1)
    .ok_or_else(|| {
        bad("checkpoint_request_id must be an id in 1..=2^63-1 (a decimal string, or a number up to 2^53)")
    })?;
    let held = if shared.faults().lose_checkpoint_requests {
        id
    } else {
        shared
            .store()
            .request_checkpoint(&token.user_id, client_id, id)
    };
    shared.notify_streams();
    Ok(json_response(
        StatusCode::OK,
        &json!({"data": {"checkpoint_request_id": held.to_string()}}),
    ))
}

/// `POST /upload` — the app backend's half: `{"client_id": "...", "batch": [entries]}`
/// with entries shaped like [`CrudEntry::to_json`](crate::CrudEntry::to_json). Applied
/// in order and published as one checkpoint.
async fn upload(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Refusal> {
    let token = authenticate(shared, &request)?;
    let body = read_json(request).await?;
    let bad = |message: String| Refusal::new(StatusCode::BAD_REQUEST, "PSYNC_S2002", message);
    let entries = body
        .get("batch")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("body must be {\"batch\": [crud entries]}".into()))?;
    let changes = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            UploadedWrite::parse(entry).map_err(|e| bad(format!("batch[{index}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    shared.log().uploads.push(body.clone());
    let applied = {
        let mut store = shared.store();
        let mut applied = 0;
        for write in changes {
            if store.is_rejected(&write.table) {
                continue;
            }
            let change = match write.op.as_str() {
                "PUT" => Change::Upsert {
                    table: write.table,
                    id: write.id,
                    row: write.data,
                },
                "PATCH" => {
                    let mut row = store
                        .row(&write.table, &write.id)
                        .cloned()
                        .unwrap_or_default();
                    row.extend(write.data);
                    Change::Upsert {
                        table: write.table,
                        id: write.id,
                        row,
                    }
                }
                _ => Change::Delete {
                    table: write.table,
                    id: write.id,
                },
            };
            // Committed one by one so a PATCH sees the PUT before it; clients still get
            // one checkpoint, as the lock is held throughout.
            store.stage(change);
            store.commit();
            applied += 1;
        }
        applied
    };
    let mut answer = json!({"data": {"applied": applied}});
    // A backend with custom write checkpoints answers with the one covering this upload
    // (TestSyncService::answer_uploads_with_write_checkpoints).
    let client_id = body.get("client_id").and_then(Value::as_str);
    if let Some(client_id) = client_id.filter(|_| shared.upload_write_checkpoints()) {
        let checkpoint = shared
            .store()
            .create_write_checkpoint(&token.user_id, client_id);
        answer["data"]["write_checkpoint"] = json!(checkpoint.to_string());
    }
    shared.notify_streams();
    Ok(json_response(StatusCode::OK, &answer))
}

/// `GET /token?user_id=<id>[&lifetime_secs=<n>]`: a token for that user, as an app's
/// auth backend would issue after checking its session (`{"token", "expires_at"}` with
/// `expires_at` in Unix seconds). **Unauthenticated**: anyone who can reach the test
/// service gets a token for any user, which is fine on 127.0.0.1 in a test and nowhere
/// else.
fn token(shared: &Shared, request: &Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let query = request.uri().query().unwrap_or("");
    let parameter = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .map(percent_decode)
    };
    let user_id = parameter("user_id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "PSYNC_S2002",
                "missing query parameter user_id",
            )
        })?;
    let lifetime = parameter("lifetime_secs")
        .and_then(|secs| secs.parse().ok())
        .unwrap_or(3600);
    let token = shared.mint_token(&user_id, Duration::from_secs(lifetime), None);
    Ok(json_response(
        StatusCode::OK,
        &json!({"token": token, "expires_at": unix_now() + lifetime as i64}),
    ))
}

/// One validated entry of an upload batch.
struct UploadedWrite {
    op: String,
    table: String,
    id: String,
    data: Map<String, Value>,
}

impl UploadedWrite {
    fn parse(entry: &Value) -> Result<Self, String> {
        let text = |key: &str| {
            entry
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("{key:?} must be a string"))
        };
        let op = text("op")?;
        if !matches!(op.as_str(), "PUT" | "PATCH" | "DELETE") {
            return Err(format!("unknown op {op:?} (expected PUT, PATCH or DELETE)"));
        }
        let data = match entry.get("data") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(data)) => data.clone(),
            Some(_) => return Err("\"data\" must be an object".into()),
        };
        Ok(Self {
            op,
            table: text("type")?,
            id: text("id")?,
            data,
        })
    }
}

/// Decodes `%XX` escapes and `+` in a query value.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
