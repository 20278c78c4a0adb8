//! Live queries as Leptos' own [`Resource`]: [`create_live_query`] and
//! [`create_live_query_one`].

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

use futures::StreamExt;
use leptos_reactive::{
    Resource, Serializable, SignalSet, SignalWith, create_effect, create_resource, untrack,
};

use super::feed::Feed;
use crate::{Error, FromRow, LiveQuery, Query};

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
/// use livesync::leptos::create_live_query;
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
/// tokio::task::LocalSet::new()
///     .run_until(async move {
///         let runtime = create_runtime();
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
    live_resource::<T, AllRows>(query)
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
    live_resource::<T, FirstRow>(query)
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

/// What the fetcher, the client probe and the feed share.
struct LiveState<T, S: Shape<T>>
where
    T: FromRow,
{
    /// Set by an effect, so only where Leptos runs effects (never under `ssr`).
    on_client: Cell<bool>,
    /// Bumped by every fetch; a fetch that finishes after a newer one started is stale.
    generation: Cell<u64>,
    /// Known once `create_resource` returned (the first fetch may run inside it).
    resource: Cell<Option<LiveResource<T, S::Output>>>,
    feed: Feed,
}

fn live_resource<T, S>(query: impl Fn() -> Query<T> + 'static) -> LiveResource<T, S::Output>
where
    T: FromRow + PartialEq,
    S: Shape<T>,
    LiveResult<S::Output>: Serializable,
{
    let query = Rc::new(query);
    let state = Rc::new(LiveState::<T, S> {
        on_client: Cell::new(false),
        generation: Cell::new(0),
        resource: Cell::new(None),
        feed: Feed::new(),
    });

    // Created before the resource: on native this effect runs at once, so the first
    // fetch (which leptos_reactive runs inline there) already knows it is on a client.
    create_effect({
        let state = Rc::clone(&state);
        let query = Rc::clone(&query);
        move |_| {
            state.on_client.set(true);
            // A hydrating resource takes the server's value without calling the fetcher;
            // follow the query from here instead. (On wasm this effect runs after the
            // resource exists; on native the fetcher has run and there is nothing to do.)
            if state.generation.get() == 0 && state.resource.get().is_some() {
                let query = untrack(|| query());
                follow(&state, query.watch());
            }
        }
    });

    let fetcher = {
        let state = Rc::clone(&state);
        move |query: Query<T>| {
            let generation = state.generation.get() + 1;
            state.generation.set(generation);
            state.feed.stop(); // the old key's updates must not land on the new key
            let state = Rc::clone(&state);
            async move {
                // Subscribe before the snapshot, so a write landing between the two is
                // in the live query's first result (compared by value, not skipped).
                let live = state.on_client.get().then(|| query.clone().watch());
                let fetched = S::fetch(query).await;
                if let Some(live) = live
                    && state.generation.get() == generation
                {
                    follow(&state, live);
                }
                fetched
            }
        }
    };
    let source = {
        let query = Rc::clone(&query);
        move || query()
    };
    let resource = create_resource(source, fetcher);
    state.resource.set(Some(resource));
    resource
}

/// Feeds the results of `live` into the resource, in place of the previous feed.
fn follow<T, S>(state: &Rc<LiveState<T, S>>, live: LiveQuery<T>)
where
    T: FromRow + PartialEq,
    S: Shape<T>,
{
    // Weak: the task must not keep the state (and with it the feed) alive, or a runtime
    // disposed as a whole could not stop it.
    let shared = Rc::downgrade(state);
    state.feed.start(async move {
        // The handle is read when the task first runs: a first fetch that leptos_reactive
        // ran inline starts the feed before `create_resource` has returned it.
        let resource = shared.upgrade().and_then(|state| state.resource.get());
        if let Some(resource) = resource {
            feed_resource::<T, S>(resource, live).await;
        }
    });
}

/// Sets every result of `live` that differs from the resource's value, until the
/// resource is disposed or the database closed.
async fn feed_resource<T, S>(resource: LiveResource<T, S::Output>, mut live: LiveQuery<T>)
where
    T: FromRow + PartialEq,
    S: Shape<T>,
{
    while let Some(next) = live.next().await {
        let next = next.map(S::from_rows);
        let unchanged = untrack(|| {
            resource.try_with(|current| matches!((current, &next), (Some(Ok(a)), Ok(b)) if a == b))
        });
        match unchanged {
            None => break, // disposed
            Some(true) => {}
            Some(false) => {
                if let Err(error) = &next {
                    tracing::debug!(%error, "live query failed; it runs again on the next change");
                }
                if resource.try_set(next).is_some() {
                    break;
                }
            }
        }
    }
}
