//! The checkpoint the client is downloading towards, held in memory while an iteration
//! runs (docs/sync-protocol.md §2.1–2.2).

use std::collections::BTreeMap;

use super::protocol::BucketChecksum;

/// The checkpoint the client is downloading towards, held in memory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TargetCheckpoint {
    pub(crate) last_op_id: i64,
    pub(crate) write_checkpoint: Option<i64>,
    pub(crate) buckets: BTreeMap<String, BucketChecksum>,
}

impl TargetCheckpoint {
    /// Buckets with priority number ≤ `priority` (all when `None`).
    pub(crate) fn buckets_in_scope(&self, priority: Option<u8>) -> Vec<&BucketChecksum> {
        self.buckets
            .values()
            .filter(|b| priority.is_none_or(|p| b.priority <= p))
            .collect()
    }
}
