//! What both Leptos adapters (`livesync::leptos` on leptos_reactive 0.6 and
//! `livesync::leptos08` on reactive_graph 0.8) share, with no Leptos type in it: the
//! slot holding the one background task that keeps a reactive value current (replaced
//! on a re-key, aborted on cleanup or when the last handle goes), and the comparison that
//! keeps an unchanged result from being set again.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::{AbortHandle, Abortable};

/// Handle to the task feeding one reactive value; at most one runs at a time. Clones
/// share the slot. `Send + Sync`, so it can go into Leptos 0.8's `on_cleanup`.
#[derive(Clone, Default)]
pub(crate) struct TaskSlot(Arc<Running>);

/// The running task's abort handle. Aborting also on drop covers a reactive runtime
/// dropped as a whole without running its cleanups: once nothing holds the slot, its
/// task stops.
#[derive(Default)]
struct Running(Mutex<Option<AbortHandle>>);

impl Running {
    fn stop(&self) {
        let running = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(abort) = running {
            abort.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TaskSlot {
    /// Stops the current task and makes `task` the slot's task: the returned future (to
    /// be spawned by the caller, on whichever executor fits) runs `task` until the slot
    /// stops it. It is `Send` when `task` is. The task must not hold this slot, or
    /// dropping its owner could not stop it.
    pub(crate) fn replace<F>(&self, task: F) -> impl Future<Output = ()> + use<F>
    where
        F: Future<Output = ()>,
    {
        self.stop();
        let (abort, registration) = AbortHandle::new_pair();
        *self.0.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(abort);
        async move {
            let _ = Abortable::new(task, registration).await;
        }
    }

    /// Aborts the current task; the executor drops it (and the table-change subscription
    /// it holds) at its next poll.
    pub(crate) fn stop(&self) {
        self.0.stop();
    }
}

/// Whether a reactive value that holds `current` would not change by taking `next`: both
/// are rows and they are equal. Errors always count as a change, so they are shown.
pub(crate) fn unchanged<O: PartialEq>(
    current: Option<&crate::Result<O>>,
    next: &crate::Result<O>,
) -> bool {
    matches!((current, next), (Some(Ok(a)), Ok(b)) if a == b)
}

/// Passes every result of `live` to `emit` until `emit` returns `false`
/// (the reactive value is gone) or the live query ends.
pub(crate) async fn pump<T>(
    mut live: crate::LiveQuery<T>,
    mut emit: impl FnMut(crate::Result<Vec<T>>) -> bool,
) {
    use futures::StreamExt;
    while let Some(next) = live.next().await {
        if !emit(next) {
            break;
        }
    }
}

/// The task behind both adapters' `use_sync_stream`: subscribes to `stream` and holds the
/// subscription until the task is aborted (the owner's cleanup), which drops the handle
/// and so releases the subscription.
pub(crate) async fn hold_subscription(stream: crate::SyncStream) {
    match stream.subscribe().await {
        Ok(subscription) => {
            std::future::pending::<()>().await;
            drop(subscription);
        }
        Err(error) => {
            tracing::warn!(%error, stream = stream.name(), "could not subscribe to the sync stream");
        }
    }
}
