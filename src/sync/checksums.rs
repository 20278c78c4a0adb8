//! Bucket checksum validation at `checkpoint_complete` (docs/sync-protocol.md §3.4):
//! the local `add_checksum + op_checksum` (u32, wrapping) against the checkpoint's.

use rusqlite::{Connection, OptionalExtension};

use super::target_checkpoint::TargetCheckpoint;
use crate::Result;

/// A bucket whose local checksum disagreed with the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChecksumMismatch {
    pub(crate) bucket: String,
    pub(crate) expected: u32,
    pub(crate) op_checksum: u32,
    pub(crate) add_checksum: u32,
}

impl std::fmt::Display for ChecksumMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let actual = self.op_checksum.wrapping_add(self.add_checksum);
        write!(
            f,
            "{} (expected {:#010x}, got {actual:#010x} = {:#010x} (op) + {:#010x} (add))",
            self.bucket, self.expected, self.op_checksum, self.add_checksum
        )
    }
}

/// Compares the local checksums of the buckets in scope with the checkpoint's (docs/sync-protocol.md §3.4).
pub(crate) fn validate(
    conn: &Connection,
    checkpoint: &TargetCheckpoint,
    priority: Option<u8>,
) -> Result<Vec<ChecksumMismatch>> {
    let mut stmt =
        conn.prepare_cached("SELECT add_checksum, op_checksum FROM ps_buckets WHERE name = ?1")?;
    let mut mismatches = Vec::new();
    for bucket in checkpoint.buckets_in_scope(priority) {
        let (add, op): (i64, i64) = stmt
            .query_row([&bucket.bucket], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0));
        let (add, op) = (add as u32, op as u32);
        if add.wrapping_add(op) != bucket.checksum.0 {
            mismatches.push(ChecksumMismatch {
                bucket: bucket.bucket.clone(),
                expected: bucket.checksum.0,
                op_checksum: op,
                add_checksum: add,
            });
        }
    }
    Ok(mismatches)
}
