//! The writer in the browser: the one connection, run on the caller's thread.
//!
//! A page (or worker) of `wasm32-unknown-unknown` has exactly one thread and cannot start
//! another that shares its memory, so there is no writer thread to send jobs to. A job
//! runs synchronously when it is submitted, on the thread that submitted it, which keeps
//! the native writer's contract: jobs run one at a time in submission order, a
//! transaction left open is rolled back, and what a job committed is published before its
//! answer is returned (a caller that awaited a write finds the event on its watcher).
//!
//! Why not a worker: a worker is a separate wasm instance with its own memory, so the
//! closures livesync sends to its writer (and the SQLite hooks and functions that share
//! state with the handle) could not cross; every store call would have to become a
//! serialised message. Running on the caller's thread costs the page the time SQLite
//! takes (measured in the README's browser section), which for an app's reads and writes
//! is well below a frame. To keep SQLite off the page's thread, run the whole app's use
//! of livesync in a dedicated worker, which is also where the persistent OPFS storage
//! works (`open_wasm.rs`).

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;

use super::change_tracker::ChangeTracker;
use super::crud_functions::CrudIds;
use super::notify::Publisher;
use super::wal_checkpoint::Checkpointer;
use crate::{Error, Result};

/// What a writer job can reach.
pub(crate) struct WriterState {
    pub conn: Connection,
    pub tracker: Arc<ChangeTracker>,
    pub crud_ids: Arc<CrudIds>,
    pub publisher: Publisher,
    pub checkpointer: Checkpointer,
}

/// Handle to the connection. `None` once closed.
pub(crate) struct Writer {
    state: Mutex<Option<WriterState>>,
}

impl Writer {
    /// Opens the connection with `init`, on this thread.
    pub(super) async fn start(
        _name: &str,
        init: impl FnOnce() -> Result<WriterState> + Send + 'static,
    ) -> Result<Self> {
        Ok(Self {
            state: Mutex::new(Some(init()?)),
        })
    }

    /// Runs `job` now. (A panic aborts the wasm instance: `wasm32-unknown-unknown`
    /// does not unwind, so there is nothing to turn into [`Error::Panicked`].)
    pub(super) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut WriterState) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.submit(job).await
    }

    /// Runs `job` now and returns its result as a ready future: jobs submitted one after
    /// another run in that order, as on native targets where they are queued.
    pub(super) fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut WriterState) -> Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T>> + Send + 'static {
        let result = self.run_now(job);
        std::future::ready(result)
    }

    fn run_now<T>(&self, job: impl FnOnce(&mut WriterState) -> Result<T>) -> Result<T> {
        // A job never calls back into the store (its closures are synchronous), so the
        // lock is never taken twice; the single-threaded std mutex would panic if it were.
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = guard.as_mut().ok_or(Error::Closed)?;
        if let Err(e) = state.crud_ids.reload_if_changed(&state.conn) {
            tracing::warn!(error = %e, "could not check for writes by other connections");
        }
        let result = job(state);
        finish_job(state);
        state.checkpointer.run_if_due(&state.conn);
        result
    }

    /// Closes the connection; later jobs fail with [`Error::Closed`].
    pub(super) async fn close(&self) {
        drop(
            self.state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}

/// After every job: never leave a transaction open across jobs, then publish what the
/// job committed.
fn finish_job(state: &mut WriterState) {
    if !state.conn.is_autocommit() {
        tracing::warn!("a write closure left a transaction open; rolling it back");
        let _ = state.conn.execute_batch("ROLLBACK");
    }
    state.tracker.after_job(&state.conn);
    for tables in state.tracker.take_committed() {
        state.publisher.publish(tables);
    }
}
