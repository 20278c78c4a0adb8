//! The reader pool: a few threads, each owning one read-only connection, taking read
//! closures from a shared queue.
//!
//! In WAL mode readers never wait for the writer and see only committed data. Threads
//! (rather than a runtime's blocking pool) keep the store usable from any executor.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{oneshot, watch};

use super::writer::panicked;
use crate::{Error, Result};

pub(super) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

pub(crate) struct ReaderPool {
    /// Shared with the re-run lane (`rerun_lane.rs`), which queues jobs from other
    /// threads; closing takes the sender out.
    jobs: Arc<Mutex<Option<mpsc::Sender<ReadJob>>>>,
    /// Closes (all senders dropped) once every reader thread has closed its connection.
    exited: watch::Receiver<()>,
}

impl ReaderPool {
    /// Opens `count` read-only connections to `path`, each on its own thread.
    pub(super) async fn open(path: &Path, count: usize, busy_timeout: Duration) -> Result<Self> {
        let (jobs, inbox) = mpsc::channel::<ReadJob>();
        let inbox = Arc::new(Mutex::new(inbox));
        let (exiting, exited) = watch::channel(());
        for index in 0..count.max(1) {
            let path = path.to_path_buf();
            let inbox = Arc::clone(&inbox);
            let (ready, opened) = oneshot::channel();
            let exiting = exiting.clone();
            crate::runtime::threads::start_sqlite_thread(
                format!("livesync-reader-{index}"),
                "reader",
                move || {
                    let _exiting = exiting; // dropped last, after the connection
                    let conn = match open_reader(&path, busy_timeout) {
                        Ok(conn) => {
                            let _ = ready.send(Ok(()));
                            conn
                        }
                        Err(e) => return drop(ready.send(Err(e))),
                    };
                    let conn = conn;
                    loop {
                        // Only one idle thread waits on the queue at a time; the others
                        // wait for this lock, which is released as soon as a job arrives.
                        let job = inbox.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => {
                                job(&conn);
                                // A read must not pin an old snapshot (and hold back WAL
                                // checkpoints) by leaving a transaction open.
                                if !conn.is_autocommit() {
                                    let _ = conn.execute_batch("ROLLBACK");
                                }
                            }
                            Err(_) => break, // pool closed
                        }
                    }
                },
            )?;
            opened.await.map_err(|_| Error::Closed)??;
        }
        drop(exiting);
        Ok(Self {
            jobs: Arc::new(Mutex::new(Some(jobs))),
            exited,
        })
    }

    /// Runs `read` on an idle reader connection.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (job, answer) = read_job(read);
        super::send_job(&self.jobs, job)?;
        answer.await
    }

    /// Where the re-run lane queues its reads.
    pub(super) fn queue(&self) -> super::rerun_lane::ReadQueue {
        super::rerun_lane::ReadQueue::Readers(Arc::clone(&self.jobs))
    }

    /// Stops accepting reads and waits until the queued ones ran and every reader thread
    /// closed its connection.
    pub(super) async fn close(&self) {
        super::close_and_wait(&*self.jobs, &self.exited).await;
    }
}

/// `read` as a job for a connection's thread (a reader, or the writer of a store without
/// readers), and the answer it sends: its result, [`Error::Panicked`] if it panicked, or
/// [`Error::Closed`] if it never ran.
pub(super) fn read_job<T: Send + 'static>(
    read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
) -> (
    ReadJob,
    impl std::future::Future<Output = Result<T>> + Send + 'static,
) {
    let (reply, answer) = oneshot::channel();
    let job: ReadJob = Box::new(move |conn: &Connection| {
        let result =
            catch_unwind(AssertUnwindSafe(|| read(conn))).unwrap_or_else(|p| Err(panicked(p)));
        let _ = reply.send(result);
    });
    (job, async move { answer.await.map_err(|_| Error::Closed)? })
}

fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn =
        Connection::open_with_flags(path, flags).map_err(|e| Error::while_opening(e, path))?;
    conn.busy_timeout(busy_timeout)?;
    super::crud_functions::register_read_only(&conn)?;
    super::query_tables::install_read_recorder(&mut conn)?;
    Ok(conn)
}
