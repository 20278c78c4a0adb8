//! `use_live_query`: a live query as component state.
//!
//! Two scope-owned tasks serve each query key: a one-shot snapshot (what `suspend()`
//! waits on, and the only thing that runs while a server resolves suspense) and the live
//! subscription (client side: every later result). The live result wins once it has
//! arrived for the current key, so an older snapshot can never overwrite a newer result.

use std::sync::Arc;

use dioxus::core::{CapturedError, SuspendedFuture};
use dioxus::prelude::*;
use futures::StreamExt;

use crate::{Error, FromRow, Query};

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
        match result {
            Ok(rows) => Self::Ready(rows.into()),
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
        if matches!(*self.snapshot.state().read(), UseResourceState::Ready)
            && let Some(snapshot) = self.snapshot.read().as_ref()
        {
            return snapshot.clone();
        }
        self.live.read().clone()
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
    let query = use_memo(make);
    let generation = use_signal(|| 0_u64);
    let mut live = use_signal(|| LiveState::Loading);
    let mut fetching = use_signal(|| true);
    let snapshot = use_resource(move || {
        let query = query();
        let _ = generation();
        async move { LiveState::from_result(query.fetch_all().await) }
    });
    use_resource(move || {
        let query = query();
        let _ = generation();
        async move {
            fetching.set(true);
            // Subscribes before its first run, so no write between that run and the
            // next change is missed (see `LiveQuery`).
            let mut results = query.watch();
            while let Some(result) = results.next().await {
                live.set(LiveState::from_result(result));
                if *fetching.peek() {
                    fetching.set(false);
                }
            }
        }
    });
    UseLiveQuery {
        live,
        fetching,
        generation,
        snapshot,
    }
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
