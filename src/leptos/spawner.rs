//! Where the adapter's live tasks run: on the UI thread (signals are `!Send`), through
//! the local spawner the app provides, or on wasm leptos_reactive's own `spawn_local`.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use leptos_reactive::{provide_context, use_context};

/// A boxed `!Send` future with no output: what a local spawner runs.
pub type LocalTask = Pin<Box<dyn Future<Output = ()> + 'static>>;

/// The spawner given to [`provide_local_spawner`], in context.
#[derive(Clone)]
pub(super) struct LocalSpawner(Rc<dyn Fn(LocalTask)>);

impl LocalSpawner {
    /// The spawner provided on this owner or an ancestor; on wasm leptos_reactive's
    /// `spawn_local` (the browser's microtask queue) when none was.
    pub(super) fn current() -> Option<Self> {
        let provided = use_context::<Self>();
        #[cfg(target_arch = "wasm32")]
        let provided = provided.or_else(|| Some(Self(Rc::new(leptos_reactive::spawn_local))));
        provided
    }

    pub(super) fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        (self.0)(Box::pin(task));
    }
}

/// Makes `spawn` run the live tasks of the values created below the current owner
/// (live queries, live signals, the sync status, stream subscriptions). Each task is
/// `!Send`: it must run on this thread, on a local executor the app drives.
///
/// In the browser (`csr`, `hydrate`) this is optional: leptos_reactive's own
/// `spawn_local` is used. On native targets leptos_reactive has no spawner that
/// returns (its `spawn_local` blocks there, or needs a tokio `LocalSet` under `ssr`,
/// where no live task starts anyway), so a desktop app or a test names its own: any
/// local executor works (tokio's `LocalSet`, smol's `LocalExecutor`, a GUI toolkit's
/// event loop). Without one, values keep their first snapshot and an error is logged.
///
/// ```
/// # fn main() -> livesync::Result<()> {
/// use futures::task::LocalSpawnExt;
/// use leptos_reactive::{SignalGetUntracked, create_runtime};
/// use livesync::leptos::{create_live_signal, provide_local_spawner, LocalTask};
/// use livesync::{Database, OpenOptions, Runtime, Schema};
///
/// // No tokio anywhere: `futures`' local pool runs the app and the live tasks.
/// let mut pool = futures::executor::LocalPool::new();
/// let spawner = pool.spawner();
/// pool.run_until(async {
///     let options = OpenOptions::default().runtime(Runtime::none());
///     let db = Database::in_memory_with(Schema::default(), options).await?;
///     let runtime = create_runtime();
///     provide_local_spawner(move |task: LocalTask| spawner.spawn_local(task).unwrap());
///     let answer = create_live_signal(move || db.query::<i64>("SELECT 42"));
///     while answer.get_untracked().is_none() {
///         futures_timer::Delay::new(std::time::Duration::from_millis(1)).await;
///     }
///     assert_eq!(answer.get_untracked().unwrap()?, [42]);
///     runtime.dispose();
///     Ok(())
/// })
/// # }
/// ```
#[track_caller]
pub fn provide_local_spawner(spawn: impl Fn(LocalTask) + 'static) {
    provide_context(LocalSpawner(Rc::new(spawn)));
}
