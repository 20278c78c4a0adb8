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

use super::context::use_database;
use super::feed::{Feed, TaskFuture, boxed, on_server, sendable};
use crate::query::LiveQueryOptions;
use crate::query::live_options::StreamSpec;
use crate::query::stream_gate::{self, LiveKey};
use crate::runtime::MaybeSend;
use crate::{Database, Error, FromRow, LiveQuery, Query};

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
    live_resource::<T, AllRows, _>(query, None)
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
    live_resource::<T, FirstRow, _>(query, None)
}

/// Like [`use_live_query`], for a query whose rows come from sync streams (like
/// `useQuery(sql, params, { streams })` in PowerSync's React SDK): the resource keeps
/// loading until the streams have synced, instead of resolving to the empty local
/// result.
///
/// `options` lists the streams ([`LiveQueryOptions::stream`]). With `query` it is the
/// resource's source: signals either reads re-key the resource. The streams need the
/// database from [`provide_database`](super::provide_database).
///
/// # Reactive contract
/// Everything [`use_live_query`] promises, and:
/// - **Subscribed while the owner lives.** On the client each stream is subscribed when
///   the resource loads and released when the owner is cleaned up (its TTL then starts).
///   A re-key releases the old subscriptions and takes the new ones.
/// - **Loading until synced.** A load ends once every stream has synced at least once
///   ([`SyncStreamStatus::has_synced`](crate::SyncStreamStatus::has_synced), which
///   persists across restarts), with the rows then: `<Suspense>` shows its fallback
///   meanwhile, `<Transition>` keeps the previous rows after a re-key. Later syncs of the
///   streams never make it load again.
/// - **Errors are shown.** A stream the service refuses (an unknown stream, a missing
///   parameter: the `errors` of its [`SyncStreamStatus`](crate::SyncStreamStatus)) ends
///   the load with `Err`, and makes the value `Err` for as long as the service reports
///   it; so does a subscription that fails locally (invalid parameters) or a missing
///   database in context ([`Error::InvalidParameter`]).
/// - **Server rendering.** The server neither subscribes nor waits (a server without a
///   sync connection would never see the streams sync): the resource resolves at once
///   with the rows the server's database holds, serialized into the page. The hydrating
///   client keeps that value while it subscribes, and follows its own database once the
///   streams have synced there.
///
/// ```no_run
/// use livesync::leptos08::{LiveQueryOptions, use_database, use_live_query_with};
/// use reactive_graph::signal::ReadSignal;
/// use reactive_graph::traits::Get;
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
///     let todos = use_live_query_with(
///         move || {
///             db.query::<Todo>("SELECT id, description FROM todos WHERE list_id = ? ORDER BY id")
///                 .bind(list_id.get())
///         },
///         // Re-keyed with the query when `list_id` changes.
///         move || LiveQueryOptions::new().stream("list_todos", json!({"list_id": list_id.get()})),
///     );
///     // view! {
///     //     <Suspense fallback=|| "syncing this list…">
///     //         {move || Suspend::new(async move {
///     //             todos.await.map(|rows| rows.into_iter().map(|t| view! { <li>{t.description}</li> }).collect_view())
///     //         })}
///     //     </Suspense>
///     // }
///     move || match todos.get() {
///         None => "syncing this list…",
///         Some(Ok(rows)) if rows.is_empty() => "nothing to do",
///         Some(Ok(_)) => "todos",
///         Some(Err(_)) => "could not load this list",
///     }
/// }
/// ```
#[track_caller]
pub fn use_live_query_with<T>(
    query: impl Fn() -> Query<T> + Send + Sync + 'static,
    options: impl Fn() -> LiveQueryOptions + Send + Sync + 'static,
) -> LiveResource<Vec<T>>
where
    T: FromRow + PartialEq + Clone + Sync + Serialize + DeserializeOwned,
{
    live_resource::<T, AllRows, _>(move || (query(), options()), Some(gated_feed::<T, AllRows>))
}

/// Like [`use_live_query_with`], for the first row only: `Ok(None)` when there is none
/// (once the streams have synced).
///
/// ```no_run
/// use livesync::leptos08::{LiveQueryOptions, use_database, use_live_query_one_with};
/// use reactive_graph::traits::Get;
/// use serde_json::json;
///
/// // view! { <Suspense fallback=|| "…"><h2>{move || list_name()}</h2></Suspense> }
/// fn list_name(list_id: String) -> impl Fn() -> Option<String> {
///     let db = use_database().expect("provide_database at the root");
///     let id = list_id.clone();
///     let name = use_live_query_one_with(
///         move || db.query::<String>("SELECT name FROM lists WHERE id = ?").bind(id.clone()),
///         move || LiveQueryOptions::new().stream("list", json!({"id": list_id})),
///     );
///     move || name.get().and_then(Result::ok).flatten()
/// }
/// ```
#[track_caller]
pub fn use_live_query_one_with<T>(
    query: impl Fn() -> Query<T> + Send + Sync + 'static,
    options: impl Fn() -> LiveQueryOptions + Send + Sync + 'static,
) -> LiveResource<Option<T>>
where
    T: FromRow + PartialEq + Clone + Sync + Serialize + DeserializeOwned,
{
    live_resource::<T, FirstRow, _>(
        move || (query(), options()),
        Some(gated_feed::<T, FirstRow>),
    )
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

/// Where a gated feed sends each value; `false` once nobody listens.
#[cfg(not(target_arch = "wasm32"))]
type Emit<O> = Box<dyn FnMut(LiveResult<O>) -> bool + Send>;
/// Where a gated feed sends each value; `false` once nobody listens.
#[cfg(target_arch = "wasm32")]
type Emit<O> = Box<dyn FnMut(LiveResult<O>) -> bool>;

/// Builds the task that keeps a query's streams subscribed and feeds its values once
/// they have synced (`stream_gate::drive`). A plain function instantiated where
/// `T: Clone` is known, so the resource code itself needs no such bound.
type GatedFeed<T, O> = fn(Database, Vec<StreamSpec>, Query<T>, Emit<O>) -> TaskFuture;

fn gated_feed<T, S>(
    db: Database,
    specs: Vec<StreamSpec>,
    query: Query<T>,
    mut emit: Emit<S::Output>,
) -> TaskFuture
where
    T: FromRow + PartialEq + Clone + Sync,
    S: Shape<T>,
{
    boxed(async move {
        stream_gate::drive_rows(&db, &specs, query, |rows| emit(rows.map(S::from_rows))).await;
    })
}

/// What the fetcher, the hydration effect and the feed share.
struct LiveState<T, O: Send + Sync + 'static> {
    /// Bumped by every load when it starts running; a load that finishes after a newer
    /// one started is stale.
    generation: AtomicU64,
    /// Known once `Resource::new` returned.
    resource: OnceLock<Resource<LiveResult<O>>>,
    feed: Feed,
    /// Decided when the resource is created (the owner's hydration context).
    on_server: bool,
    /// The database from context, for the streams (only looked up when there are any).
    db: Option<Database>,
    /// `Some` for a resource that waits for streams.
    gated: Option<GatedFeed<T, O>>,
}

fn live_resource<T, S, K>(
    source: impl Fn() -> K + Send + Sync + 'static,
    gated: Option<GatedFeed<T, S::Output>>,
) -> Resource<LiveResult<S::Output>>
where
    T: FromRow + PartialEq + Sync,
    S: Shape<T>,
    K: LiveKey<T> + Send + Sync,
    LiveResult<S::Output>: Serialize + DeserializeOwned,
{
    let source = Arc::new(source);
    let state = Arc::new(LiveState::<T, S::Output> {
        generation: AtomicU64::new(0),
        resource: OnceLock::new(),
        feed: Feed::new(),
        on_server: on_server(),
        db: gated.and_then(|_| use_database()),
        gated,
    });
    let fetcher = {
        let state = Arc::clone(&state);
        move |key: K| {
            let state = Arc::clone(&state);
            sendable(async move {
                // Counted when the load runs, not when the fetcher is called: a hydrating
                // resource calls it once and drops the future unpolled (it has the
                // server's value), and the hydration effect below must still follow.
                let generation = state.generation.fetch_add(1, Ordering::SeqCst) + 1;
                state.feed.stop(); // the old key's updates must not land on the new key
                if state.on_server {
                    return S::fetch(key.query()).await;
                }
                if !key.streams().is_empty() {
                    // The load ends with the gated feed's first value: the rows once the
                    // streams have synced, or an error.
                    let (first, value) = futures::channel::oneshot::channel();
                    if !follow_gated::<T, S, K>(&state, &key, Some(first)) {
                        return Err(no_database());
                    }
                    return value.await.unwrap_or(Err(Error::Closed));
                }
                // On the client the load is the live query's first result: nothing can
                // be written between the snapshot and the subscription.
                let mut live = key.query().watch();
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
            let source = Arc::clone(&source);
            move || source()
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
                let key = untrack(|| source());
                if key.streams().is_empty() {
                    follow::<T, S>(&state, key.query().watch());
                } else if !follow_gated::<T, S, K>(&state, &key, None) {
                    // The server's value stays; say why it never goes live.
                    set_if_changed(state.resource.get().copied(), Err(no_database()));
                }
            }
        }
    });
    resource
}

fn no_database() -> Error {
    stream_gate::no_database(
        "use_live_query_with",
        "livesync::leptos08::provide_database",
    )
}

/// Feeds the results of `live` into the resource, in place of the previous feed.
fn follow<T, S>(state: &Arc<LiveState<T, S::Output>>, live: LiveQuery<T>)
where
    T: FromRow + PartialEq + Sync,
    S: Shape<T>,
{
    // Weak: the task must not keep the state (and with it the feed) alive.
    let shared: Weak<LiveState<T, S::Output>> = Arc::downgrade(state);
    state.feed.start_send(async move {
        let resource = shared
            .upgrade()
            .and_then(|state| state.resource.get().copied());
        if resource.is_some() {
            crate::ui_feed::pump(live, |next| {
                set_if_changed(resource, next.map(S::from_rows))
            })
            .await;
        }
    });
}

/// Starts the gated feed of `key` in place of the previous feed: it keeps the streams
/// subscribed and sets the resource (or, for its first value, answers `first`).
/// `false` when there is no database to subscribe with.
fn follow_gated<T, S, K>(
    state: &Arc<LiveState<T, S::Output>>,
    key: &K,
    first: Option<futures::channel::oneshot::Sender<LiveResult<S::Output>>>,
) -> bool
where
    T: FromRow + PartialEq + Sync,
    S: Shape<T>,
    K: LiveKey<T>,
{
    let (Some(db), Some(gated)) = (state.db.clone(), state.gated) else {
        return false;
    };
    let shared: Weak<LiveState<T, S::Output>> = Arc::downgrade(state);
    let mut first = first;
    let emit: Emit<S::Output> = Box::new(move |next| {
        if let Some(first) = first.take() {
            // The waiting load resolves the resource with it.
            return first.send(next).is_ok();
        }
        let resource = shared
            .upgrade()
            .and_then(|state| state.resource.get().copied());
        set_if_changed(resource, next)
    });
    state
        .feed
        .start_task(gated(db, key.streams().to_vec(), key.query(), emit));
    true
}

/// Sets `next` unless the resource already holds an equal value; `false` once the
/// resource is disposed.
fn set_if_changed<O>(resource: Option<Resource<LiveResult<O>>>, next: LiveResult<O>) -> bool
where
    O: PartialEq + Send + Sync + 'static,
{
    let Some(resource) = resource else {
        return false;
    };
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
