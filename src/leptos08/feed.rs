//! The background task that keeps one reactive value current, on Leptos 0.8's executor
//! (`any_spawner::Executor::spawn_local`): replaced on a re-key, aborted on cleanup.

use std::future::Future;

use reactive_graph::owner::on_cleanup;

use crate::ui_feed::TaskSlot;

/// Handle to the task feeding one reactive value (at most one runs at a time);
/// `Send + Sync`, so resources' fetchers can hold it.
#[derive(Clone)]
pub(super) struct Feed(TaskSlot);

impl Feed {
    /// A feed owned by the current reactive owner: its cleanup aborts the task, which
    /// drops the table-change subscription the task holds.
    pub(super) fn new() -> Self {
        let slot = TaskSlot::default();
        let owned = slot.clone();
        on_cleanup(move || owned.stop());
        Self(slot)
    }

    /// Runs `task` in place of the current one, if any, on this thread (from an effect
    /// or another task on Leptos' local executor).
    pub(super) fn start(&self, task: impl Future<Output = ()> + 'static) {
        any_spawner::Executor::spawn_local(self.0.replace(task));
    }

    /// [`start`](Self::start) for a `Send` task, which may be started from anywhere:
    /// a resource's fetcher runs as a `Send` task (on the server's thread pool, say).
    /// In the browser it is spawned locally: any_spawner's wasm-bindgen executor
    /// ignores `Executor::spawn`.
    pub(super) fn start_send(&self, task: impl Future<Output = ()> + Send + 'static) {
        if cfg!(target_arch = "wasm32") {
            any_spawner::Executor::spawn_local(self.0.replace(task));
        } else {
            any_spawner::Executor::spawn(self.0.replace(task));
        }
    }

    /// Runs a boxed task (`Send` where Leptos' executor may move it) in place of the
    /// current one.
    pub(super) fn start_task(&self, task: TaskFuture) {
        #[cfg(not(target_arch = "wasm32"))]
        self.start_send(task);
        #[cfg(target_arch = "wasm32")]
        self.start(task);
    }

    /// Aborts the current task.
    pub(super) fn stop(&self) {
        self.0.stop();
    }
}

/// A boxed background task: `Send` on native, where a resource's fetcher (a `Send`
/// task) may start it; local in the browser, which has one thread.
#[cfg(not(target_arch = "wasm32"))]
pub(super) type TaskFuture = futures::future::BoxFuture<'static, ()>;
/// A boxed background task: `Send` on native, where a resource's fetcher (a `Send`
/// task) may start it; local in the browser, which has one thread.
#[cfg(target_arch = "wasm32")]
pub(super) type TaskFuture = futures::future::LocalBoxFuture<'static, ()>;

/// Boxes `task` as a [`TaskFuture`].
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn boxed(task: impl Future<Output = ()> + Send + 'static) -> TaskFuture {
    Box::pin(task)
}

/// Boxes `task` as a [`TaskFuture`].
#[cfg(target_arch = "wasm32")]
pub(super) fn boxed(task: impl Future<Output = ()> + 'static) -> TaskFuture {
    Box::pin(task)
}

/// Whether the current owner renders on the server: its hydration context says it is
/// not a browser. Native code without a hydration context (desktop, tests) is a client.
pub(super) fn on_server() -> bool {
    reactive_graph::owner::Owner::current_shared_context().is_some_and(|sc| !sc.is_browser())
}

/// The fetch future of a resource, which Leptos 0.8 wants `Send`: native queries are;
/// in the browser (one thread) it is wrapped.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn sendable<F: Future + Send>(future: F) -> F {
    future
}

/// The fetch future of a resource, which Leptos 0.8 wants `Send`: native queries are;
/// in the browser (one thread) it is wrapped.
#[cfg(target_arch = "wasm32")]
pub(super) fn sendable<F: Future>(future: F) -> send_wrapper::SendWrapper<F> {
    send_wrapper::SendWrapper::new(future)
}
