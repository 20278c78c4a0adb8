//! One sync iteration's state machine (docs/sync-protocol.md §2, §5, §8.1): what each sync line does to
//! the local store and the status, independent of how the lines arrive.
//!
//! Each line is handled in one write transaction, and the in-memory state only advances
//! after it committed, so a failed line leaves memory and storage in agreement.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::apply::{self, ApplyOutcome};
use super::checksums;
use super::oplog::{self, StoredCounts};
use super::protocol::{BucketChecksum, StreamDescription, SyncLine};
use super::status::{self, DownloadProgress, PriorityProgress, StatusCell, SyncStatus};
use super::stream_state::StreamState;
use super::subscriptions::{self, SubscriptionRow};
use super::target_checkpoint::TargetCheckpoint;
use super::write_gate;
use crate::store::Store;
use crate::{Error, Result};

/// What the connection should do after a line.
#[derive(Debug)]
pub(crate) enum Next {
    Continue,
    /// The token expires soon: fetch new credentials, then reconnect without a gap.
    RefreshCredentials,
    /// A keepalive: renew subscription TTLs and reconnect (hidden) if the subscriptions
    /// to request changed (one may have expired).
    CheckSubscriptions,
    /// End the iteration and reconnect after the retry delay; the error (if any) is
    /// reported as the download error.
    Reconnect(Option<Error>),
    /// The token has expired: drop it, then reconnect after the retry delay.
    TokenExpired,
}

/// Per-bucket download counters (docs/sync-protocol.md §7.3).
#[derive(Debug, Clone, Copy)]
struct BucketProgress {
    priority: u8,
    target: u64,
    stored: StoredCounts,
}

/// How many data lines may be queued on the writer before the oldest is awaited.
const MAX_LINES_IN_FLIGHT: usize = 8;

/// A data line queued on the writer: its bucket and the eventual op count.
type StoreAnswer = (String, Pin<Box<dyn Future<Output = Result<u64>> + Send>>);

pub(crate) struct Iteration {
    /// Buckets listed in the request: "known locally" until the first checkpoint.
    requested: Vec<String>,
    target: Option<TargetCheckpoint>,
    /// A validated full checkpoint held back by local writes (docs/sync-protocol.md §5.2).
    blocked: Option<TargetCheckpoint>,
    progress: BTreeMap<String, BucketProgress>,
    /// Data lines being stored, oldest first. Parsing the next line overlaps with the
    /// writer storing the previous ones; anything else waits until they are stored.
    in_flight: VecDeque<StoreAnswer>,
    /// Set (on the writer) when a queued data line failed to store.
    store_failed: Arc<AtomicBool>,
    streams: StreamState,
    /// A checkpoint is tracked and not yet fully applied.
    downloading: bool,
    /// The WAL checkpoints less often for a large download (`Store::set_bulk_writes`).
    bulk: bool,
    /// The connection uploads queued writes (not download-only): a checkpoint they hold
    /// back is only "waiting for the upload", not stuck.
    uploads: bool,
}

impl std::fmt::Debug for Iteration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iteration")
            .field("target", &self.target)
            .field("blocked", &self.blocked)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl Iteration {
    pub(crate) fn new(requested: Vec<String>, streams: StreamState) -> Self {
        Self {
            requested,
            target: None,
            blocked: None,
            progress: BTreeMap::new(),
            in_flight: VecDeque::new(),
            store_failed: Arc::default(),
            streams,
            downloading: false,
            bulk: false,
            uploads: true,
        }
    }

    /// Whether the connection uploads (default `true`); without, a checkpoint held back
    /// by queued writes is reported as [`Error::LocalWritesNotUploaded`].
    pub(crate) fn uploads(mut self, uploads: bool) -> Self {
        self.uploads = uploads;
        self
    }

    /// The stream subscriptions this iteration's request listed.
    pub(crate) fn streams(&self) -> &StreamState {
        &self.streams
    }

    /// The stored subscriptions changed without changing the request (a TTL renewed).
    pub(crate) fn subscriptions_changed(
        &mut self,
        rows: Vec<SubscriptionRow>,
        status: &StatusCell,
    ) {
        self.streams.set_rows(rows);
        let streams = self.stream_statuses();
        status.update(|s| s.streams = streams);
    }

    /// Waits until every queued data line is stored.
    pub(crate) async fn flush(&mut self, status: &StatusCell) -> Result<()> {
        self.settle(status, 0).await
    }

    /// Waits for the oldest queued data line to be stored and counts its ops in the
    /// progress at once (docs/sync-protocol.md §7.3), so the status does not lag behind
    /// the last line of a burst while the service pauses. Pending while none is queued.
    ///
    /// Cancel-safe: dropped before the store finishes, the line stays queued; once the
    /// store's answer is taken, the line is dequeued in the same poll.
    pub(crate) async fn next_stored(&mut self, status: &StatusCell) -> Result<()> {
        let Some((_, answer)) = self.in_flight.front_mut() else {
            return std::future::pending().await;
        };
        let count = answer.await;
        // Dequeued before looking at the answer: a finished future is never polled again.
        let done = self.in_flight.pop_front();
        let count = count?;
        if let Some((bucket, _)) = done
            && self.count_stored(&bucket, count)
        {
            self.publish_progress(status, |_| {});
        }
        Ok(())
    }

    /// Adds `count` stored ops to `bucket`'s progress; `false` for a bucket not tracked.
    fn count_stored(&mut self, bucket: &str, count: u64) -> bool {
        let Some(progress) = self.progress.get_mut(bucket) else {
            return false;
        };
        progress.stored.since_last = progress.stored.since_last.saturating_add(count);
        true
    }

    /// Waits for queued data lines until at most `keep` remain, counting their progress.
    async fn settle(&mut self, status: &StatusCell, keep: usize) -> Result<()> {
        let mut stored_any = false;
        while self.in_flight.len() > keep {
            let Some((bucket, answer)) = self.in_flight.pop_front() else {
                break;
            };
            let count = answer.await?;
            stored_any |= self.count_stored(&bucket, count);
        }
        if stored_any {
            self.publish_progress(status, |_| {});
        }
        Ok(())
    }

    pub(crate) async fn handle(
        &mut self,
        db: &Store,
        status: &StatusCell,
        line: SyncLine,
        line_bytes: usize,
    ) -> Result<Next> {
        let line = match line {
            SyncLine::Data(data) => {
                let bucket = data.bucket.clone();
                let failed = Arc::clone(&self.store_failed);
                let stored = db.queue_transaction(move |tx| {
                    // Lines queued behind a failed one must not be stored either: a gap
                    // would move the bucket's resume position past ops never stored.
                    if failed.load(Ordering::SeqCst) {
                        return Err(Error::Protocol(
                            "data line skipped after an earlier one could not be stored".into(),
                        ));
                    }
                    let count = oplog::store_data(tx, &data, line_bytes).inspect_err(|_| {
                        failed.store(true, Ordering::SeqCst);
                    })?;
                    // The parsed line goes back to be freed here, off the writer thread
                    // (thousands of small strings: freeing them is measurable).
                    Ok((count, data))
                });
                let answer = async move { stored.await.map(|(count, _line)| count) };
                self.in_flight.push_back((bucket, Box::pin(answer)));
                self.settle(status, MAX_LINES_IN_FLIGHT).await?;
                return Ok(Next::Continue);
            }
            other => other,
        };
        self.flush(status).await?;
        match line {
            SyncLine::Checkpoint(checkpoint) => {
                let known: Vec<String> = match &self.target {
                    Some(target) => target.buckets.keys().cloned().collect(),
                    None => self.requested.clone(),
                };
                let target = TargetCheckpoint {
                    last_op_id: checkpoint.last_op_id.0,
                    write_checkpoint: checkpoint.write_checkpoint.map(|w| w.0),
                    buckets: by_name(checkpoint.buckets),
                };
                let removed = known
                    .into_iter()
                    .filter(|name| !target.buckets.contains_key(name))
                    .collect();
                self.track(db, status, target, removed, Some(checkpoint.streams))
                    .await?;
            }
            SyncLine::CheckpointDiff(diff) => {
                let Some(mut target) = self.target.clone() else {
                    return Err(Error::Protocol(
                        "checkpoint_diff without previous checkpoint".into(),
                    ));
                };
                for name in &diff.removed_buckets {
                    target.buckets.remove(name);
                }
                target.buckets.extend(by_name(diff.updated_buckets));
                target.last_op_id = diff.last_op_id.0;
                target.write_checkpoint = diff.write_checkpoint.map(|w| w.0);
                self.track(db, status, target, diff.removed_buckets, None)
                    .await?;
            }
            SyncLine::Data(_) => {} // queued above
            SyncLine::CheckpointComplete { .. } => return self.complete(db, status, None).await,
            SyncLine::PartialCheckpointComplete { priority, .. } => {
                return self.complete(db, status, Some(priority)).await;
            }
            SyncLine::TokenExpiresIn(seconds) => {
                connected(status);
                return Ok(match seconds {
                    ..=0 => Next::TokenExpired,
                    1..=30 => Next::RefreshCredentials,
                    _ => Next::CheckSubscriptions,
                });
            }
            SyncLine::Unknown(kind) => {
                tracing::debug!(kind, "ignoring unknown sync line");
                connected(status);
            }
        }
        Ok(Next::Continue)
    }

    /// The upload queue drained: a checkpoint held back by it may apply now.
    pub(crate) async fn upload_finished(&mut self, db: &Store, status: &StatusCell) -> Result<()> {
        self.flush(status).await?;
        let Some(blocked) = self.blocked.clone() else {
            return Ok(());
        };
        let write_checkpoint = blocked.write_checkpoint;
        let now = status::now_micros();
        let covered = self.streams.synced_by(None);
        let raw_tables = db.raw_tables();
        let (outcome, synced, rows) = db
            .transaction(move |tx| {
                let outcome = apply::apply(tx, &blocked, None, now, &raw_tables)?;
                if outcome == ApplyOutcome::Applied {
                    subscriptions::mark_synced(tx, &covered, now)?;
                }
                Ok((outcome, apply::sync_state(tx)?, subscriptions::rows(tx)?))
            })
            .await?;
        if outcome == ApplyOutcome::Applied {
            tracing::debug!("applied pending checkpoint after completed upload");
            self.blocked = None;
            self.streams.set_rows(rows);
            self.applied_fully(status, &synced, write_checkpoint);
            self.end_bulk(db).await?;
        }
        Ok(())
    }

    /// Makes `target` the tracked checkpoint, deleting buckets it no longer lists.
    async fn track(
        &mut self,
        db: &Store,
        status: &StatusCell,
        target: TargetCheckpoint,
        removed: Vec<String>,
        streams: Option<Vec<StreamDescription>>,
    ) -> Result<()> {
        let for_counts = target.clone();
        let requested = self.streams.requested().to_vec();
        let (counts, reconciled) = db
            .transaction(move |tx| {
                oplog::delete_buckets(tx, removed.iter().map(String::as_str))?;
                let counts = oplog::progress_counts(tx, &for_counts)?;
                // Only a `checkpoint` line describes the streams; a diff keeps them.
                let reconciled = match streams {
                    Some(streams) => {
                        let errors = subscriptions::reconcile(tx, &streams, &requested)?;
                        Some((streams, errors, subscriptions::rows(tx)?))
                    }
                    None => None,
                };
                Ok((counts, reconciled))
            })
            .await?;
        if let Some((descriptions, errors, rows)) = reconciled {
            self.streams.reconciled(descriptions, errors, rows);
        }
        self.streams.associate(&target);
        self.progress = progress_of(&target, &counts);
        self.target = Some(target);
        // A newer checkpoint supersedes one held back by local writes.
        self.blocked = None;
        self.downloading = true;
        let to_download = self.download_progress().total;
        if to_download >= oplog::BULK_DOWNLOAD_OPS && !self.bulk {
            db.set_bulk_writes(true).await?;
            self.bulk = true;
        }
        self.publish_progress(status, |s| {
            s.connected = true;
            s.connecting = false;
        });
        Ok(())
    }

    /// Publishes the download progress (overall and per stream) with `also`.
    fn publish_progress(&self, status: &StatusCell, also: impl FnOnce(&mut SyncStatus)) {
        let progress = self.download_progress();
        let streams = self.stream_statuses();
        status.update(|s| {
            also(s);
            s.downloading = Some(progress);
            s.streams = streams;
        });
    }

    fn stream_statuses(&self) -> Vec<status::SyncStreamStatus> {
        let per_bucket: Option<BTreeMap<String, (u64, u64)>> = self.downloading.then(|| {
            self.progress
                .iter()
                .map(|(name, p)| {
                    let total = p.target.saturating_sub(p.stored.at_last);
                    (name.clone(), (p.stored.since_last, total))
                })
                .collect()
        });
        self.streams.statuses(per_bucket.as_ref())
    }

    /// A large download was applied: back to frequent WAL checkpoints.
    async fn end_bulk(&mut self, db: &Store) -> Result<()> {
        if self.bulk {
            db.set_bulk_writes(false).await?;
            self.bulk = false;
        }
        Ok(())
    }

    fn applied_fully(
        &mut self,
        status: &StatusCell,
        synced: &[(i64, i64)],
        write_checkpoint: Option<i64>,
    ) {
        self.downloading = false;
        if let Some(write_checkpoint) = write_checkpoint {
            status.record_applied_write_checkpoint(write_checkpoint);
        }
        let priority_status = status::priority_status(synced);
        let streams = self.stream_statuses();
        status.update(|s| {
            s.downloading = None;
            s.download_error = None;
            s.streams = streams;
            status::apply_synced(s, priority_status);
        });
    }

    async fn complete(
        &mut self,
        db: &Store,
        status: &StatusCell,
        priority: Option<u8>,
    ) -> Result<Next> {
        let Some(target) = self.target.clone() else {
            return Err(Error::Protocol(
                "checkpoint complete without previous checkpoint".into(),
            ));
        };
        let now = status::now_micros();
        let for_apply = target.clone();
        let covered = self.streams.synced_by(priority);
        let covered_urgent = self.streams.synced_by(Some(0));
        let raw_tables = db.raw_tables();
        let (mismatches, outcome, synced, rows, queued) = db
            .transaction(move |tx| {
                let mismatches = checksums::validate(tx, &for_apply, priority)?;
                if !mismatches.is_empty() {
                    let names = mismatches.iter().map(|m| m.bucket.as_str());
                    oplog::delete_buckets(tx, names)?;
                    return Ok((mismatches, None, Vec::new(), None, false));
                }
                let mut outcome = apply::apply(tx, &for_apply, priority, now, &raw_tables)?;
                if outcome == ApplyOutcome::Applied {
                    subscriptions::mark_synced(tx, &covered, now)?;
                }
                let all_urgent = for_apply.buckets.values().all(|b| b.priority == 0);
                if outcome == ApplyOutcome::Blocked && priority.is_none() && all_urgent {
                    // Priority 0 data is shown despite pending writes; the service sends
                    // no partial line when every bucket has priority 0.
                    if apply::apply(tx, &for_apply, Some(0), now, &raw_tables)?
                        == ApplyOutcome::Applied
                    {
                        subscriptions::mark_synced(tx, &covered_urgent, now)?;
                    }
                    outcome = ApplyOutcome::Blocked;
                }
                let rows = subscriptions::rows(tx)?;
                let queued = outcome == ApplyOutcome::Blocked && !write_gate::crud_queue_empty(tx)?;
                Ok((
                    mismatches,
                    Some(outcome),
                    apply::sync_state(tx)?,
                    Some(rows),
                    queued,
                ))
            })
            .await?;
        if let Some(rows) = rows {
            self.streams.set_rows(rows);
        }
        if !mismatches.is_empty() {
            let described: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
            tracing::warn!(
                "could not apply checkpoint, checksums didn't match, failed for: {}",
                described.join(", ")
            );
            let names: Vec<&str> = mismatches.iter().map(|m| m.bucket.as_str()).collect();
            return Ok(Next::Reconnect(Some(Error::ChecksumMismatch(
                names.join(", "),
            ))));
        }
        match (outcome, priority) {
            (Some(ApplyOutcome::Applied), None) => {
                tracing::debug!(checkpoint = target.last_op_id, "applied checkpoint");
                self.blocked = None;
                self.applied_fully(status, &synced, target.write_checkpoint);
                self.end_bulk(db).await?;
            }
            (Some(ApplyOutcome::Applied), Some(priority)) => {
                tracing::debug!(
                    checkpoint = target.last_op_id,
                    priority,
                    "applied partial checkpoint"
                );
                status.set_synced(&synced);
                self.publish_progress(status, |_| {});
            }
            (_, None) => {
                tracing::info!(
                    checkpoint = target.last_op_id,
                    "could not apply checkpoint due to local data; will retry after the upload"
                );
                status.set_synced(&synced);
                // Download-only: nothing will upload the queued writes, so say why the
                // data does not show (docs/sync-protocol.md §5.5).
                let stuck = queued && !self.uploads;
                self.publish_progress(status, |s| {
                    if stuck {
                        s.download_error = Some(Error::LocalWritesNotUploaded.into());
                    }
                });
                self.blocked = Some(target);
            }
            (_, Some(_)) => {}
        }
        Ok(Next::Continue)
    }

    fn download_progress(&self) -> DownloadProgress {
        let mut per_priority: BTreeMap<u8, (u64, u64)> = BTreeMap::new();
        for bucket in self.progress.values() {
            let total = bucket.target.saturating_sub(bucket.stored.at_last);
            let entry = per_priority.entry(bucket.priority).or_default();
            entry.0 = entry.0.saturating_add(bucket.stored.since_last);
            entry.1 = entry.1.saturating_add(total);
        }
        let per_priority: Vec<PriorityProgress> = per_priority
            .into_iter()
            .map(|(priority, (downloaded, total))| PriorityProgress {
                priority,
                downloaded,
                total,
            })
            .collect();
        DownloadProgress {
            downloaded: per_priority
                .iter()
                .fold(0, |sum, p| sum.saturating_add(p.downloaded)),
            total: per_priority
                .iter()
                .fold(0, |sum, p| sum.saturating_add(p.total)),
            per_priority,
        }
    }
}

fn by_name(buckets: Vec<BucketChecksum>) -> BTreeMap<String, BucketChecksum> {
    buckets.into_iter().map(|b| (b.bucket.clone(), b)).collect()
}

fn progress_of(
    target: &TargetCheckpoint,
    counts: &HashMap<String, StoredCounts>,
) -> BTreeMap<String, BucketProgress> {
    target
        .buckets
        .values()
        .map(|b| {
            let progress = BucketProgress {
                priority: b.priority,
                target: b.count.unwrap_or(0),
                stored: counts.get(&b.bucket).copied().unwrap_or_default(),
            };
            (b.bucket.clone(), progress)
        })
        .collect()
}

fn connected(status: &StatusCell) {
    status.update(|s| {
        s.connected = true;
        s.connecting = false;
    });
}
