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

use futures::channel::oneshot;

use rusqlite::Connection;

use super::change_tracker::ChangeTracker;
use super::crud_functions::CrudIds;
use super::notify::Publisher;
use super::page_storage_wasm::PageSaves;
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
    /// Shared with the page storage's save task, which reads the image from it.
    state: Arc<Mutex<Option<WriterState>>>,
    /// Set for a database on a page's main thread: each commit is saved to OPFS, and the
    /// job's answer waits for that save (`page_storage_wasm.rs`).
    saves: Mutex<Option<Arc<PageSaves>>>,
}

impl Writer {
    /// Opens the connection with `init`, on this thread.
    pub(super) async fn start(
        _name: &str,
        init: impl FnOnce() -> Result<WriterState> + Send + 'static,
    ) -> Result<Self> {
        Ok(Self {
            state: Arc::new(Mutex::new(Some(init()?))),
            saves: Mutex::new(None),
        })
    }

    /// From now on, saves every commit with `saves` before answering the job.
    pub(super) fn save_commits_with(&self, saves: Arc<PageSaves>) {
        *self.saves.lock().unwrap_or_else(PoisonError::into_inner) = Some(saves);
    }

    /// Runs `job` now. (A panic aborts the wasm instance: `wasm32-unknown-unknown`
    /// does not unwind, so there is nothing to turn into [`Error::Panicked`].)
    pub(super) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut WriterState) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.submit(job).await
    }

    /// Runs `read` now on the writer connection (the caller refuses writes while it
    /// runs, so nothing is committed or saved).
    pub(super) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run(move |state| read(&state.conn)).await
    }

    /// Runs `job` now: jobs submitted one after another run in that order, as on native
    /// targets where they are queued. The future is ready at once, except on page storage
    /// after a commit, where it resolves when the commit is saved.
    pub(super) fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut WriterState) -> Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T>> + Send + 'static {
        let (result, saved) = self.run_now(job);
        async move {
            if let Some(saved) = saved {
                // A dropped sender means the store was dropped mid-save: nothing to wait for.
                saved.await.unwrap_or(Ok(()))?;
            }
            result
        }
    }

    fn run_now<T>(
        &self,
        job: impl FnOnce(&mut WriterState) -> Result<T>,
    ) -> (Result<T>, Option<oneshot::Receiver<Result<()>>>) {
        // A job never calls back into the store (its closures are synchronous), so the
        // lock is never taken twice; the single-threaded std mutex would panic if it were.
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(state) = guard.as_mut() else {
            return (Err(Error::Closed), None);
        };
        if let Err(e) = state.crud_ids.reload_if_changed(&state.conn) {
            tracing::warn!(error = %e, "could not check for writes by other connections");
        }
        let commits = state.tracker.commits();
        let result = job(state);
        finish_job(state);
        state.checkpointer.run_if_due(&state.conn);
        let committed = state.tracker.commits() != commits;
        drop(guard);
        let saves = self
            .saves
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let saved = match saves {
            Some(saves) if committed => Some(saves.committed(Arc::downgrade(&self.state))),
            _ => None,
        };
        (result, saved)
    }

    /// Closes the connection, once the last commit is saved (page storage); later jobs
    /// fail with [`Error::Closed`].
    pub(super) async fn close(&self) {
        let saves = self
            .saves
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(flushed) = saves.and_then(|saves| saves.flushed())
            && let Ok(Err(error)) = flushed.await
        {
            tracing::warn!(%error, "closing with the last writes not saved to browser storage");
        }
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
