//! The platform seam: what livesync needs from the environment it runs in, and nothing
//! else. Three things:
//!
//! - **background tasks** ([`Runtime::spawn`], `task.rs`): the sync engine's download and
//!   upload loops, started on the app's executor and cancelled (and awaited) on
//!   `disconnect` / `close`;
//! - **time** (`clock.rs`): the clock and the timers behind the live-query throttle, retry
//!   delays, the upload throttle, the stream's idle deadline and request timeouts;
//! - **where blocking SQLite work runs** (`threads.rs`): the store's writer and reader
//!   threads on native targets; in the browser, the caller's thread.
//!
//! HTTP is not part of the seam: under tokio livesync's requests use reqwest on the
//! app's tokio runtime, under any other runtime the backend of feature `async-io-http`
//! (`http_client/async_io_backend/`), which needs no tokio. Only without that feature
//! does reqwest need a tokio reactor outside tokio; `http_io.rs` then supplies one.
//!
//! The public face is one type, [`Runtime`], chosen once per database through
//! [`OpenOptions::runtime`](crate::OpenOptions::runtime). The glue for tokio
//! (`tokio_glue.rs`, feature `tokio`, the default) and smol (`smol_glue.rs`, feature
//! `smol`) lives here, and any other executor plugs in with a [`Spawner`]. No tokio type
//! appears in this API: tokio's `sync` channels are used inside livesync because they
//! need no reactor and work on every executor.

mod clock;
#[cfg(all(not(target_arch = "wasm32"), not(feature = "async-io-http")))]
mod http_io;
#[cfg(feature = "smol")]
mod smol_glue;
mod task;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod threads;
// tokio's runtime and timers do not run in the browser: there the feature is inert.
#[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
mod tokio_glue;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use clock::{Elapsed, IdleDeadline, Instant, system_now};
#[cfg(all(not(target_arch = "wasm32"), not(feature = "async-io-http")))]
pub(crate) use http_io::{stream_with_reactor, with_reactor};
pub(crate) use task::{BackgroundTask, TaskCount};

/// `future` as it is: reqwest is only polled where its I/O works without help (under a
/// tokio runtime, or in the browser, where it is `fetch`).
#[cfg(any(target_arch = "wasm32", feature = "async-io-http"))]
pub(crate) fn with_reactor<F: Future>(future: F) -> F {
    future
}

/// `stream` as it is, like [`with_reactor`].
#[cfg(any(target_arch = "wasm32", feature = "async-io-http"))]
pub(crate) fn stream_with_reactor<S: futures::Stream>(stream: S) -> S {
    stream
}

use crate::{Error, Result};

/// Now, for code that has no [`Runtime`] at hand (sync times, subscription expiry):
/// tokio's clock inside a tokio runtime (so a paused test clock moves it), else the
/// system's.
pub(crate) fn ambient_now() -> Instant {
    #[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
    return tokio_glue::now();
    #[cfg(not(all(feature = "tokio", not(target_arch = "wasm32"))))]
    return clock::now();
}

/// A boxed future with no output: what a [`Spawner`] runs. `Send` on native targets;
/// in the browser (one thread, `!Send` fetch and timer futures) it is not.
#[cfg(not(target_arch = "wasm32"))]
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
/// A boxed future with no output: what a [`Spawner`] runs. `Send` on native targets;
/// in the browser (one thread, `!Send` fetch and timer futures) it is not.
#[cfg(target_arch = "wasm32")]
pub type Task = Pin<Box<dyn Future<Output = ()> + 'static>>;

/// A boxed, `Send` future that completes after a delay: what a [`Timer`] returns.
/// (`Send` everywhere, so a [`LiveQuery`](crate::LiveQuery) is `Send` everywhere; the
/// browser's timers are wrapped for that, see `clock.rs`.)
pub type Delay = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// `Send` on native targets, where background tasks may move between threads; nothing
/// in the browser, where there is one thread and its futures are `!Send`.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send> MaybeSend for T {}
/// `Send` on native targets, where background tasks may move between threads; nothing
/// in the browser, where there is one thread and its futures are `!Send`.
#[cfg(target_arch = "wasm32")]
pub(crate) trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T> MaybeSend for T {}

/// Runs livesync's background tasks on an executor of the app's choosing.
///
/// livesync spawns few tasks (the two sync loops per connection) and cancels them
/// itself, so a spawner only has to run a future to completion; it returns nothing and
/// needs no join handle. Any `Fn(Task) + Send + Sync + 'static` closure is a spawner.
///
/// ```
/// use livesync::{Runtime, Task};
///
/// // Each task on a thread of its own, driven by `futures`' simple executor.
/// let runtime = Runtime::custom(|task: Task| {
///     std::thread::spawn(move || futures::executor::block_on(task));
/// });
/// # let _ = runtime;
/// ```
pub trait Spawner: Send + Sync + 'static {
    /// Starts `task` in the background. The task must be polled until it completes or
    /// is dropped; livesync cancels it by making it complete.
    fn spawn(&self, task: Task);
}

impl<F: Fn(Task) + Send + Sync + 'static> Spawner for F {
    fn spawn(&self, task: Task) {
        self(task)
    }
}

/// Delays for an executor that has timers of its own (see [`Runtime::with_timer`]).
/// Any `Fn(Duration) -> Delay + Send + Sync + 'static` closure is a timer.
pub trait Timer: Send + Sync + 'static {
    /// A future that completes once `duration` has passed.
    fn delay(&self, duration: Duration) -> Delay;
}

impl<F: Fn(Duration) -> Delay + Send + Sync + 'static> Timer for F {
    fn delay(&self, duration: Duration) -> Delay {
        self(duration)
    }
}

/// Where a database runs its background work and takes its timers from: tokio, smol,
/// or any executor through a [`Spawner`]. Set it with
/// [`OpenOptions::runtime`](crate::OpenOptions::runtime); the default is
/// [`Runtime::tokio`] with the `tokio` feature (on by default), else [`Runtime::none`];
/// in the browser (`wasm32`) it is always `Runtime::browser()`.
///
/// What depends on it:
/// - [`Database::connect`](crate::Database::connect) spawns the download and upload loops
///   with it; [`disconnect`](crate::Database::disconnect) and
///   [`close`](crate::Database::close) cancel them and wait until they are gone;
/// - timers: the live-query throttle, retry delays, the upload throttle, the sync
///   stream's idle deadline. Live queries need no executor at all: polled by any
///   executor (even `futures::executor::block_on`) they work with every runtime.
///
/// SQLite work never runs on the executor: the store's own threads do it.
///
/// ```
/// # fn main() -> livesync::Result<()> {
/// use futures::StreamExt;
/// use livesync::{Database, OpenOptions, Runtime, Schema};
///
/// futures::executor::block_on(async {
///     // No executor at all: local reads, writes and live queries still work.
///     let options = OpenOptions::default().runtime(Runtime::none());
///     let db = Database::in_memory_with(Schema::default(), options).await?;
///     db.execute_batch("CREATE TABLE t(x)").await?;
///     let mut count = db.query::<i64>("SELECT count(*) FROM t").watch();
///     assert_eq!(count.next().await.unwrap()?, [0]);
///     db.execute("INSERT INTO t VALUES (1)", ()).await?;
///     assert_eq!(count.next().await.unwrap()?, [1]); // after the 30 ms throttle
///     db.close().await;
///     Ok(())
/// })
/// # }
/// ```
#[derive(Clone)]
pub struct Runtime {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// No executor: nothing can be spawned; timers are reactor-free.
    None,
    #[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
    Tokio,
    #[cfg(feature = "smol")]
    Smol(Arc<async_executor::Executor<'static>>),
    /// The browser's event loop (`wasm_bindgen_futures::spawn_local`).
    #[cfg(target_arch = "wasm32")]
    Browser,
    Custom {
        spawner: Arc<dyn Spawner>,
        timer: Option<Arc<dyn Timer>>,
    },
}

impl Default for Runtime {
    fn default() -> Self {
        #[cfg(target_arch = "wasm32")]
        return Self::browser();
        #[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
        return Self::tokio();
        #[cfg(all(not(feature = "tokio"), not(target_arch = "wasm32")))]
        return Self::none();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match &self.kind {
            Kind::None => "none",
            #[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
            Kind::Tokio => "tokio",
            #[cfg(feature = "smol")]
            Kind::Smol(_) => "smol",
            #[cfg(target_arch = "wasm32")]
            Kind::Browser => "browser",
            Kind::Custom { timer: None, .. } => "custom",
            Kind::Custom { timer: Some(_), .. } => "custom with timer",
        };
        f.debug_tuple("Runtime").field(&name).finish()
    }
}

impl Runtime {
    /// tokio (feature `tokio`, the default): tasks are spawned on the tokio runtime
    /// current when [`connect`](crate::Database::connect) is called (either flavour;
    /// it needs its time driver, as `enable_all` gives), and timers are tokio's, so a
    /// test's paused clock (`start_paused`, `time::advance`) applies to livesync too.
    /// Polled outside any tokio runtime, timers fall back to a reactor-free timer.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use livesync::{Database, OpenOptions, Runtime, Schema};
    /// let options = OpenOptions::default().runtime(Runtime::tokio()); // the default anyway
    /// let db = Database::in_memory_with(Schema::default(), options).await?;
    /// # db.close().await; Ok(()) }
    /// ```
    #[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn tokio() -> Self {
        Self { kind: Kind::Tokio }
    }

    /// smol (feature `smol`): tasks are spawned on `executor` (an
    /// `async_executor::Executor`, which is what `smol::Executor` is), timers are
    /// `async-io`'s. The app keeps running the executor (`executor.run(..)`); a task of
    /// an executor that nobody runs never makes progress.
    ///
    /// Sync's HTTP requests need no tokio either: the feature implies `async-io-http`,
    /// whose client (hyper over `async-io` sockets, TLS through `futures-rustls`)
    /// replaces reqwest for this runtime, so a smol app starts no tokio runtime.
    ///
    /// ```
    /// # fn main() -> livesync::Result<()> {
    /// use std::sync::Arc;
    /// use livesync::{Database, OpenOptions, Runtime, Schema};
    ///
    /// let executor = Arc::new(async_executor::Executor::new());
    /// let options = OpenOptions::default().runtime(Runtime::smol(executor.clone()));
    /// async_io::block_on(executor.run(async {
    ///     let db = Database::in_memory_with(Schema::default(), options).await?;
    ///     db.close().await;
    ///     Ok(())
    /// }))
    /// # }
    /// ```
    #[cfg(feature = "smol")]
    #[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
    pub fn smol(executor: Arc<async_executor::Executor<'static>>) -> Self {
        Self {
            kind: Kind::Smol(executor),
        }
    }

    /// The browser (`wasm32` only, and the default there): tasks run on the page's or
    /// worker's event loop through `wasm_bindgen_futures::spawn_local`, timers are
    /// `setTimeout`. Nothing to set up; Dioxus web and Leptos CSR apps run on the same
    /// loop.
    #[cfg(target_arch = "wasm32")]
    pub fn browser() -> Self {
        Self {
            kind: Kind::Browser,
        }
    }

    /// Any other executor: `spawner` starts the background tasks; timers are a
    /// reactor-free timer thread unless [`with_timer`](Self::with_timer) gives the
    /// executor's own.
    ///
    /// Sync's HTTP requests: with the feature `async-io-http` (or `smol`) they go
    /// through a client that needs no tokio (hyper over `async-io` sockets); without
    /// it through reqwest, whose sockets livesync then drives on a one-thread tokio
    /// runtime of its own (`livesync-http-io`).
    ///
    /// ```
    /// use livesync::{Runtime, Task};
    ///
    /// // A thread per task, each driven by `futures`' minimal executor.
    /// let runtime = Runtime::custom(|task: Task| {
    ///     std::thread::spawn(move || futures::executor::block_on(task));
    /// });
    /// # let _ = runtime;
    /// ```
    pub fn custom(spawner: impl Spawner) -> Self {
        Self {
            kind: Kind::Custom {
                spawner: Arc::new(spawner),
                timer: None,
            },
        }
    }

    /// No executor: local reads, writes, watchers and live queries work (polled by
    /// whatever executor the app uses), while [`connect`](crate::Database::connect)
    /// fails with [`Error::NoExecutor`]. The default without the `tokio` feature.
    pub fn none() -> Self {
        Self { kind: Kind::None }
    }

    /// The same runtime with the executor's own timer for delays (a custom runtime
    /// only; tokio and smol always use theirs).
    ///
    /// ```
    /// use std::time::Duration;
    /// use livesync::{Delay, Runtime, Task};
    ///
    /// let runtime = Runtime::custom(|task: Task| {
    ///     std::thread::spawn(move || futures::executor::block_on(task));
    /// })
    /// .with_timer(|duration: Duration| -> Delay { Box::pin(futures_timer::Delay::new(duration)) });
    /// # let _ = runtime;
    /// ```
    pub fn with_timer(self, timer: impl Timer) -> Self {
        match self.kind {
            Kind::Custom { spawner, .. } => Self {
                kind: Kind::Custom {
                    spawner,
                    timer: Some(Arc::new(timer)),
                },
            },
            kind => Self { kind },
        }
    }

    /// Starts `future` in the background, counted in `count` while it exists. The handle
    /// cancels it; dropping the handle lets it run on.
    pub(crate) fn spawn(
        &self,
        count: &TaskCount,
        future: impl Future<Output = ()> + MaybeSend + 'static,
    ) -> Result<BackgroundTask> {
        let (task, handle) = task::cancellable(count, future);
        match &self.kind {
            Kind::None => {
                return Err(Error::NoExecutor(
                    "this database was opened with Runtime::none(), so it cannot run the sync tasks: open it with OpenOptions::runtime(..) naming your executor (Runtime::tokio, Runtime::smol or Runtime::custom)".into(),
                ));
            }
            #[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
            Kind::Tokio => tokio_glue::spawn(task)?,
            #[cfg(feature = "smol")]
            Kind::Smol(executor) => executor.spawn(task).detach(),
            #[cfg(target_arch = "wasm32")]
            Kind::Browser => wasm_bindgen_futures::spawn_local(task),
            Kind::Custom { spawner, .. } => spawner.spawn(Box::pin(task)),
        }
        Ok(handle)
    }

    /// Whether this is [`Runtime::tokio`], whose tasks run inside a tokio runtime (where
    /// reqwest's sockets work).
    #[cfg(all(feature = "async-io-http", not(target_arch = "wasm32")))]
    pub(crate) fn is_tokio(&self) -> bool {
        match self.kind {
            #[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
            Kind::Tokio => true,
            _ => false,
        }
    }

    /// Now, on the clock this runtime's timers follow.
    pub(crate) fn now(&self) -> Instant {
        match &self.kind {
            #[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
            Kind::Tokio => tokio_glue::now(),
            _ => clock::now(),
        }
    }

    /// Completes at `deadline` (at once if it has passed).
    pub(crate) fn sleep_until(&self, deadline: Instant) -> Delay {
        match &self.kind {
            #[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
            Kind::Tokio => tokio_glue::sleep_until(deadline),
            #[cfg(feature = "smol")]
            Kind::Smol(_) => smol_glue::sleep_until(deadline),
            Kind::Custom {
                timer: Some(timer), ..
            } => timer.delay(deadline.saturating_duration_since(clock::now())),
            _ => clock::sleep(deadline.saturating_duration_since(clock::now())),
        }
    }

    /// Completes after `duration`.
    pub(crate) fn sleep(&self, duration: Duration) -> Delay {
        self.sleep_until(self.now() + duration)
    }

    /// `future`'s output, or [`Elapsed`] if it took longer than `limit`.
    pub(crate) async fn timeout<F: Future>(
        &self,
        limit: Duration,
        future: F,
    ) -> std::result::Result<F::Output, Elapsed> {
        clock::timeout(self.sleep(limit), future).await
    }
}
