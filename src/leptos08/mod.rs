//! Leptos 0.8 integration (feature `leptos08`, reactive_graph 0.2 and leptos_server
//! 0.8): live queries as Leptos 0.8 resources and signals, the sync status as a signal.
//!
//! The Leptos 0.6 adapter ([`livesync::leptos`](crate#features), feature `leptos`) stays
//! as it is; the two share only version-independent code (the task slot that feeds a
//! reactive value, and the change check), so either builds without the other.
//!
//! Everything here is a `use_*` function that creates reactive nodes owned by the current
//! [`Owner`](reactive_graph::owner::Owner) (the component being built), like Leptos 0.8's
//! own primitives. When that owner is cleaned up, the background work stops: no task and
//! no table-change subscription outlives the component.
//!
//! | livesync | Leptos 0.8 idiom it maps onto |
//! | --- | --- |
//! | [`provide_database`] / [`use_database`] | `provide_context` / `use_context` |
//! | [`use_live_query`], [`use_live_query_one`] | Leptos' own [`Resource`](leptos_server::Resource): read it inside `<Suspense>` / `<Transition>` (`.await` in a `Suspend`, or `.get()`); server-rendered once, serialized, live after hydration |
//! | [`use_live_query_with`], [`use_live_query_one_with`] | the same resource, loading until the sync streams listed in [`LiveQueryOptions`] have synced (subscribed while the owner lives) |
//! | [`use_live_local_query`] | a [`LocalResource`](leptos_server::LocalResource): client-only, no `Serialize` / `Send` bounds |
//! | [`use_live_signal`], [`use_live_signal_with`] | a plain `Signal<Option<LiveResult<Vec<T>>>>`, client-only (`_with`: `None` until its streams have synced) |
//! | [`use_sync_status`] | a `Signal<SyncStatus>` |
//! | [`use_sync_stream`] | a subscription held until the owner's cleanup, with its status as a `Signal` |
//!
//! # How a live resource works
//! The closure given to [`use_live_query`] builds a [`Query`](crate::Query); it is the
//! resource's source, so signals read in it re-key the resource. On the client a load
//! subscribes a [`LiveQuery`](crate::LiveQuery) and resolves with its first result;
//! the live query then writes every changed result into the resource. On the server
//! (the owner's hydration context is not a browser, as under leptos_axum) a load is a
//! one-off snapshot and nothing subscribes.
//!
//! # Where live tasks run
//! On Leptos 0.8's executor, `any_spawner::Executor::spawn_local`: in the browser the
//! page's microtasks (set up by `mount_to_body` / `hydrate_body`); on the server
//! leptos_axum's tokio; a desktop app or a test initialises it once
//! (`Executor::init_tokio()` inside a `LocalSet`, `init_futures_executor()`, ...).
//! Effects, which start the live work of signals and of hydrated resources, run only
//! where reactive_graph's `effects` feature is on (`leptos/csr`, `leptos/hydrate`), never
//! under `leptos/ssr`.
//!
//! # Feature unification
//! A server build turns on `leptos_server/ssr`, under which local resources stay pending
//! and effects stay off. The library's own tests of this module need effects, so they run
//! in a build of their own (`cargo test -p livesync --all-features`, one cargo invocation
//! per package in `scripts/test`), never together with a `ssr` demo.
//!
//! ```no_run
//! use livesync::leptos08::{provide_database, use_database, use_live_query, use_sync_status};
//! use reactive_graph::signal::ReadSignal;
//! use reactive_graph::traits::Get;
//!
//! #[derive(livesync::Row, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Todo {
//!     id: String,
//!     description: String,
//! }
//!
//! fn todo_list(db: livesync::Database, list_id: ReadSignal<String>) {
//!     provide_database(db); // once, near the root
//!
//!     // in a component:
//!     let db = use_database().expect("provide_database was called above");
//!     let todos = use_live_query(move || {
//!         db.query::<Todo>("SELECT id, description FROM todos WHERE list_id = ?")
//!             .bind(list_id.get()) // re-keys the resource when list_id changes
//!     });
//!     let status = use_sync_status();
//!     // view! {
//!     //     <Transition fallback=|| "loading">
//!     //         <ul>{move || Suspend::new(async move {
//!     //             todos.await.map(|rows| rows.into_iter()
//!     //                 .map(|t| view! { <li>{t.description}</li> }).collect_view())
//!     //         })}</ul>
//!     //     </Transition>
//!     //     <p>{move || status.get().connected.then_some("online")}</p>
//!     // }
//!     let _ = (todos, status);
//! }
//! ```

mod context;
mod feed;
mod local;
mod resource;
mod status;
mod stream;

pub use crate::query::LiveQueryOptions;
pub use context::{provide_database, use_database};
pub use local::{use_live_local_query, use_live_signal, use_live_signal_with};
pub use resource::{
    LiveResource, LiveResult, use_live_query, use_live_query_one, use_live_query_one_with,
    use_live_query_with,
};
pub use status::use_sync_status;
pub use stream::use_sync_stream;
