//! Leptos integration (feature `leptos`, leptos_reactive 0.6): live queries as Leptos
//! resources and signals, the sync status as a signal.
//!
//! Everything here is a plain `create_*` / `use_*` function that creates reactive nodes
//! owned by the current reactive owner (the component being built, or whatever
//! `as_child_of_current_owner` / `with_owner` set), exactly like Leptos' own primitives.
//! When that owner is disposed, `on_cleanup` stops the background work: no task and no
//! table-change subscription outlives the component.
//!
//! | livesync | Leptos idiom it maps onto |
//! | --- | --- |
//! | [`provide_database`] / [`use_database`] | `provide_context` / `use_context` |
//! | [`create_live_query`], [`create_live_query_one`] | Leptos' own [`Resource`](leptos_reactive::Resource): read it inside `<Suspense>` or `<Transition>`; `.get()`, `.with()`, `.loading()`, `.refetch()` work as usual |
//! | [`create_live_query_with`], [`create_live_query_one_with`] | the same resources for data that comes from sync streams ([`LiveQueryOptions`], like `useQuery(sql, params, { streams })` in PowerSync's React SDK): the streams are subscribed while the owner lives and the resource stays unresolved until they have synced |
//! | [`create_live_signal`], [`create_live_signal_with`] | a plain signal, client-only like `create_local_resource` |
//! | [`use_sync_status`] | a `Signal<SyncStatus>` |
//! | [`use_sync_stream`] | a subscription held until `on_cleanup`, with its status as a `Signal` |
//!
//! # How a live resource works
//! The closure given to [`create_live_query`] builds a [`Query`](crate::Query); it is the
//! resource's *source*, so signals read in it re-key the resource: a new query is fetched
//! and the old subscription is replaced. The resource's fetcher runs the query once
//! ([`Query::fetch_all`](crate::Query::fetch_all)); on the client a
//! [`LiveQuery`](crate::LiveQuery), subscribed *before* that snapshot so no write can
//! fall in between, then pushes every changed result into the resource with
//! `Resource::set`. Results equal to the current value are not set, so readers re-run
//! only when the rows changed.
//!
//! # Server rendering, hydration, client, desktop
//! Leptos decides where live updates happen, through its own rule that effects run only
//! on the client:
//! - **`ssr`** (leptos_reactive's `ssr` feature, e.g. through `leptos/ssr`): effects
//!   never run, so the resource resolves once from its snapshot (fetched the way leptos
//!   runs a resource's fetcher on the server, serialized into the page like any `create_resource`) and nothing
//!   subscribes to table changes. A live signal stays `None` on the server, like a local
//!   resource. A resource with sync streams ([`create_live_query_with`]) neither
//!   subscribes to them nor waits for them on the server (a server without a sync
//!   connection would never see them sync): it resolves with the rows the server's
//!   database holds.
//! - **`csr` / `hydrate`**: live. A hydrating resource starts from the server's value and
//!   subscribes once the client runs (one with sync streams keeps the server's value
//!   until the streams have synced on the client).
//! - **Native without features** (desktop, tests): live. leptos_reactive then runs a
//!   resource's fetcher inline (`spawn_local` is `block_on` there), so the first value is
//!   ready as soon as the resource exists; live updates run as tasks on the local
//!   executor the app names once with [`provide_local_spawner`] (tokio's `LocalSet`,
//!   smol's `LocalExecutor`, `futures`' `LocalPool`, a toolkit's event loop: any works).
//!   Without one nothing is live and an error is logged: resources keep their snapshot,
//!   a live signal stays `None`, the sync status keeps its first value and
//!   `use_sync_stream` does not subscribe.
//!
//! Disposing an owner (a component unmounting) or the whole runtime stops its live
//! tasks and releases their subscriptions.
//!
//! Background tasks are started with leptos_reactive's `spawn_local` on wasm (unless a
//! local spawner was provided) and with the provided local spawner elsewhere; nothing
//! executor-specific appears in this module's API.
//!
//! ```no_run
//! use leptos_reactive::*;
//! use livesync::leptos::{create_live_query, provide_database, use_database, use_sync_status};
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
//!     let todos = create_live_query(move || {
//!         db.query::<Todo>("SELECT id, description FROM todos WHERE list_id = ?")
//!             .bind(list_id.get()) // re-keys the resource when list_id changes
//!     });
//!     let status = use_sync_status();
//!     // view! { <Transition fallback=|| "loading">{move || todos.get().map(...)}</Transition> }
//!     let _ = (todos, status);
//! }
//! ```
//!
//! [`use_sync_stream`] keeps a sync stream subscribed for the owner's lifetime; to also
//! hold a query's value back until the stream has synced (the `streams` option of
//! PowerSync's React `useQuery`), use [`create_live_query_with`].

mod context;
mod feed;
mod resource;
mod signal;
mod spawner;
mod status;
mod stream;

pub use crate::query::LiveQueryOptions;
pub use context::{provide_database, use_database};
pub use resource::{
    LiveResource, LiveResult, StreamedResource, create_live_query, create_live_query_one,
    create_live_query_one_with, create_live_query_with,
};
pub use signal::{create_live_signal, create_live_signal_with};
pub use spawner::{LocalTask, provide_local_spawner};
pub use status::use_sync_status;
pub use stream::use_sync_stream;
