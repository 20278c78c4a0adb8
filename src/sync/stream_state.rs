//! What one connection knows about its stream subscriptions (docs/sync-protocol.md §6.4–6.6): which local
//! subscription each bucket serves, their resolved priorities, the service's errors,
//! and the per-stream status built from that.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::protocol::{BucketReason, StreamDescription};
use super::status::{StreamProgress, SyncStreamStatus, from_micros};
use super::subscriptions::{RequestedSubscription, SubscriptionError, SubscriptionRow};
use super::target_checkpoint::TargetCheckpoint;

#[derive(Debug, Default)]
pub(crate) struct StreamState {
    /// The request's `streams.subscriptions`: `{"sub": i}` means `requested[i]`.
    requested: Vec<RequestedSubscription>,
    /// The stored subscriptions, by id.
    rows: Vec<SubscriptionRow>,
    /// `streams` of the last `checkpoint` line (a diff keeps them).
    descriptions: Vec<StreamDescription>,
    errors: Vec<SubscriptionError>,
    /// Subscription id → the buckets it brings, from the tracked checkpoint.
    buckets_of: HashMap<i64, BTreeSet<String>>,
    /// Subscription id → the lowest priority among its buckets.
    priority_of: HashMap<i64, u8>,
}

impl StreamState {
    pub(crate) fn new(requested: Vec<RequestedSubscription>, rows: Vec<SubscriptionRow>) -> Self {
        Self {
            requested,
            rows,
            ..Self::default()
        }
    }

    pub(crate) fn requested(&self) -> &[RequestedSubscription] {
        &self.requested
    }

    /// A `checkpoint` line was reconciled into the table: remember what it said.
    pub(crate) fn reconciled(
        &mut self,
        descriptions: Vec<StreamDescription>,
        errors: Vec<SubscriptionError>,
        rows: Vec<SubscriptionRow>,
    ) {
        self.descriptions = descriptions;
        self.errors = errors;
        self.rows = rows;
    }

    /// The stored rows changed (expiry renewed, synced times set).
    pub(crate) fn set_rows(&mut self, rows: Vec<SubscriptionRow>) {
        self.rows = rows;
    }

    /// Links each subscription to the buckets of `target` that name it (docs/sync-protocol.md §6.4 step 5).
    pub(crate) fn associate(&mut self, target: &TargetCheckpoint) {
        self.buckets_of.clear();
        self.priority_of.clear();
        for bucket in target.buckets.values() {
            for reason in &bucket.subscriptions {
                let id = match *reason {
                    BucketReason::Sub(index) => self.requested.get(index).map(|r| r.id),
                    // A default reason counts for the stream's parameterless row only
                    // when the app did not subscribe to it explicitly (docs/sync-protocol.md §6.4 step 5;
                    // otherwise that subscription's own reason covers the bucket).
                    BucketReason::Default(index) => self.descriptions.get(index).and_then(|d| {
                        self.rows
                            .iter()
                            .find(|r| r.key.name == d.name && r.key.params == "null")
                            .filter(|r| r.ttl.is_none())
                            .map(|r| r.id)
                    }),
                    BucketReason::Unknown => None,
                };
                let Some(id) = id else { continue };
                self.buckets_of
                    .entry(id)
                    .or_default()
                    .insert(bucket.bucket.clone());
                let priority = self.priority_of.entry(id).or_insert(bucket.priority);
                *priority = (*priority).max(bucket.priority);
            }
        }
    }

    /// The subscriptions an apply of `priority` covers: for a full apply, every one of
    /// this connection; for a partial apply, those whose every bucket is of that priority
    /// or higher.
    pub(crate) fn synced_by(&self, priority: Option<u8>) -> Vec<i64> {
        self.rows
            .iter()
            .filter(|row| match priority {
                // Every subscription this connection requested or the service listed by
                // default; not one added since the request (the service has not seen it).
                None => {
                    self.requested.iter().any(|r| r.id == row.id)
                        || (row.ttl.is_none() && row.active)
                }
                Some(p) => self.priority_of.get(&row.id).is_some_and(|own| *own <= p),
            })
            .map(|row| row.id)
            .collect()
    }

    /// Per-stream status; `progress` is `(downloaded, total)` per bucket while a
    /// checkpoint downloads.
    pub(crate) fn statuses(
        &self,
        progress: Option<&BTreeMap<String, (u64, u64)>>,
    ) -> Vec<SyncStreamStatus> {
        self.rows
            .iter()
            .map(|row| {
                let mut status = offline_status(row);
                status.priority = self.priority_of.get(&row.id).copied();
                status.errors = self
                    .errors
                    .iter()
                    .filter(|e| e.id == row.id)
                    .map(|e| e.message.clone())
                    .collect();
                status.progress = progress.map(|per_bucket| {
                    let buckets = self.buckets_of.get(&row.id).into_iter().flatten();
                    buckets.filter_map(|b| per_bucket.get(b)).fold(
                        StreamProgress::default(),
                        |sum, (d, t)| StreamProgress {
                            downloaded: sum.downloaded.saturating_add(*d),
                            total: sum.total.saturating_add(*t),
                        },
                    )
                });
                status
            })
            .collect()
    }
}

/// The stored subscriptions as status without a live connection: no progress; the
/// priority and errors the last checkpoint gave (from `previous`) are kept, so a
/// reconnect does not make them flicker.
pub(crate) fn offline_statuses(
    rows: &[SubscriptionRow],
    previous: &[SyncStreamStatus],
) -> Vec<SyncStreamStatus> {
    rows.iter()
        .map(|row| {
            let mut status = offline_status(row);
            if let Some(known) = previous
                .iter()
                .find(|p| p.name == status.name && p.parameters == status.parameters)
            {
                status.priority = known.priority;
                status.errors = known.errors.clone();
            }
            status
        })
        .collect()
}

/// What the table alone says about a subscription (no priority, progress or errors).
fn offline_status(row: &SubscriptionRow) -> SyncStreamStatus {
    SyncStreamStatus {
        name: row.key.name.clone(),
        parameters: row.key.params_value(),
        priority: None,
        active: row.active,
        is_default: row.is_default,
        has_explicit_subscription: row.ttl.is_some(),
        expires_at: row.expires_at.map(from_micros),
        last_synced_at: row.last_synced_at.map(from_micros),
        progress: None,
        errors: Vec::new(),
    }
}
