//! Live queries as Leptos' own [`Resource`]: [`create_live_query`] and
//! [`create_live_query_one`], and their stream-backed forms [`create_live_query_with`]
//! and [`create_live_query_one_with`].

use std::cell::Cell;
use std::future::Future;
use std::rc::{Rc, Weak};

use futures::future::LocalBoxFuture;
use leptos_reactive::{
    Resource, Serializable, SignalSet, SignalUpdate, SignalWith, create_effect, create_resource,
    untrack,
};

use super::context::use_database;
use super::feed::Feed;
use crate::query::LiveQueryOptions;
use crate::query::live_options::StreamSpec;
use crate::query::stream_gate::{self, LiveKey};
use crate::{Database, Error, FromRow, LiveQuery, Query};

/// The value of a live resource or signal: the result, or the error of the last run,
/// cheap to clone (`Resource::get`) and shown by an `<ErrorBoundary>` ([`Error`] is a
/// `std::error::Error`).
///
/// ```
/// let failed: livesync::leptos::LiveResult<Vec<String>> = Err(livesync::Error::Closed);
/// assert!(failed.unwrap_err().to_string().contains("closed"));
/// ```
pub type LiveResult<T> = Result<T, Error>;

/// What [`create_live_query`] returns (`O = Vec<T>`) and [`create_live_query_one`]
/// returns (`O = Option<T>`): a plain Leptos [`Resource`] keyed by the query.
///
/// ```no_run
/// use livesync::leptos::LiveResource;
/// fn titles(resource: LiveResource<String>) -> Option<usize> {
///     use leptos_reactive::SignalGet;
///     resource.get()?.ok().map(|rows| rows.len())
/// }
/// ```
pub type LiveResource<T, O = Vec<T>> = Resource<Query<T>, LiveResult<O>>;

/// What [`create_live_query_with`] returns (`O = Vec<T>`) and
/// [`create_live_query_one_with`] returns (`O = Option<T>`): a plain Leptos [`Resource`]
/// keyed by the query and the streams it depends on.
///
/// ```no_run
/// use livesync::leptos::StreamedResource;
/// fn titles(resource: StreamedResource<String>) -> Option<usize> {
///     use leptos_reactive::SignalGet;
///     resource.get()?.ok().map(|rows| rows.len())
/// }
/// ```
pub type StreamedResource<T, O = Vec<T>> = Resource<(Query<T>, LiveQueryOptions), LiveResult<O>>;

/// A query's rows as a Leptos [`Resource`] that stays current: the rows when it first
/// loads, then again whenever a table the query reads changes and the rows differ.
///
/// # Reactive contract
/// - **Source.** `query` is the resource's source: it runs in a memo, and every signal it
///   reads re-keys the resource. When it builds a different [`Query`] (other SQL,
///   parameters or database) the resource fetches again and follows the new query; the
///   old subscription is dropped.
/// - **Loading.** The fetcher runs the query once ([`Query::fetch_all`]), so
///   `<Suspense>` shows its fallback and `<Transition>` keeps the previous rows until the
///   first result is there, and `.loading()` is true meanwhile.
/// - **Live updates** arrive through `Resource::set`, only when the rows differ from the
///   current value, at most once per the query's throttle (30 ms by default). They do
///   not make the resource load again, so a `<Suspense>` never falls back for them.
/// - **Where.** Live updates run on the client only (where Leptos runs effects); under
///   `ssr` the resource resolves once from its snapshot and is serialized into the page
///   for hydration like any `create_resource`. See the [module docs](super).
/// - **Cleanup.** When the owner is disposed, `on_cleanup` stops the subscription.
/// - **Errors** are values, `Err(Error)`; the resource keeps following the query
///   and holds rows again after the next successful run.
///
/// `T` must be serializable (`serde`'s `Serialize` and `Deserialize`, Leptos' default)
/// because a resource's value travels from the server to the hydrating client. For rows
/// that cannot, use [`create_live_signal`](super::create_live_signal).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use leptos_reactive::*;
/// use livesync::leptos::{create_live_query, provide_local_spawner, LocalTask};
/// use livesync::{Column, Database, Row, Schema, Table};
///
/// #[derive(Row, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct Todo {
///     id: String,
///     description: String,
/// }
///
/// let schema = Schema::new([Table::new("todos", [Column::text("description"), Column::integer("done")])]);
/// let db = Database::in_memory(schema).await?;
/// // On native, live tasks run on a local executor the app drives: here tokio's.
/// tokio::task::LocalSet::new()
///     .run_until(async move {
///         let runtime = create_runtime();
///         provide_local_spawner(|task: LocalTask| drop(tokio::task::spawn_local(task)));
///         let (done, set_done) = create_signal(false);
///         let todos = create_live_query(move || {
///             db.query::<Todo>("SELECT id, description FROM todos WHERE done = ? ORDER BY id")
///                 .bind(done.get())
///         });
///         // In a view: <Transition fallback=|| "loading">{move || todos.get().map(..)}</Transition>
///         let open = move || todos.get().and_then(Result::ok).map(|rows| rows.len());
///         create_effect(move |_| println!("{:?} open todos", open()));
///         set_done.set(true); // re-keys: fetches and follows the other query
///         runtime.dispose();
///     })
///     .await;
/// # Ok(()) }
/// ```
#[track_caller]
pub fn create_live_query<T>(query: impl Fn() -> Query<T> + 'static) -> LiveResource<T>
where
    T: FromRow + PartialEq,
    LiveResult<Vec<T>>: Serializable,
{
    live_resource::<T, AllRows, _>(query, None)
}

/// Like [`create_live_query`], for the first row only: `Ok(None)` when there is none.
/// Changes to other rows do not update it.
///
/// ```no_run
/// use leptos_reactive::*;
/// use livesync::leptos::{create_live_query_one, use_database};
///
/// fn todo_count() -> impl Fn() -> Option<i64> {
///     let db = use_database().expect("provide_database at the root");
///     let count = create_live_query_one(move || db.query::<i64>("SELECT count(*) FROM todos"));
///     move || count.get().and_then(Result::ok).flatten()
/// }
/// ```
#[track_caller]
pub fn create_live_query_one<T>(
    query: impl Fn() -> Query<T> + 'static,
) -> LiveResource<T, Option<T>>
where
    T: FromRow + PartialEq,
    LiveResult<Option<T>>: Serializable,
{
    live_resource::<T, FirstRow, _>(query, None)
}

/// [`create_live_query`] for data that comes from sync streams (like
/// `useQuery(sql, params, { streams })` in PowerSync's React SDK): the resource stays
/// unresolved until the streams have synced, instead of resolving to an empty result.
///
/// `options` lists the streams ([`LiveQueryOptions::stream`]). Together with `query` it
/// is the resource's source: signals either reads re-key the resource. The streams need
/// the database from [`provide_database`](super::provide_database).
///
/// # Reactive contract
/// Everything [`create_live_query`] promises, and:
/// - **Subscribed while the owner lives.** On the client each stream is subscribed when
///   the resource first loads and released when the owner is disposed (its TTL then
///   starts). A re-key releases the old subscriptions and takes the new ones.
/// - **Unresolved until synced.** `get()` is `None` until every stream has synced at
///   least once ([`SyncStreamStatus::has_synced`](crate::SyncStreamStatus::has_synced),
///   which persists across restarts); then it holds the rows and follows them live.
///   Under `csr` / `hydrate` the resource is also `loading()` meanwhile, so `<Suspense>`
///   shows its fallback and `<Transition>` keeps the previous rows after a re-key. On
///   native without those features, where leptos_reactive runs fetchers inline (and so
///   cannot wait for the network), the resource is `None` but not `loading()` while the
///   streams sync, and after a re-key keeps the previous value until the new streams
///   have synced. Later syncs of the streams never make it unresolved again.
/// - **Errors are shown.** A stream the service refuses (an unknown stream, a missing
///   parameter: the `errors` of its [`SyncStreamStatus`](crate::SyncStreamStatus)) makes
///   the value `Err` for as long as the service reports it, before or after the first
///   sync; so does a subscription that fails locally (invalid parameters) or a missing
///   database in context ([`Error::InvalidParameter`]).
/// - **Server rendering (`ssr`).** The server does not subscribe and does not wait for
///   the streams (a server without a sync connection would never see them sync): the
///   resource resolves at once with the rows the server's database holds, serialized
///   into the page as usual. The hydrating client keeps that value on screen while it
///   subscribes, and follows its own database once the streams have synced there.
///
/// ```no_run
/// use leptos_reactive::*;
/// use livesync::leptos::{LiveQueryOptions, create_live_query_with, use_database};
/// use serde_json::json;
///
/// #[derive(livesync::Row, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct Todo {
///     id: String,
///     description: String,
/// }
///
/// fn list_todos(list_id: ReadSignal<String>) -> impl Fn() -> &'static str {
///     let db = use_database().expect("provide_database at the root");
///     let todos = create_live_query_with(
///         move || {
///             db.query::<Todo>("SELECT id, description FROM todos WHERE list_id = ? ORDER BY id")
///                 .bind(list_id.get())
///         },
///         // Re-keyed with the query when `list_id` changes.
///         move || LiveQueryOptions::new().stream("list_todos", json!({"list_id": list_id.get()})),
///     );
///     // view! { <Suspense fallback=|| "syncing this list…">{move || todos.get().map(..)}</Suspense> }
///     move || match todos.get() {
///         None => "syncing this list…",
///         Some(Ok(rows)) if rows.is_empty() => "nothing to do",
///         Some(Ok(_)) => "todos",
///         Some(Err(_)) => "could not load this list",
///     }
/// }
/// ```
#[track_caller]
pub fn create_live_query_with<T>(
    query: impl Fn() -> Query<T> + 'static,
    options: impl Fn() -> LiveQueryOptions + 'static,
) -> StreamedResource<T>
where
    T: FromRow + PartialEq + Clone,
    LiveResult<Vec<T>>: Serializable,
{
    live_resource::<T, AllRows, _>(
        move || (query(), options()),
        Some(gated_feed::<T, AllRows>()),
    )
}

/// Like [`create_live_query_with`], for the first row only: `Ok(None)` when there is
/// none (once the streams have synced).
///
/// ```no_run
/// use leptos_reactive::*;
/// use livesync::leptos::{LiveQueryOptions, create_live_query_one_with, use_database};
/// use serde_json::json;
///
/// fn list_name(list_id: String) -> impl Fn() -> Option<String> {
///     let db = use_database().expect("provide_database at the root");
///     let id = list_id.clone();
///     let name = create_live_query_one_with(
///         move || db.query::<String>("SELECT name FROM lists WHERE id = ?").bind(id.clone()),
///         move || LiveQueryOptions::new().stream("list", json!({"id": list_id})),
///     );
///     move || name.get().and_then(Result::ok).flatten()
/// }
/// ```
#[track_caller]
pub fn create_live_query_one_with<T>(
    query: impl Fn() -> Query<T> + 'static,
    options: impl Fn() -> LiveQueryOptions + 'static,
) -> StreamedResource<T, Option<T>>
where
    T: FromRow + PartialEq + Clone,
    LiveResult<Option<T>>: Serializable,
{
    live_resource::<T, FirstRow, _>(
        move || (query(), options()),
        Some(gated_feed::<T, FirstRow>()),
    )
}

/// Which part of the result a resource holds.
trait Shape<T: FromRow>: 'static {
    type Output: PartialEq + 'static;
    fn fetch(query: Query<T>) -> impl Future<Output = crate::Result<Self::Output>>;
    fn from_rows(rows: Vec<T>) -> Self::Output;
}

struct AllRows;

impl<T: FromRow + PartialEq> Shape<T> for AllRows {
    type Output = Vec<T>;
    async fn fetch(query: Query<T>) -> crate::Result<Vec<T>> {
        query.fetch_all().await
    }
    fn from_rows(rows: Vec<T>) -> Vec<T> {
        rows
    }
}

struct FirstRow;

impl<T: FromRow + PartialEq> Shape<T> for FirstRow {
    type Output = Option<T>;
    async fn fetch(query: Query<T>) -> crate::Result<Option<T>> {
        query.fetch_optional().await
    }
    fn from_rows(rows: Vec<T>) -> Option<T> {
        rows.into_iter().next()
    }
}

/// Where a gated feed sends each value; `false` once nobody listens.
type Emit<O> = Box<dyn FnMut(LiveResult<O>) -> bool>;

/// Builds the future that keeps a query's streams subscribed and feeds its values once
/// they have synced (see `stream_gate::drive`). Made where `T: Clone` is known, so the
/// resource code itself needs no such bound.
type GatedFeed<T, O> =
    Rc<dyn Fn(Database, Vec<StreamSpec>, Query<T>, Emit<O>) -> LocalBoxFuture<'static, ()>>;

fn gated_feed<T, S>() -> GatedFeed<T, S::Output>
where
    T: FromRow + PartialEq + Clone,
    S: Shape<T>,
{
    Rc::new(|db, specs, query, mut emit| {
        Box::pin(async move {
            stream_gate::drive_rows(&db, &specs, query, |rows| emit(rows.map(S::from_rows))).await;
        })
    })
}

/// What the fetcher, the client probe and the feed share.
struct LiveState<T, S: Shape<T>, K: 'static>
where
    T: FromRow,
{
    /// Set by an effect, so only where Leptos runs effects (never under `ssr`).
    on_client: Cell<bool>,
    /// Bumped by every fetch; a fetch that finishes after a newer one started is stale.
    generation: Cell<u64>,
    /// Known once `create_resource` returned (the first fetch may run inside it).
    resource: Cell<Option<Resource<K, LiveResult<S::Output>>>>,
    feed: Feed,
    /// The database from context, for the streams.
    db: Option<Database>,
    /// `Some` for a resource with streams.
    gated: Option<GatedFeed<T, S::Output>>,
    /// The first fetch ran inline before the streams synced: the resource must read as
    /// unresolved once `create_resource` returns.
    unresolve: Cell<bool>,
}

fn live_resource<T, S, K>(
    source: impl Fn() -> K + 'static,
    gated: Option<GatedFeed<T, S::Output>>,
) -> Resource<K, LiveResult<S::Output>>
where
    T: FromRow + PartialEq,
    S: Shape<T>,
    K: LiveKey<T>,
    LiveResult<S::Output>: Serializable,
{
    let source = Rc::new(source);
    let state = Rc::new(LiveState::<T, S, K> {
        on_client: Cell::new(false),
        generation: Cell::new(0),
        resource: Cell::new(None),
        feed: Feed::new(),
        db: gated.as_ref().and_then(|_| use_database()),
        gated,
        unresolve: Cell::new(false),
    });

    // Created before the resource: on native this effect runs at once, so the first
    // fetch (which leptos_reactive runs inline there) already knows it is on a client.
    create_effect({
        let state = Rc::clone(&state);
        let source = Rc::clone(&source);
        move |_| {
            state.on_client.set(true);
            // A hydrating resource takes the server's value without calling the fetcher;
            // follow the query from here instead. (On wasm this effect runs after the
            // resource exists; on native the fetcher has run and there is nothing to do.)
            if state.generation.get() == 0 && state.resource.get().is_some() {
                let key = untrack(|| source());
                if key.streams().is_empty() {
                    follow(&state, key.query().watch());
                } else {
                    // The server's value stays until the streams have synced here.
                    follow_gated(&state, &key, None);
                }
            }
        }
    });

    let fetcher = {
        let state = Rc::clone(&state);
        move |key: K| {
            let generation = state.generation.get() + 1;
            state.generation.set(generation);
            state.feed.stop(); // the old key's updates must not land on the new key
            let state = Rc::clone(&state);
            async move {
                if !key.streams().is_empty() && state.on_client.get() {
                    return fetch_gated(&state, key, generation).await;
                }
                // Subscribe before the snapshot, so a write landing between the two is
                // in the live query's first result (compared by value, not skipped).
                let live = state.on_client.get().then(|| key.query().watch());
                let fetched = S::fetch(key.query()).await;
                if let Some(live) = live
                    && state.generation.get() == generation
                {
                    follow(&state, live);
                }
                fetched
            }
        }
    };
    let resource = create_resource(move || source(), fetcher);
    state.resource.set(Some(resource));
    if state.unresolve.take() {
        resource.update(|value| *value = None);
    }
    resource
}

/// The fetch of a key with streams, on the client. Starts the gated feed, which keeps
/// the streams subscribed and sets the resource once they have synced.
async fn fetch_gated<T, S, K>(
    state: &Rc<LiveState<T, S, K>>,
    key: K,
    generation: u64,
) -> LiveResult<S::Output>
where
    T: FromRow + PartialEq,
    S: Shape<T>,
    K: LiveKey<T>,
    LiveResult<S::Output>: Serializable,
{
    let Some(db) = state.db.clone() else {
        return Err(stream_gate::no_database(
            "create_live_query_with",
            "livesync::leptos::provide_database",
        ));
    };
    if stream_gate::gate(&db.status(), key.streams()).is_ready() {
        // Synced before (persisted): the first rows are there at once, as without
        // streams; the feed follows them (and reports a later refusal by the service).
        let fetched = S::fetch(key.query()).await;
        if state.generation.get() == generation {
            follow_gated(state, &key, None);
        }
        return fetched;
    }
    if cfg!(target_arch = "wasm32") {
        // The fetcher runs as a task: the resource stays loading until the feed's first
        // value (the rows once synced, or an error).
        let (first, value) = futures::channel::oneshot::channel();
        follow_gated(state, &key, Some(first));
        return value.await.unwrap_or(Err(Error::Closed));
    }
    // Native: leptos_reactive polls this future inline, so it must not wait for the
    // network. The resource keeps its current value (none at first) by cancelling this
    // load; the feed sets the rows once the streams have synced.
    follow_gated(state, &key, None);
    match state.resource.get() {
        Some(resource) => resource.update(|_| {}),
        None => state.unresolve.set(true),
    }
    Err(Error::Closed) // discarded: the load was cancelled (or is unresolved at once)
}

/// Feeds the results of `live` into the resource, in place of the previous feed.
fn follow<T, S, K>(state: &Rc<LiveState<T, S, K>>, live: LiveQuery<T>)
where
    T: FromRow + PartialEq,
    S: Shape<T>,
    K: LiveKey<T>,
{
    // Weak: the task must not keep the state (and with it the feed) alive, or a runtime
    // disposed as a whole could not stop it.
    let shared = Rc::downgrade(state);
    state.feed.start(async move {
        // The handle is read when the task first runs: a first fetch that leptos_reactive
        // ran inline starts the feed before `create_resource` has returned it.
        let resource = shared.upgrade().and_then(|state| state.resource.get());
        if let Some(resource) = resource {
            crate::ui_feed::pump(live, |next| {
                set_if_changed(resource, next.map(S::from_rows))
            })
            .await;
        }
    });
}

/// Starts the gated feed of `key` in place of the previous feed: it keeps the streams
/// subscribed and sets the resource (or, for its first value, answers `first`).
fn follow_gated<T, S, K>(
    state: &Rc<LiveState<T, S, K>>,
    key: &K,
    first: Option<futures::channel::oneshot::Sender<LiveResult<S::Output>>>,
) where
    T: FromRow + PartialEq,
    S: Shape<T>,
    K: LiveKey<T>,
{
    let (Some(db), Some(gated)) = (state.db.clone(), state.gated.clone()) else {
        return;
    };
    let shared: Weak<LiveState<T, S, K>> = Rc::downgrade(state);
    let mut first = first;
    let emit: Emit<S::Output> = Box::new(move |next| {
        if let Some(first) = first.take() {
            // The waiting fetch resolves the resource with it.
            return first.send(next).is_ok();
        }
        match shared.upgrade().and_then(|state| state.resource.get()) {
            Some(resource) => set_if_changed(resource, next),
            None => false,
        }
    });
    state
        .feed
        .start(gated(db, key.streams().to_vec(), key.query(), emit));
}

/// Sets `next` unless the resource already holds an equal value; `false` once the
/// resource is disposed.
fn set_if_changed<K, O>(resource: Resource<K, LiveResult<O>>, next: LiveResult<O>) -> bool
where
    K: Clone + 'static,
    O: PartialEq + 'static,
{
    let unchanged =
        untrack(|| resource.try_with(|current| crate::ui_feed::unchanged(current.as_ref(), &next)));
    match unchanged {
        None => false, // disposed
        Some(true) => true,
        Some(false) => {
            if let Err(error) = &next {
                tracing::debug!(%error, "live query failed; it runs again on the next change");
            }
            resource.try_set(next).is_none()
        }
    }
}
