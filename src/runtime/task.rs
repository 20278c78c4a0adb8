//! Background tasks that can be cancelled and awaited on any executor: the future is
//! wrapped so that cancelling makes it complete, and its end (or its being dropped by
//! the executor) is reported on a channel. An executor therefore only has to run
//! futures; it never has to hand out join handles.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::channel::oneshot;
use futures::future::{AbortHandle, Abortable};

/// How many of one database's background tasks exist (spawned and not yet dropped).
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskCount(Arc<AtomicUsize>);

impl TaskCount {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// Decrements the count when the task's future is dropped, however that happens.
struct Counted(TaskCount);

impl Counted {
    fn new(count: &TaskCount) -> Self {
        count.0.fetch_add(1, Ordering::AcqRel);
        Self(count.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The handle of a spawned task.
#[derive(Debug)]
pub(crate) struct BackgroundTask {
    abort: AbortHandle,
    gone: oneshot::Receiver<()>,
}

impl BackgroundTask {
    /// Cancels the task and waits until its future has been dropped (with everything it
    /// held), whether it was running, waiting, or had already finished.
    pub(crate) async fn cancel(self) {
        self.abort.abort();
        // An error means the sender was dropped without sending: the executor dropped
        // the task (e.g. it shut down). Either way the future is gone.
        let _ = self.gone.await;
    }
}

/// `future` wrapped for spawning, and its handle.
pub(super) fn cancellable<F: Future<Output = ()> + 'static>(
    count: &TaskCount,
    future: F,
) -> (impl Future<Output = ()> + 'static + use<F>, BackgroundTask) {
    let (abort, registration) = AbortHandle::new_pair();
    let (report, gone) = oneshot::channel();
    let counted = Counted::new(count);
    let task = async move {
        // The inner future is dropped at the end of this statement, before the count
        // goes down and the handle hears of it.
        let _ = Abortable::new(future, registration).await;
        drop(counted);
        let _ = report.send(());
    };
    (task, BackgroundTask { abort, gone })
}
