//! The PowerSync protocol client (docs/sync-protocol.md), split by job:
//!
//! - wire: `protocol` (typed sync lines), `lines` (NDJSON splitter), `documents` (BSON
//!   document splitter), `bson_reader` (serde over one BSON document; `bson_writer`, for tests and the test
//!   service, the other way), `framing` (the
//!   splitter and parser a response's `Content-Type` picks), `transport` (the HTTP
//!   requests);
//! - local sync state, each function running inside a caller's write transaction:
//!   `oplog` (storing data lines, deleting buckets, download counters), `checksums`
//!   (validation at `checkpoint_complete`), `apply` (checkpoint → data tables),
//!   `write_gate` (when downloaded data may be applied), `clear` (sign-out);
//! - one connection: `iteration` (what each line does), `target_checkpoint`,
//!   `download` (the download loop), `upload` (the upload loop), `connection`
//!   (connect/disconnect, credentials, the [`SyncSlot`] of each database),
//!   `checkpoint_requests` (client-chosen write checkpoint ids and the public
//!   [`CheckpointRequest`]);
//! - sync streams: `subscriptions` (as stored), `stream_state` (as one connection sees
//!   them), `streams` (the public handles);
//! - `status` / `options`: the public status value and connection settings.

mod apply;
pub(crate) mod bson_reader;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod bson_writer;
mod checkpoint_requests;
mod checksums;
mod clear;
mod connection;
mod documents;
mod download;
pub(crate) mod framing;
mod iteration;
pub(crate) mod lines;
mod oplog;
mod options;
pub(crate) mod protocol;
pub(crate) mod raw_rows;
mod schema_coverage;
mod status;
mod stream_state;
mod streams;
mod subscriptions;
mod target_checkpoint;
mod transport;
mod upload;
pub(crate) mod write_gate;

pub use checkpoint_requests::CheckpointRequest;
pub(crate) use checkpoint_requests::request_checkpoint;
pub(crate) use connection::{
    SyncSlot, connect, disconnect, disconnect_and_clear, load_offline_status,
};
pub use options::{CheckpointMode, SyncMode, SyncOptions};
pub use status::{
    DownloadProgress, FULL_SYNC, PriorityProgress, PriorityStatus, StreamProgress, SyncError,
    SyncStatus, SyncStreamStatus,
};
pub use streams::{
    DEFAULT_STREAM_TTL, MAX_STREAM_TTL, SubscribeOptions, SyncStream, SyncStreamSubscription,
};

#[cfg(test)]
mod tests;
