//! The background task that keeps one reactive value current: started on the local
//! executor, replaced when the value is re-keyed, stopped when the owner is disposed.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use futures::future::{AbortHandle, Abortable};
use leptos_reactive::on_cleanup;

use super::spawner::LocalSpawner;

/// Handle to the task feeding one reactive value (at most one runs at a time).
#[derive(Clone)]
pub(super) struct Feed {
    running: Rc<Running>,
    /// Taken from context when the feed is created (`start` may run later, elsewhere).
    spawner: Option<LocalSpawner>,
}

/// The running task's abort handle. Aborting also on drop covers a runtime disposed as a
/// whole (`Runtime::dispose` drops the owners' closures without running their
/// `on_cleanup`s): once nothing holds the feed, its task stops.
#[derive(Default)]
struct Running(RefCell<Option<AbortHandle>>);

impl Running {
    fn stop(&self) {
        if let Some(abort) = self.0.borrow_mut().take() {
            abort.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Feed {
    /// A feed owned by the current reactive owner: disposing the owner aborts its task.
    /// The task must not hold the feed itself, or dropping the owner could not stop it.
    pub(super) fn new() -> Self {
        let feed = Self {
            running: Rc::default(),
            spawner: LocalSpawner::current(),
        };
        let owned = feed.clone();
        // Dropping the task (not just letting it notice a disposed signal at its next item)
        // is what releases the table-change subscription right away.
        on_cleanup(move || owned.stop());
        feed
    }

    /// Runs `task` in place of the current one, if any.
    pub(super) fn start(&self, task: impl Future<Output = ()> + 'static) {
        self.stop();
        let Some(spawner) = &self.spawner else {
            tracing::error!(
                "livesync::leptos: no local spawner, so live values stay snapshots; call livesync::leptos::provide_local_spawner near the root"
            );
            return;
        };
        let (abort, registration) = AbortHandle::new_pair();
        spawner.spawn(async move {
            let _ = Abortable::new(task, registration).await;
        });
        *self.running.0.borrow_mut() = Some(abort);
    }

    /// Aborts the current task; the executor drops it (and what it holds) at its next poll.
    pub(super) fn stop(&self) {
        self.running.stop();
    }
}
