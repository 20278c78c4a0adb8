//! Faults the test service can be told to inject, for testing a client's reliability.

use std::collections::HashSet;
use std::time::Duration;

/// Pending faults. One-shot faults are consumed by the request or line they hit.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// The next sync requests are answered with these statuses, in order.
    pub(crate) failing_statuses: Vec<u16>,
    /// The next sync stream is cut (connection reset) after this many lines.
    pub(crate) drop_after_lines: Option<usize>,
    /// The next checkpoint line naming one of these buckets reports a wrong checksum.
    pub(crate) corrupt_buckets: HashSet<String>,
    /// Wait before every line.
    pub(crate) line_delay: Duration,
    /// Raw lines for the next stream to open (when none was open to take them).
    pub(crate) pending_lines: Vec<String>,
    /// Tokens minted before `expire_tokens` carry a smaller generation and are refused.
    pub(crate) token_generation: u64,
    /// Checkpoint requests are acknowledged but not kept.
    pub(crate) lose_checkpoint_requests: bool,
    /// The next checkpoint requests are answered with these statuses, in order.
    pub(crate) failing_checkpoint_requests: Vec<u16>,
}

impl Faults {
    /// The status the next sync request must fail with, if one was asked for.
    pub(crate) fn take_failing_status(&mut self) -> Option<u16> {
        (!self.failing_statuses.is_empty()).then(|| self.failing_statuses.remove(0))
    }
}

/// Told to every open sync stream.
#[derive(Debug, Clone)]
pub(crate) enum StreamEvent {
    /// Send this raw line (which need not be valid JSON).
    Line(String),
    /// Tokens were expired: send `token_expires_in: 0` and end the stream.
    ExpireToken,
}
