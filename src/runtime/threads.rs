//! Where blocking SQLite work runs: on native targets, threads livesync starts itself
//! (the store's `livesync-writer` and `livesync-reader-N`), each owning its connection,
//! so no executor ever blocks on SQLite and any executor can await the answers.
//!
//! The browser build has no threads to start (`std::thread::spawn` fails on
//! `wasm32-unknown-unknown`): its store runs its one connection on the caller's thread,
//! the page's or a worker's (`store/writer_wasm.rs` says why not a worker of its own),
//! so this module is native only.

use crate::{Error, Result};

/// Starts the named thread that runs `body` (the store's `thread` kind, for errors).
pub(crate) fn start_sqlite_thread(
    name: String,
    thread: &'static str,
    body: impl FnOnce() + Send + 'static,
) -> Result<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(body)
        .map(drop)
        .map_err(|e| Error::thread_spawn(thread, e))
}
