//! The writer: one thread that owns the only read-write connection and runs closures
//! sent to it over a channel, answering on a oneshot.
//!
//! Owning the connection on one thread serialises every write without locks, keeps the
//! SQLite hooks on a single thread, and gives a natural point *after* each job where every
//! transaction the job committed is visible to the readers: that is where change
//! notifications are published.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

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

pub(super) type Job = Box<dyn FnOnce(&mut WriterState) + Send>;

/// Handle to the writer thread. Dropping the last handle lets the thread finish the
/// queued jobs and close the connection.
pub(crate) struct Writer {
    /// Shared with the re-run lane (`rerun_lane.rs`) of an in-memory store; closing
    /// takes the sender out.
    jobs: Arc<Mutex<Option<mpsc::Sender<Job>>>>,
    /// Closes (its sender dropped) once the thread has dropped its connection.
    exited: watch::Receiver<()>,
}

impl Writer {
    /// Starts the thread. `init` opens the connection on that thread (so opening never
    /// blocks an async worker); its error is returned here.
    pub(super) async fn start(
        name: &str,
        init: impl FnOnce() -> Result<WriterState> + Send + 'static,
    ) -> Result<Self> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, opened) = oneshot::channel();
        let (exiting, exited) = watch::channel(());
        crate::runtime::threads::start_sqlite_thread(name.to_owned(), "writer", move || {
            let _exiting = exiting; // dropped last, after the connection
            let mut state = match catch_unwind(AssertUnwindSafe(init)) {
                Ok(Ok(state)) => {
                    let _ = ready.send(Ok(()));
                    state
                }
                Ok(Err(e)) => return drop(ready.send(Err(e))),
                Err(panic) => return drop(ready.send(Err(panicked(panic)))),
            };
            let mut busy = false;
            while let Some((job, arrived_quickly)) = next_job(&inbox, busy) {
                busy = arrived_quickly;
                job(&mut state);
            }
            drop(state);
        })?;
        opened.await.map_err(|_| Error::Closed)??;
        Ok(Self {
            jobs: Arc::new(Mutex::new(Some(jobs))),
            exited,
        })
    }

    /// Runs `job` on the writer thread. Panics inside it become [`Error::Panicked`]; a
    /// transaction it leaves open is rolled back.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut WriterState) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.submit(job).await
    }

    /// Queues `job` now (jobs run in the order they were submitted) and returns a future
    /// for its result, so a caller can queue more work before awaiting.
    pub(super) fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut WriterState) -> Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let boxed: Job = Box::new(move |state: &mut WriterState| {
            // Another connection (a second `Database` on the file, another process) may
            // have queued writes since the last job: resynchronise the id counters.
            if let Err(e) = state.crud_ids.reload_if_changed(&state.conn) {
                tracing::warn!(error = %e, "could not check for writes by other connections");
            }
            let result =
                catch_unwind(AssertUnwindSafe(|| job(state))).unwrap_or_else(|p| Err(panicked(p)));
            finish_job(state);
            let _ = reply.send(result);
            // After the answer, so no caller waits for the checkpoint it happens to trigger.
            state.checkpointer.run_if_due(&state.conn);
        });
        let queued = super::send_job(&self.jobs, boxed);
        async move {
            queued?;
            answer.await.map_err(|_| Error::Closed)?
        }
    }

    /// Runs `read` on the writer connection, queued with the writes. A read commits
    /// nothing (the caller refuses writes while it runs), so it skips what a write job
    /// does around its closure: the check for other connections' writes, the change
    /// publication and the checkpoint.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (read, answer) = super::readers::read_job(read);
        super::send_job(
            &self.jobs,
            Box::new(move |state: &mut WriterState| read(&state.conn)),
        )?;
        answer.await
    }

    /// Where the re-run lane of a store without readers queues its reads (each wrapped
    /// by the store so that writes are refused while it runs).
    pub(super) fn read_queue(&self) -> super::rerun_lane::ReadQueue {
        super::rerun_lane::ReadQueue::Writer(Arc::clone(&self.jobs))
    }

    /// Stops accepting jobs and waits until the queued ones ran and the connection closed.
    pub(super) async fn close(&self) {
        super::close_and_wait(&*self.jobs, &self.exited).await;
    }
}

/// How long a busy writer keeps polling for a follow-up job before it sleeps. Apps often
/// issue writes back to back (a loop of `execute().await`); catching the next one without
/// a sleep/wake-up cycle of the thread saves tens of microseconds per write.
const SPIN_FOR_NEXT_JOB: Duration = Duration::from_micros(50);

/// The next job (and whether it arrived within the spin window), or `None` once every
/// handle is gone. The writer only spins while `busy`: when jobs trickle in, spinning
/// would just take a core from the tasks the last commit woke up.
fn next_job(inbox: &mpsc::Receiver<Job>, busy: bool) -> Option<(Job, bool)> {
    let started = Instant::now();
    if busy {
        loop {
            match inbox.try_recv() {
                Ok(job) => return Some((job, true)),
                Err(mpsc::TryRecvError::Disconnected) => return None,
                Err(mpsc::TryRecvError::Empty) if started.elapsed() < SPIN_FOR_NEXT_JOB => {
                    std::thread::yield_now();
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
    }
    let job = inbox.recv().ok()?;
    Some((job, started.elapsed() < SPIN_FOR_NEXT_JOB))
}

/// After every job: never leave a transaction open across jobs, then publish what the
/// job committed (SQLite has made it visible to readers by now).
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

pub(crate) fn panicked(payload: Box<dyn std::any::Any + Send>) -> Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    Error::Panicked { message }
}
