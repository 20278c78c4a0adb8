//! The background task that keeps one reactive value current: started on the local
//! executor, replaced when the value is re-keyed, stopped when the owner is disposed.
//! The task slot itself is shared with the Leptos 0.8 adapter (`crate::ui_feed`).

use std::future::Future;

use leptos_reactive::on_cleanup;

use super::spawner::LocalSpawner;
use crate::ui_feed::TaskSlot;

/// Handle to the task feeding one reactive value (at most one runs at a time).
#[derive(Clone)]
pub(super) struct Feed {
    running: TaskSlot,
    /// Taken from context when the feed is created (`start` may run later, elsewhere).
    spawner: Option<LocalSpawner>,
}

impl Feed {
    /// A feed owned by the current reactive owner: disposing the owner aborts its task.
    /// The task must not hold the feed itself, or dropping the owner could not stop it
    /// (`Runtime::dispose` drops the owners' closures without running their
    /// `on_cleanup`s; the slot aborts its task once nothing holds it).
    pub(super) fn new() -> Self {
        let feed = Self {
            running: TaskSlot::default(),
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
        let Some(spawner) = &self.spawner else {
            self.stop();
            tracing::error!(
                "livesync::leptos: no local spawner, so live values stay snapshots; call livesync::leptos::provide_local_spawner near the root"
            );
            return;
        };
        spawner.spawn(self.running.replace(task));
    }

    /// Aborts the current task; the executor drops it (and what it holds) at its next poll.
    pub(super) fn stop(&self) {
        self.running.stop();
    }
}
