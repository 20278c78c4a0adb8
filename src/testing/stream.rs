//! One open `/sync/stream` response: the first checkpoint with its data, then a diff
//! and data for every later change, keepalives, and the injected faults.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::bson::{self, DocumentWriter, StreamFormat};
use super::checksum::as_signed;
use super::faults::StreamEvent;
use super::jwt::VerifiedToken;
use super::rules::UserContext;
use super::store::{BucketSummary, CheckpointView, Op};
use super::streams::{ResolvedStreams, StreamsRequest, resolve};
use super::{Shared, stopped, unix_now};

/// Who is syncing and what they asked for.
pub(crate) struct Session {
    user_id: String,
    token_parameters: Map<String, Value>,
    expires_at: i64,
    client_id: String,
    client_parameters: Map<String, Value>,
    /// Last op id the client has per bucket (from the request, then as sent).
    after: HashMap<String, i64>,
    raw_data: bool,
    streams: StreamsRequest,
    /// What `streams` resolved to (fixed for the connection: a client that changes
    /// its subscriptions reconnects).
    resolved: ResolvedStreams,
}

impl Session {
    /// Reads the request body (`StreamingSyncRequest`); unknown fields are ignored.
    pub(crate) fn new(token: VerifiedToken, body: &Value) -> Result<Self, String> {
        let mut after = HashMap::new();
        match body.get("buckets") {
            None | Some(Value::Null) => {}
            Some(Value::Array(buckets)) => {
                for bucket in buckets {
                    let name = bucket["name"]
                        .as_str()
                        .ok_or("buckets[].name must be a string")?;
                    let op_id = match &bucket["after"] {
                        Value::String(text) => text.parse::<i64>().ok(),
                        Value::Number(number) => number.as_i64(),
                        _ => None,
                    }
                    .ok_or("buckets[].after must be an op id (a decimal string)")?;
                    after.insert(name.to_owned(), op_id);
                }
            }
            Some(_) => return Err("buckets must be an array".into()),
        }
        let client_parameters = match body.get("parameters") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(parameters)) => parameters.clone(),
            Some(_) => return Err("parameters must be an object".into()),
        };
        let streams = StreamsRequest::from_body(body)?;
        Ok(Self {
            streams,
            resolved: ResolvedStreams::default(),
            user_id: token.user_id,
            token_parameters: token.parameters,
            expires_at: token.expires_at,
            client_id: body["client_id"].as_str().unwrap_or_default().to_owned(),
            client_parameters,
            after,
            raw_data: body["raw_data"].as_bool().unwrap_or(false),
        })
    }

    fn user(&self) -> UserContext<'_> {
        UserContext {
            user_id: &self.user_id,
            token_parameters: &self.token_parameters,
            client_parameters: &self.client_parameters,
        }
    }

    /// A bucket's priority: from its stream subscriptions, else its rule's.
    fn priority_of(&self, shared: &Shared, bucket: &str) -> u8 {
        self.resolved
            .buckets
            .get(bucket)
            .map_or_else(|| shared.priority_of(bucket), |b| b.priority)
    }

    /// A `BucketChecksum` entry; the checksum as a signed i32, as the service sends it.
    fn bucket_checksum(&self, shared: &Shared, name: &str, summary: BucketSummary) -> Value {
        let reasons = self
            .resolved
            .buckets
            .get(name)
            .map_or(&[][..], |b| b.reasons.as_slice());
        json!({
            "bucket": name,
            "checksum": as_signed(summary.checksum),
            "priority": self.priority_of(shared, name),
            "count": summary.count,
            "subscriptions": reasons,
        })
    }

    fn seconds_left(&self) -> i64 {
        (self.expires_at - unix_now()).max(0)
    }
}

/// The stream ended: the client went away, or a fault cut it.
struct Ended;

/// Writes lines into the response body (NDJSON lines or BSON documents), applying the
/// line faults.
struct LineWriter {
    out: mpsc::Sender<io::Result<Bytes>>,
    format: StreamFormat,
    shared: Arc<Shared>,
    /// Cut the connection when this many lines were sent.
    drop_after: Option<usize>,
    sent: usize,
}

impl LineWriter {
    async fn send(&mut self, line: &Value) -> Result<(), Ended> {
        match self.format {
            StreamFormat::Ndjson => self.send_raw(line.to_string()).await,
            StreamFormat::Bson => {
                let document = bson::encode_object(line).unwrap_or_default();
                self.send_frame(Bytes::from(document)).await
            }
        }
    }

    /// Sends `line` as given (injected lines, valid JSON or not). On a BSON stream a
    /// JSON object goes out as its document, and anything else as its bytes, which a
    /// client reads as a broken document.
    async fn send_raw(&mut self, mut line: String) -> Result<(), Ended> {
        if self.format == StreamFormat::Bson {
            let document = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|value| bson::encode_object(&value));
            return self
                .send_frame(Bytes::from(document.unwrap_or_else(|| line.into_bytes())))
                .await;
        }
        line.push('\n');
        self.send_frame(Bytes::from(line)).await
    }

    /// Sends one framed line (with its `\n`, or a whole BSON document).
    async fn send_frame(&mut self, frame: Bytes) -> Result<(), Ended> {
        let delay = self.shared.faults().line_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.drop_after == Some(self.sent) {
            // Let the lines already queued reach the client first (hyper flushes when the
            // body has nothing ready), then an error item makes hyper abort the response
            // mid-body: a reset for the client.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let reset = io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection dropped by TestSyncService::drop_next_connection_after",
            );
            let _ = self.out.send(Err(reset)).await;
            return Err(Ended);
        }
        self.out.send(Ok(frame)).await.map_err(|_| Ended)?;
        self.sent += 1;
        Ok(())
    }
}

/// Serves one sync stream until the client leaves, the token expires, a fault ends it
/// or the service shuts down.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut session: Session,
    format: StreamFormat,
    out: mpsc::Sender<io::Result<Bytes>>,
) {
    // Subscribe before the first snapshot, so no change is missed in between.
    let mut changes = shared.changes.subscribe();
    let mut events = shared.events.subscribe();
    let mut stop = shared.shutdown.subscribe();
    let client_gone = out.clone();
    let (drop_after, pending_lines) = {
        let mut faults = shared.faults();
        (
            faults.drop_after_lines.take(),
            std::mem::take(&mut faults.pending_lines),
        )
    };
    let mut lines = LineWriter {
        out,
        format,
        shared: Arc::clone(&shared),
        drop_after,
        sent: 0,
    };
    session.resolved = resolve(&shared.streams, &session.streams, &session.user(), |rule| {
        shared.priorities.get(rule).copied().unwrap_or(3)
    });
    tracing::debug!(user = %session.user_id, "test service: sync stream opened");
    for line in pending_lines {
        if lines.send_raw(line).await.is_err() {
            return;
        }
    }
    let mut sent: Option<CheckpointView> = None;
    let period = shared.keepalive;
    let mut keepalive = tokio::time::interval_at(Instant::now() + period, period);
    let expiry = tokio::time::sleep(Duration::from_secs(session.seconds_left() as u64));
    tokio::pin!(expiry);
    loop {
        changes.borrow_and_update();
        if send_changes(&shared, &mut session, &mut sent, &mut lines)
            .await
            .is_err()
        {
            return;
        }
        let outcome = tokio::select! {
            changed = changes.changed() => if changed.is_err() { Err(Ended) } else { Ok(()) },
            _ = keepalive.tick() => {
                lines.send(&json!({"token_expires_in": session.seconds_left()})).await
            }
            () = &mut expiry => {
                let _ = lines.send(&json!({"token_expires_in": 0})).await;
                Err(Ended)
            }
            event = events.recv() => match event {
                Ok(StreamEvent::Line(line)) => lines.send_raw(line).await,
                Ok(StreamEvent::ExpireToken) => {
                    let _ = lines.send(&json!({"token_expires_in": 0})).await;
                    Err(Ended)
                }
                Err(RecvError::Lagged(_)) => Ok(()),
                Err(RecvError::Closed) => Err(Ended),
            },
            () = stopped(&mut stop) => Err(Ended),
            () = client_gone.closed() => Err(Ended),
        };
        if outcome.is_err() {
            tracing::debug!(user = %session.user_id, "test service: sync stream ended");
            return;
        }
    }
}

/// Sends a checkpoint (first time) or a diff (when the user's buckets or write
/// checkpoint changed), the data the client lacks, and `checkpoint_complete`.
async fn send_changes(
    shared: &Shared,
    session: &mut Session,
    sent: &mut Option<CheckpointView>,
    lines: &mut LineWriter,
) -> Result<(), Ended> {
    let streamed = session.resolved.buckets.keys().cloned().collect();
    let mut view = shared
        .store()
        .checkpoint_for(&session.user(), &session.client_id, &streamed);
    if let Some(previous) = sent.as_ref()
        && previous.buckets == view.buckets
        && previous.write_checkpoint == view.write_checkpoint
    {
        return Ok(()); // nothing this user can see changed
    }
    {
        let mut faults = shared.faults();
        for (name, summary) in &mut view.buckets {
            if faults.corrupt_buckets.remove(name) {
                summary.checksum = summary.checksum.wrapping_add(1);
            }
        }
    }
    let write_checkpoint = view.write_checkpoint.map(|w| w.to_string());
    let line = match sent.as_ref() {
        None => json!({"checkpoint": {
            "last_op_id": view.last_op_id.to_string(),
            "write_checkpoint": write_checkpoint,
            "buckets": view.buckets.iter().map(|(name, s)| session.bucket_checksum(shared, name, *s)).collect::<Vec<_>>(),
            "streams": session.resolved.descriptions,
        }}),
        Some(previous) => {
            let updated: Vec<Value> = view
                .buckets
                .iter()
                .filter(|(name, summary)| previous.buckets.get(*name) != Some(summary))
                .map(|(name, s)| session.bucket_checksum(shared, name, *s))
                .collect();
            let removed: Vec<&String> = previous
                .buckets
                .keys()
                .filter(|name| !view.buckets.contains_key(*name))
                .collect();
            json!({"checkpoint_diff": {
                "last_op_id": view.last_op_id.to_string(),
                "write_checkpoint": write_checkpoint,
                "updated_buckets": updated,
                "removed_buckets": removed,
            }})
        }
    };
    lines.send(&line).await?;
    session
        .after
        .retain(|bucket, _| view.buckets.contains_key(bucket));
    // Data is read from the store one line at a time (never the whole checkpoint at
    // once), so a large download streams in bounded memory.
    // Highest priority first; after each level followed by lower-priority data, a
    // partial_checkpoint_complete lets the client apply what it has.
    let mut buckets: Vec<(u8, String)> = view
        .buckets
        .keys()
        .map(|name| (session.priority_of(shared, name), name.clone()))
        .collect();
    buckets.sort();
    let levels: Vec<u8> = {
        let mut levels: Vec<u8> = buckets.iter().map(|(p, _)| *p).collect();
        levels.dedup();
        levels
    };
    for (index, (priority, bucket)) in buckets.iter().enumerate() {
        let (priority, bucket) = (*priority, bucket.clone());
        loop {
            let after = session.after.get(&bucket).copied().unwrap_or(0);
            let (frame, count, next_after, has_more) = {
                let store = shared.store();
                let (chunk, has_more) =
                    store.ops_between(&bucket, after, view.last_op_id, shared.ops_per_line);
                let Some(last) = chunk.last() else { break };
                let frame = match lines.format {
                    StreamFormat::Ndjson => {
                        ndjson_data_line(&bucket, chunk, session.raw_data, has_more, after)
                    }
                    StreamFormat::Bson => {
                        bson_data_line(&bucket, chunk, session.raw_data, has_more, after)
                    }
                };
                (frame, chunk.len(), last.op_id, has_more)
            };
            lines.send_frame(frame).await?;
            shared.ops_sent.fetch_add(count as u64, Ordering::Relaxed);
            session.after.insert(bucket.clone(), next_after);
            if !has_more {
                break;
            }
        }
        let level_ends = buckets
            .get(index + 1)
            .is_none_or(|(next, _)| *next != priority);
        if level_ends && levels.last().is_some_and(|last| *last != priority) {
            lines
                .send(&json!({"partial_checkpoint_complete": {
                    "last_op_id": view.last_op_id.to_string(),
                    "priority": priority,
                }}))
                .await?;
        }
    }
    let mut held = shared.hold_completes.subscribe();
    tokio::select! {
        _ = held.wait_for(|hold| !hold) => {}
        () = lines.out.closed() => return Err(Ended),
    }
    lines
        .send(&json!({"checkpoint_complete": {"last_op_id": view.last_op_id.to_string()}}))
        .await?;
    *sent = Some(view);
    Ok(())
}

/// One NDJSON `data` line for `ops` of `bucket` (which must not be empty), built as text:
/// streaming a large bucket should cost the service little CPU, since it shares the
/// machine with the client under test.
fn ndjson_data_line(bucket: &str, ops: &[Op], raw_data: bool, has_more: bool, after: i64) -> Bytes {
    let last = ops.last().map_or(0, |op| op.op_id);
    let mut line = String::with_capacity(ops.len() * 160 + 128);
    line.push_str("{\"data\":{\"bucket\":");
    line.push_str(&json!(bucket).to_string());
    line.push_str(",\"data\":[");
    for (index, op) in ops.iter().enumerate() {
        if index > 0 {
            line.push(',');
        }
        op.write_wire(raw_data, &mut line);
    }
    line.push_str(&format!(
        "],\"has_more\":{has_more},\"after\":\"{after}\",\"next_after\":\"{last}\"}}}}\n"
    ));
    Bytes::from(line)
}

/// [`ndjson_data_line`] as one BSON document, written element by element.
fn bson_data_line(bucket: &str, ops: &[Op], raw_data: bool, has_more: bool, after: i64) -> Bytes {
    let last = ops.last().map_or(0, |op| op.op_id);
    let mut document = DocumentWriter::new();
    document.begin_document("data");
    document.string("bucket", bucket);
    document.begin_array("data");
    for (index, op) in ops.iter().enumerate() {
        op.write_bson(raw_data, &index.to_string(), &mut document);
    }
    document.end();
    document.bool("has_more", has_more);
    document.string("after", &after.to_string());
    document.string("next_after", &last.to_string());
    Bytes::from(document.finish())
}
