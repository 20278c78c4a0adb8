//! `use_live_query`: a live query as component state.
//!
//! Two scope-owned tasks serve each query key: a one-shot snapshot (what `suspend()`
//! waits on, and the only thing that runs while a server resolves suspense) and the live
//! subscription (client side: every later result). The live result wins once it has
//! arrived for the current key, so an older snapshot can never overwrite a newer result.
//!
//! A query with sync streams ([`use_live_query_with`]) is keyed by its query *and* its
//! streams. On the client both tasks wait until the streams have synced: the live task
//! holds the stream subscriptions for as long as the key lives, and reports nothing but
//! errors before the first sync. On the server the live task never runs and the snapshot
//! skips the wait (see [`use_live_query_with`]).

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use dioxus::core::{CapturedError, SuspendedFuture};
use dioxus::prelude::*;
use futures::StreamExt;

use super::context::try_use_database;
use crate::query::LiveQueryOptions;
use crate::query::live_options::StreamSpec;
use crate::query::stream_gate::{self, Step};
use crate::{Database, Error, FromRow, Query};

/// What a live query shows: still loading, rows, or the error of the last run.
///
/// ```
/// use livesync::dioxus::LiveState;
/// let state: LiveState<String> = LiveState::Ready(vec!["milk".to_owned()].into());
/// assert_eq!(state.rows().map(|rows| rows.len()), Some(1));
/// assert!(!state.is_loading());
/// ```
#[derive(Debug)]
pub enum LiveState<T> {
    /// No result yet.
    Loading,
    /// The current rows (shared: cloning the state clones a pointer).
    Ready(Arc<[T]>),
    /// The query failed; it runs again on the next change of its tables.
    Error(Error),
}

impl<T> Clone for LiveState<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Loading => Self::Loading,
            Self::Ready(rows) => Self::Ready(Arc::clone(rows)),
            Self::Error(error) => Self::Error(error.clone()),
        }
    }
}

/// Equal when both are loading, hold equal rows (the same shared rows compare without
/// looking at them), or hold the same error: so a `LiveState` can be a component prop.
impl<T: PartialEq> PartialEq for LiveState<T> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Loading, Self::Loading) => true,
            (Self::Ready(a), Self::Ready(b)) => Arc::ptr_eq(a, b) || a == b,
            (Self::Error(a), Self::Error(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

impl<T> LiveState<T> {
    /// The rows, if there are any yet.
    pub fn rows(&self) -> Option<Arc<[T]>> {
        match self {
            Self::Ready(rows) => Some(Arc::clone(rows)),
            _ => None,
        }
    }

    /// The error, if the last run failed.
    pub fn error(&self) -> Option<Error> {
        match self {
            Self::Error(error) => Some(error.clone()),
            _ => None,
        }
    }

    /// No result yet.
    pub fn is_loading(&self) -> bool {
        matches!(self, Self::Loading)
    }

    fn from_result(result: crate::Result<Vec<T>>) -> Self {
        Self::from_shared(result.map(Arc::from))
    }

    fn from_shared(result: crate::Result<Arc<[T]>>) -> Self {
        match result {
            Ok(rows) => Self::Ready(rows),
            Err(error) => Self::Error(error),
        }
    }
}

/// A live query in a component, from [`use_live_query`]. `Copy`: pass it to closures
/// and child components freely. Reading it ([`value`](Self::value),
/// [`read`](Self::read), [`rows`](Self::rows)…) during render subscribes the component,
/// like reading a signal.
pub struct UseLiveQuery<T: 'static> {
    /// The live subscription's latest state (kept across re-keys until the new key's
    /// first result, so the UI does not flash back to loading).
    live: Signal<LiveState<T>>,
    /// The live subscription has not delivered for the current key yet.
    fetching: Signal<bool>,
    /// A stream of the current key has not synced yet.
    syncing: Signal<bool>,
    /// Bumped by [`refresh`](UseLiveQuery::refresh) to re-run both tasks.
    generation: Signal<u64>,
    /// One-shot result for the current key.
    snapshot: Resource<LiveState<T>>,
}

impl<T: 'static> std::fmt::Debug for UseLiveQuery<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The rows are not printed: reading the signal here would subscribe the caller.
        f.debug_struct("UseLiveQuery").finish_non_exhaustive()
    }
}

impl<T: 'static> Clone for UseLiveQuery<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: 'static> Copy for UseLiveQuery<T> {}

impl<T: 'static> UseLiveQuery<T> {
    /// The current state (a cheap clone: rows are shared).
    pub fn value(&self) -> LiveState<T> {
        if !*self.fetching.read() {
            return self.live.read().clone();
        }
        // A restarted resource keeps its previous value while it runs: only a snapshot
        // that finished for the current key is newer than what the live signal holds.
        let snapshot_ready = matches!(*self.snapshot.state().read(), UseResourceState::Ready);
        let live = self.live.read().clone();
        match self.snapshot.read().as_ref() {
            Some(snapshot) if snapshot_ready => snapshot.clone(),
            // Re-keyed before any live result: the previous key's snapshot is what the
            // screen showed, so it stays until the new key loads.
            Some(snapshot) if live.is_loading() => snapshot.clone(),
            _ => live,
        }
    }

    /// The current state, for code written against signals (`todos.read()`); the same
    /// as [`value`](Self::value).
    pub fn read(&self) -> LiveState<T> {
        self.value()
    }

    /// The rows, once loaded (`None` while loading or after an error).
    pub fn rows(&self) -> Option<Arc<[T]>> {
        self.value().rows()
    }

    /// The error of the last run, if it failed.
    pub fn error(&self) -> Option<Error> {
        self.value().error()
    }

    /// No result yet (the first load).
    pub fn is_loading(&self) -> bool {
        self.value().is_loading()
    }

    /// A new subscription (first load, changed key or [`refresh`](Self::refresh)) has
    /// not delivered its first live result yet; the previous rows are still shown.
    pub fn is_fetching(&self) -> bool {
        *self.fetching.read()
    }

    /// A sync stream the query depends on ([`use_live_query_with`]) has not synced yet
    /// for the current key: the query shows [`LiveState::Loading`] (or, after a re-key,
    /// the previous rows) meanwhile. Always `false` without streams.
    ///
    /// During a server render it tells whether the server's database has synced the
    /// streams, that is whether the rows it rendered are complete.
    pub fn is_syncing(&self) -> bool {
        *self.syncing.read()
    }

    /// Runs the query again from scratch (a new snapshot and subscription).
    pub fn refresh(&self) {
        let mut generation = self.generation;
        generation += 1;
    }

    /// The rows for rendering inside a `SuspenseBoundary`: suspends until the first
    /// result (only the first: later changes and re-keys keep showing the previous rows
    /// while they load); a failed query becomes the component's error.
    ///
    /// ```
    /// use dioxus::prelude::*;
    /// use livesync::dioxus::{use_database, use_live_query};
    ///
    /// #[component]
    /// fn Names() -> Element {
    ///     let db = use_database();
    ///     let names = use_live_query(move || db.query::<String>("SELECT name FROM lists ORDER BY name"));
    ///     let names = names.suspend()?;
    ///     rsx! { ul { for name in names.iter() { li { "{name}" } } } }
    /// }
    ///
    /// #[component]
    /// fn Page() -> Element {
    ///     rsx! { SuspenseBoundary { fallback: |_| rsx! { p { "loading…" } }, Names {} } }
    /// }
    /// ```
    ///
    /// # Errors
    /// `RenderError::Suspended` while the first result loads; `RenderError::Error` with
    /// the query's error.
    pub fn suspend(&self) -> Result<Arc<[T]>, RenderError> {
        match self.value() {
            LiveState::Ready(rows) => Ok(rows),
            LiveState::Error(error) => Err(CapturedError::from_display(error.to_string()).into()),
            LiveState::Loading => Err(RenderError::Suspended(SuspendedFuture::new(
                self.snapshot.task(),
            ))),
        }
    }
}

/// Keeps the result of `make()` current in this component. A hook: call it at the top
/// level of a component.
///
/// `make` builds the query; signals it reads are tracked, and when they change the old
/// subscription is dropped and the new query subscribed (queries are compared, so a
/// change that yields the same SQL and parameters does nothing). Results are throttled
/// and deduplicated by the live query (see [`LiveQuery`](crate::LiveQuery)): a burst of
/// writes re-renders a handful of times and ends on the final state; writes to unrelated
/// tables do not re-render at all.
///
/// Like every Dioxus hook, `make` is the closure of the first render: a plain prop it
/// captures keeps its first value. Take such props as `ReadSignal<T>` (see
/// [`use_live_query_one`]) so a new value from the parent re-keys the query.
///
/// For data that a sync stream brings, use [`use_live_query_with`]: it subscribes to the
/// stream and shows loading until the stream has synced, instead of an empty result.
///
/// ```
/// use dioxus::prelude::*;
/// use livesync::dioxus::{use_database, use_live_query};
///
/// #[component]
/// fn OpenCount() -> Element {
///     let db = use_database();
///     let open = use_live_query(move || db.query::<i64>("SELECT count(*) FROM todos WHERE done = 0"));
///     let count = open.rows().and_then(|rows| rows.first().copied()).unwrap_or(0);
///     rsx! { span { "{count} open" } }
/// }
/// ```
#[track_caller]
pub fn use_live_query<T: FromRow>(make: impl FnMut() -> Query<T> + 'static) -> UseLiveQuery<T> {
    use_live_query_with(make, LiveQueryOptions::default)
}

/// [`use_live_query`] for data that comes from sync streams (like
/// `useQuery(sql, params, { streams })` in PowerSync's React SDK). A hook.
///
/// `options` lists the streams ([`LiveQueryOptions::stream`]); like `make`, it is
/// reactive: signals it reads re-key the query. The streams need the database from
/// context ([`provide_database`](super::provide_database)).
///
/// - **Subscribed while mounted.** Each stream is subscribed when the component mounts
///   and released when it unmounts (its TTL then starts). A re-key releases the old
///   subscriptions and takes the new ones.
/// - **Loading until synced.** The query shows [`LiveState::Loading`] (and
///   [`suspend`](UseLiveQuery::suspend) suspends) until every stream has synced at least
///   once ([`SyncStreamStatus::has_synced`](crate::SyncStreamStatus::has_synced), which
///   persists across restarts), never the incomplete rows before that. After a re-key
///   the previous rows stay on screen with [`is_syncing`](UseLiveQuery::is_syncing) and
///   [`is_fetching`](UseLiveQuery::is_fetching) set, as for any re-key. Later syncs of
///   the streams never bring loading back: new data simply arrives.
/// - **Errors are shown.** A stream the service refuses (an unknown stream, a missing
///   parameter: the `errors` of its [`SyncStreamStatus`](crate::SyncStreamStatus)) makes
///   the query [`LiveState::Error`] for as long as the service reports it, before or
///   after the first sync; so does a subscription that fails locally (invalid
///   parameters).
/// - **Server rendering.** A server render (a `VirtualDom` resolved with
///   `wait_for_suspense`) does not subscribe and does not wait for the streams: a server
///   without a sync connection would never see them sync. `suspend()` resolves with the
///   rows the server's database holds at once; `is_syncing()` tells whether the server's
///   database has synced those streams, that is whether the rows are complete (render a
///   note if not). The client then subscribes and shows loading until the streams have
///   synced there.
///
/// # Panics
/// When `options` lists streams and no ancestor provided a database.
///
/// ```no_run
/// use dioxus::prelude::*;
/// use livesync::dioxus::{LiveQueryOptions, LiveState, use_database, use_live_query_with};
/// use serde_json::json;
///
/// #[derive(livesync::Row, Clone, PartialEq, Debug)]
/// struct Todo {
///     id: String,
///     description: String,
/// }
///
/// #[component]
/// fn Todos(list_id: ReadSignal<String>) -> Element {
///     let db = use_database();
///     let todos = use_live_query_with(
///         move || {
///             db.query::<Todo>("SELECT id, description FROM todos WHERE list_id = ? ORDER BY id")
///                 .bind(list_id())
///         },
///         // Re-keyed with the query when `list_id` changes.
///         move || LiveQueryOptions::new().stream("list_todos", json!({"list_id": list_id()})),
///     );
///     match todos.value() {
///         LiveState::Loading => rsx! { p { "syncing this list…" } },
///         LiveState::Error(error) => rsx! { p { "could not load: {error}" } },
///         LiveState::Ready(rows) => rsx! {
///             ul { for todo in rows.iter() { li { key: "{todo.id}", "{todo.description}" } } }
///         },
///     }
/// }
/// ```
#[track_caller]
pub fn use_live_query_with<T: FromRow>(
    make: impl FnMut() -> Query<T> + 'static,
    options: impl FnMut() -> LiveQueryOptions + 'static,
) -> UseLiveQuery<T> {
    let db = try_use_database();
    let query = use_memo(make);
    let options = use_memo(options);
    if db.is_none() && !options.peek().streams().is_empty() {
        panic!(
            "livesync::dioxus::use_live_query_with: the query lists sync streams but there is \
             no Database in context; call livesync::dioxus::provide_database(db) in an \
             ancestor component"
        );
    }
    let generation = use_signal(|| 0_u64);
    let mut live = use_signal(|| LiveState::Loading);
    let mut fetching = use_signal(|| true);
    let mut syncing = {
        let db = db.clone();
        use_signal(move || unsynced(db.as_ref(), options.peek().streams()))
    };
    // Set by the live task. Dioxus polls it only on the client: during a server render
    // (`wait_for_suspense`) only the task a component suspended on runs.
    let on_client = use_hook(|| Rc::new(Cell::new(false)));
    let snapshot = use_resource({
        let db = db.clone();
        let on_client = Rc::clone(&on_client);
        move || {
            let query = query();
            let specs = options.read().streams().to_vec();
            let _ = generation();
            let db = db.clone();
            let on_client = Rc::clone(&on_client);
            async move {
                if let Some(db) = db.filter(|_| !specs.is_empty()) {
                    // The live task was spawned after this one: yielding once lets the
                    // client poll it first, so `on_client` is known below.
                    yield_once().await;
                    if on_client.get()
                        && let Err(error) = stream_gate::wait_until_synced(&db, &specs).await
                    {
                        return LiveState::Error(error);
                    }
                }
                LiveState::from_result(query.fetch_all().await)
            }
        }
    });
    use_resource(move || {
        let query = query();
        let specs = options.read().streams().to_vec();
        let _ = generation();
        let db = db.clone();
        let on_client = Rc::clone(&on_client);
        async move {
            on_client.set(true);
            fetching.set(true);
            let now_syncing = unsynced(db.as_ref(), &specs);
            if *syncing.peek() != now_syncing {
                syncing.set(now_syncing);
            }
            match db.filter(|_| !specs.is_empty()) {
                None => {
                    // Subscribes before its first run, so no write between that run and
                    // the next change is missed (see `LiveQuery`).
                    let mut results = query.watch();
                    while let Some(result) = results.next().await {
                        live.set(LiveState::from_result(result));
                        if *fetching.peek() {
                            fetching.set(false);
                        }
                    }
                }
                // Holds the subscriptions until this task is dropped (unmount, re-key).
                Some(db) => {
                    stream_gate::drive(&db, &specs, query, |step| {
                        match step {
                            Step::Synced => {
                                if *syncing.peek() {
                                    syncing.set(false);
                                }
                            }
                            Step::Value(result) => {
                                live.set(LiveState::from_shared(result));
                                if *fetching.peek() {
                                    fetching.set(false);
                                }
                            }
                        }
                        true
                    })
                    .await;
                }
            }
        }
    });
    UseLiveQuery {
        live,
        fetching,
        syncing,
        generation,
        snapshot,
    }
}

/// Some of `specs` have not synced in the database's current status.
fn unsynced(db: Option<&Database>, specs: &[StreamSpec]) -> bool {
    match db {
        Some(db) if !specs.is_empty() => !stream_gate::gate(&db.status(), specs).is_ready(),
        _ => false,
    }
}

/// Returns `Pending` once (waking itself at once), then `Ready`: the dom polls the tasks
/// queued before this one in between.
async fn yield_once() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// The first row of a live query, from [`use_live_query_one`]. `Copy`.
pub struct UseLiveQueryOne<T: 'static> {
    inner: UseLiveQuery<T>,
}

impl<T: 'static> std::fmt::Debug for UseLiveQueryOne<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UseLiveQueryOne").finish_non_exhaustive()
    }
}

impl<T: 'static> Clone for UseLiveQueryOne<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: 'static> Copy for UseLiveQueryOne<T> {}

impl<T: Clone + 'static> UseLiveQueryOne<T> {
    /// The first row (`None` while loading, after an error, or when there is none).
    pub fn row(&self) -> Option<T> {
        self.inner.rows().and_then(|rows| rows.first().cloned())
    }

    /// The error of the last run, if it failed.
    pub fn error(&self) -> Option<Error> {
        self.inner.error()
    }

    /// No result yet.
    pub fn is_loading(&self) -> bool {
        self.inner.is_loading()
    }

    /// See [`UseLiveQuery::is_fetching`].
    pub fn is_fetching(&self) -> bool {
        self.inner.is_fetching()
    }

    /// See [`UseLiveQuery::is_syncing`].
    pub fn is_syncing(&self) -> bool {
        self.inner.is_syncing()
    }

    /// Runs the query again from scratch.
    pub fn refresh(&self) {
        self.inner.refresh();
    }

    /// The first row inside a `SuspenseBoundary` (see [`UseLiveQuery::suspend`]).
    ///
    /// # Errors
    /// As [`UseLiveQuery::suspend`].
    pub fn suspend(&self) -> Result<Option<T>, RenderError> {
        Ok(self.inner.suspend()?.first().cloned())
    }
}

/// [`use_live_query`] for one row: the first row of the result, as `Option<T>` (add
/// `LIMIT 1` to the SQL so only one row is read).
///
/// The prop is a `ReadSignal` (the parent still passes a plain `String`), so a new `id`
/// from the parent re-keys the query:
///
/// ```
/// use dioxus::prelude::*;
/// use livesync::dioxus::{use_database, use_live_query_one};
///
/// #[component]
/// fn ListName(id: ReadSignal<String>) -> Element {
///     let db = use_database();
///     let name = use_live_query_one(move || {
///         db.query::<String>("SELECT name FROM lists WHERE id = ? LIMIT 1").bind(id())
///     });
///     rsx! { h2 { {name.row().unwrap_or_default()} } }
/// }
/// ```
#[track_caller]
pub fn use_live_query_one<T: FromRow + Clone>(
    make: impl FnMut() -> Query<T> + 'static,
) -> UseLiveQueryOne<T> {
    UseLiveQueryOne {
        inner: use_live_query(make),
    }
}

/// [`use_live_query_with`] for one row: the first row of a query whose data comes from
/// sync streams, loading until they have synced.
///
/// ```no_run
/// use dioxus::prelude::*;
/// use livesync::dioxus::{LiveQueryOptions, use_database, use_live_query_one_with};
/// use serde_json::json;
///
/// #[component]
/// fn ListName(id: ReadSignal<String>) -> Element {
///     let db = use_database();
///     let name = use_live_query_one_with(
///         move || db.query::<String>("SELECT name FROM lists WHERE id = ? LIMIT 1").bind(id()),
///         move || LiveQueryOptions::new().stream("list", json!({"id": id()})),
///     );
///     if name.is_loading() {
///         return rsx! { h2 { "…" } };
///     }
///     rsx! { h2 { {name.row().unwrap_or_default()} } }
/// }
/// ```
#[track_caller]
pub fn use_live_query_one_with<T: FromRow + Clone>(
    make: impl FnMut() -> Query<T> + 'static,
    options: impl FnMut() -> LiveQueryOptions + 'static,
) -> UseLiveQueryOne<T> {
    UseLiveQueryOne {
        inner: use_live_query_with(make, options),
    }
}
