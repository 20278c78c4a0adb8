//! Live queries as Leptos 0.8's own [`Resource`]: [`use_live_query`] and
//! [`use_live_query_one`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use futures::StreamExt;
use leptos_server::Resource;
use reactive_graph::computed::AsyncDerived;
use reactive_graph::effect::Effect;
use reactive_graph::graph::untrack;
use reactive_graph::traits::{Set, WithUntracked};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::feed::{Feed, on_server, sendable};
use crate::runtime::MaybeSend;
use crate::{Error, FromRow, LiveQuery, Query};

/// The value of a live resource or signal: the rows, or the error of the last run.
/// [`Error`] is `Clone`, `Serialize` (a server error reaches the hydrating client) and a
/// `std::error::Error`, so an `<ErrorBoundary>` can show it.
///
/// ```
/// let failed: livesync::leptos08::LiveResult<Vec<String>> = Err(livesync::Error::Closed);
/// assert!(failed.unwrap_err().to_string().contains("closed"));
/// ```
pub type LiveResult<T> = Result<T, Error>;

/// What [`use_live_query`] (`O = Vec<T>`) and [`use_live_query_one`] (`O = Option<T>`)
/// return: a plain Leptos 0.8 [`Resource`] (JSON-serialized from server to client).
///
/// ```no_run
/// use leptos_server::Resource;
/// use reactive_graph::traits::Get;
/// fn count(todos: livesync::leptos08::LiveResource<Vec<String>>) -> Option<usize> {
///     todos.get()?.ok().map(|rows| rows.len())
/// }
/// ```
pub type LiveResource<O> = Resource<LiveResult<O>>;

/// A query's rows as a Leptos 0.8 [`Resource`] that stays current: the rows when it
/// first loads, then again whenever a table the query reads changes and the rows differ.
///
/// # Reactive contract
/// - **Source.** `query` is the resource's source: every signal it reads re-keys the
///   resource. When it builds a different [`Query`] (other SQL, parameters or database)
///   the resource loads again and follows the new query; the old subscription is dropped.
/// - **Loading.** A load is the query's first run, so `<Suspense>` shows its fallback
///   and `<Transition>` keeps the previous rows until it is there.
/// - **Live updates** are written into the resource (`Resource::set`) only when the rows
///   differ from its value, at most once per the query's throttle (30 ms by default).
///   They are not loads: a `<Suspense>` never falls back for them.
/// - **Server rendering.** Where the owner renders on the server (a hydration context
///   that is not the browser, as leptos_axum sets up) the resource resolves once from a
///   snapshot ([`Query::fetch_all`]), serialized into the page, and nothing subscribes.
///   A hydrating client starts from that value and follows the query from there (an
///   effect, so only where Leptos runs effects: `csr` / `hydrate`, or native without
///   `ssr`). Live tasks run on Leptos' executor (`any_spawner::Executor`, which
///   `leptos::mount` and leptos_axum initialise; a desktop app or a test calls
///   `Executor::init_tokio()` or another `init_*` once).
/// - **Cleanup.** When the owner is cleaned up, the subscription is released.
/// - **Errors** are values, `Err(Error)`; the resource keeps following the query and
///   holds rows again after the next successful run.
///
/// `T` must be `Serialize + DeserializeOwned` (the value travels from the server to the
/// hydrating client) and `Send + Sync` (Leptos 0.8 resources are); for rows that are
/// not, use [`use_live_local_query`](super::use_live_local_query).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use livesync::leptos08::use_live_query;
/// use livesync::{Column, Database, Row, Schema, Table};
/// use reactive_graph::{owner::Owner, signal::RwSignal, traits::*};
///
/// #[derive(Row, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct Todo {
///     id: String,
///     description: String,
/// }
///
/// let schema = Schema::new([Table::new("todos", [Column::text("description"), Column::integer("done")])]);
/// let db = Database::in_memory(schema).await?;
/// db.execute("INSERT INTO todos(id, description, done) VALUES ('t1', 'milk', 0)", ()).await?;
/// // A Leptos app has this done by `mount_to_body` / leptos_axum.
/// let _ = any_spawner::Executor::init_tokio();
/// tokio::task::LocalSet::new()
///     .run_until(async move {
///         let owner = Owner::new();
///         owner.set();
///         let done = RwSignal::new(false);
///         let todos = use_live_query(move || {
///             db.query::<Todo>("SELECT id, description FROM todos WHERE done = ? ORDER BY id")
///                 .bind(done.get())
///         });
///         // In a component:
///         // view! {
///         //     <Suspense fallback=|| "loading">
///         //         {move || Suspend::new(async move {
///         //             todos.await.map(|rows| rows.into_iter().map(|t| view! { <li>{t.description}</li> }).collect_view())
///         //         })}
///         //     </Suspense>
///         // }
///         let rows = todos.await?;
///         assert_eq!(rows[0].description, "milk");
///         done.set(true); // re-keys: loads and follows the other query
///         Ok(())
///     })
///     .await
/// # }
/// ```
#[track_caller]
pub fn use_live_query<T>(
    query: impl Fn() -> Query<T> + Send + Sync + 'static,
) -> LiveResource<Vec<T>>
where
    T: FromRow + PartialEq + Sync + Serialize + DeserializeOwned,
{
    live_resource::<T, AllRows>(query)
}

/// Like [`use_live_query`], for the first row only: `Ok(None)` when there is none.
/// Changes to other rows do not update it.
///
/// ```no_run
/// use livesync::leptos08::{use_database, use_live_query_one};
/// use reactive_graph::traits::Get;
///
/// // In a component: view! { <p>{move || todo_count()} " todos"</p> }
/// fn todo_count() -> impl Fn() -> Option<i64> {
///     let db = use_database().expect("provide_database at the root");
///     let count = use_live_query_one(move || db.query::<i64>("SELECT count(*) FROM todos"));
///     move || count.get().and_then(Result::ok).flatten()
/// }
/// ```
#[track_caller]
pub fn use_live_query_one<T>(
    query: impl Fn() -> Query<T> + Send + Sync + 'static,
) -> LiveResource<Option<T>>
where
    T: FromRow + PartialEq + Sync + Serialize + DeserializeOwned,
{
    live_resource::<T, FirstRow>(query)
}

/// Which part of the result a resource holds.
pub(super) trait Shape<T: FromRow>: 'static {
    type Output: PartialEq + Send + Sync + 'static;
    fn fetch(query: Query<T>) -> impl Future<Output = crate::Result<Self::Output>> + MaybeSend;
    fn from_rows(rows: Vec<T>) -> Self::Output;
}

pub(super) struct AllRows;

impl<T: FromRow + PartialEq + Sync> Shape<T> for AllRows {
    type Output = Vec<T>;
    async fn fetch(query: Query<T>) -> crate::Result<Vec<T>> {
        query.fetch_all().await
    }
    fn from_rows(rows: Vec<T>) -> Vec<T> {
        rows
    }
}

pub(super) struct FirstRow;

impl<T: FromRow + PartialEq + Sync> Shape<T> for FirstRow {
    type Output = Option<T>;
    async fn fetch(query: Query<T>) -> crate::Result<Option<T>> {
        query.fetch_optional().await
    }
    fn from_rows(rows: Vec<T>) -> Option<T> {
        rows.into_iter().next()
    }
}

/// What the fetcher, the hydration effect and the feed share.
struct LiveState<O: Send + Sync + 'static> {
    /// Bumped by every load when it starts running; a load that finishes after a newer
    /// one started is stale.
    generation: AtomicU64,
    /// Known once `Resource::new` returned.
    resource: OnceLock<Resource<LiveResult<O>>>,
    feed: Feed,
    /// Decided when the resource is created (the owner's hydration context).
    on_server: bool,
}

fn live_resource<T, S>(
    query: impl Fn() -> Query<T> + Send + Sync + 'static,
) -> Resource<LiveResult<S::Output>>
where
    T: FromRow + PartialEq + Sync,
    S: Shape<T>,
    LiveResult<S::Output>: Serialize + DeserializeOwned,
{
    let query = Arc::new(query);
    let state = Arc::new(LiveState::<S::Output> {
        generation: AtomicU64::new(0),
        resource: OnceLock::new(),
        feed: Feed::new(),
        on_server: on_server(),
    });
    let fetcher = {
        let state = Arc::clone(&state);
        move |key: Query<T>| {
            let state = Arc::clone(&state);
            sendable(async move {
                // Counted when the load runs, not when the fetcher is called: a hydrating
                // resource calls it once and drops the future unpolled (it has the
                // server's value), and the hydration effect below must still follow.
                let generation = state.generation.fetch_add(1, Ordering::SeqCst) + 1;
                state.feed.stop(); // the old key's updates must not land on the new key
                if state.on_server {
                    return S::fetch(key).await;
                }
                // On the client the load is the live query's first result: nothing can
                // be written between the snapshot and the subscription.
                let mut live = key.watch();
                let first = live.next().await.unwrap_or(Err(Error::Closed));
                if state.generation.load(Ordering::SeqCst) == generation {
                    follow::<T, S>(&state, live);
                }
                first.map(S::from_rows)
            })
        }
    };
    let resource = Resource::new(
        {
            let query = Arc::clone(&query);
            move || query()
        },
        fetcher,
    );
    let _ = state.resource.set(resource);
    // A hydrating resource takes the server's value without loading; follow the query
    // from there. Effects run only on the client, so the server never subscribes.
    Effect::new({
        let state = Arc::clone(&state);
        move || {
            if state.generation.load(Ordering::SeqCst) == 0 {
                follow::<T, S>(&state, untrack(|| query()).watch());
            }
        }
    });
    resource
}

/// Feeds the results of `live` into the resource, in place of the previous feed.
fn follow<T, S>(state: &Arc<LiveState<S::Output>>, live: LiveQuery<T>)
where
    T: FromRow + PartialEq + Sync,
    S: Shape<T>,
{
    // Weak: the task must not keep the state (and with it the feed) alive.
    let shared: Weak<LiveState<S::Output>> = Arc::downgrade(state);
    state.feed.start_send(async move {
        let resource = shared
            .upgrade()
            .and_then(|state| state.resource.get().copied());
        if let Some(resource) = resource {
            crate::ui_feed::pump(live, |next| {
                set_if_changed(resource, next.map(S::from_rows))
            })
            .await;
        }
    });
}

/// Sets `next` unless the resource already holds an equal value; `false` once the
/// resource is disposed.
fn set_if_changed<O>(resource: Resource<LiveResult<O>>, next: LiveResult<O>) -> bool
where
    O: PartialEq + Send + Sync + 'static,
{
    // Read through the resource's `AsyncDerived`: the resource's own read warns when it
    // happens outside a `<Suspense>` while hydrating, which a background task always is.
    let derived: &AsyncDerived<LiveResult<O>> = &resource;
    match derived.try_with_untracked(|current| crate::ui_feed::unchanged(current.as_ref(), &next)) {
        None => false, // disposed
        Some(true) => true,
        Some(false) => {
            if let Err(error) = &next {
                tracing::debug!(%error, "live query failed; it runs again on the next change");
            }
            resource.try_set(Some(next)).is_none()
        }
    }
}
