//! Live-query re-runs take turns: at most `turns` of them are queued on the store's
//! connections at once, the others wait here, and the run that ends queues the oldest
//! waiting one (from its connection's thread, onto the connections' shared queue).
//!
//! Why: one commit can make hundreds of live queries stale. Started all at once, their
//! runs took every core from the writer (a file store) or queued ahead of the next write
//! on the writer's own connection (in memory). Waiting here, a query runs once its turn
//! comes, on the data of that moment, and the changes it was told of meanwhile are
//! covered by that one run (the live query discards them, see
//! `TableUpdateStream::discard_covered`).
//!
//! The waiting is not held by the live query's future: a turn is handed from run to run
//! on the connections' threads, so a live query that nobody polls any more (left in a
//! `select!`, kept after a timeout) cannot keep the others waiting. A waiting run that
//! nobody awaits any more (its live query, and every copy that joined its run, dropped)
//! is skipped when its turn comes.
//!
//! Not covered: a job dropped unrun by a connection thread that died outside its
//! panic guard never passes its turn; the store is unusable then anyway.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::readers::ReadJob;
use super::writer::{Job, WriterState, panicked};
use crate::{Error, Result};

/// Where a re-run's read is queued: a file store's reader pool, or an in-memory store's
/// writer. Holds the queue's slot, not its sender, so it never keeps a closed store's
/// threads alive.
#[derive(Clone)]
pub(super) enum ReadQueue {
    Readers(Arc<Mutex<Option<mpsc::Sender<ReadJob>>>>),
    Writer(Arc<Mutex<Option<mpsc::Sender<Job>>>>),
}

impl ReadQueue {
    /// Queues `read`; `false` (and `read` dropped) once the store is closed.
    fn send(&self, read: ReadJob) -> bool {
        match self {
            Self::Readers(jobs) => super::send_job(jobs, read).is_ok(),
            Self::Writer(jobs) => {
                let job: Job = Box::new(move |state: &mut WriterState| read(&state.conn));
                super::send_job(jobs, job).is_ok()
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a push, a pop or a counter update.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The turns of one store's live-query re-runs.
pub(crate) struct RerunLane {
    turns: usize,
    queue: ReadQueue,
    state: Mutex<LaneState>,
}

#[derive(Default)]
struct LaneState {
    /// Runs queued on a connection or running there.
    running: usize,
    /// Runs waiting for a turn, oldest first.
    waiting: VecDeque<ReadJob>,
}

impl RerunLane {
    pub(super) fn new(turns: usize, queue: ReadQueue) -> Arc<Self> {
        Arc::new(Self {
            turns: turns.max(1),
            queue,
            state: Mutex::default(),
        })
    }

    /// Runs `read` on a connection of the store once a turn is free; the future answers
    /// with its result, or [`Error::Closed`]. The read runs whether or not the future is
    /// polled meanwhile, and is skipped if the future was dropped before its turn.
    pub(super) fn run<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let lane = Arc::clone(self);
        let job: ReadJob = Box::new(move |conn: &Connection| {
            if !reply.is_closed() {
                let result = catch_unwind(AssertUnwindSafe(|| read(conn)))
                    .unwrap_or_else(|p| Err(panicked(p)));
                let _ = reply.send(result);
            }
            lane.pass_turn();
        });
        {
            let mut state = lock(&self.state);
            if state.running >= self.turns {
                state.waiting.push_back(job);
                return Self::answer(answer);
            }
            state.running += 1;
        }
        if !self.queue.send(job) {
            self.pass_turn(); // closed: the turn is free again
        }
        Self::answer(answer)
    }

    async fn answer<T>(answer: oneshot::Receiver<Result<T>>) -> Result<T> {
        answer.await.map_err(|_| Error::Closed)?
    }

    /// A run ended (or could not be queued): starts the oldest waiting one in its turn,
    /// or frees the turn. A loop, not a recursion, when the store is closed and every
    /// waiting run fails to queue.
    fn pass_turn(&self) {
        // Before handing the turn to a waiting run, this thread lets the others have the
        // core: the writer (for a file store), the tasks the answer just woke. Without
        // it, back-to-back re-runs kept a core of a 2-core machine busy and 10k writes
        // under 1,000 live queries took 1.37-1.58x their time alone; with it 0.95-1.10x
        // (fewer re-runs, each covering more writes: 12-19k instead of 37-40k).
        if !lock(&self.state).waiting.is_empty() {
            std::thread::yield_now();
        }
        loop {
            let next = {
                let mut state = lock(&self.state);
                match state.waiting.pop_front() {
                    Some(job) => job,
                    None => {
                        state.running -= 1;
                        return;
                    }
                }
            };
            if self.queue.send(next) {
                return;
            }
        }
    }
}
