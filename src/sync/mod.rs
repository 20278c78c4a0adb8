//! The PowerSync protocol client (spec: `sync-protocol.md`).
//!
//! - `protocol` / `lines`: wire types and NDJSON framing;
//! - `storage`: bucket storage, checksums, checkpoint apply and the write gate (SQL);
//! - `iteration`: what each sync line does, for one connection;
//! - `transport`: the HTTP requests;
//! - `engine`: the download and upload loops and the `Database` methods driving them;
//! - `subscriptions` / `stream_state` / `streams`: sync stream subscriptions as stored,
//!   as one connection sees them, and the public handles;
//! - `status` / `options`: the public status value and connection settings.

mod engine;
mod iteration;
pub(crate) mod lines;
mod options;
pub(crate) mod protocol;
mod status;
pub(crate) mod storage;
mod stream_state;
mod streams;
mod subscriptions;
mod transport;

pub(crate) use engine::SyncSlot;
pub use options::SyncOptions;
pub use status::{
    DownloadProgress, FULL_SYNC, PriorityStatus, StreamProgress, SyncError, SyncStatus,
    SyncStreamStatus,
};
pub use streams::{
    DEFAULT_STREAM_TTL, MAX_STREAM_TTL, SubscribeOptions, SyncStream, SyncStreamSubscription,
};

#[cfg(test)]
mod tests;
