//! Dioxus 0.7 hooks (feature `dioxus`): live queries, sync status and sync streams as
//! signals owned by the component that uses them.
//!
//! - [`provide_database`] / [`use_database`]: the store travels as context (plain
//!   `use_context_provider(|| db.clone())` works too).
//! - [`use_live_query`]: `use_live_query(move || db.query::<Todo>(..).bind(list_id()))`
//!   gives a `Copy` [`UseLiveQuery`] handle: [`LiveState::Loading`], `Ready(rows)` or
//!   `Error(e)`. Like `use_memo`/`use_resource`, signals read inside the closure re-key
//!   the subscription (the old one is dropped). Rows arrive as `Arc<[T]>`, so a render
//!   clones a pointer, not the result. [`UseLiveQuery::suspend`] works with
//!   `SuspenseBoundary` and suspends on the first load only.
//! - [`use_live_query_with`] / [`use_live_query_one_with`]: a live query whose data
//!   comes from sync streams ([`LiveQueryOptions::stream`], like `useQuery(sql, params,
//!   { streams })` in PowerSync's React SDK): the streams are subscribed while the
//!   component is mounted, and the query shows [`LiveState::Loading`] until they have
//!   synced instead of an empty result; a stream the service refuses shows as
//!   [`LiveState::Error`].
//! - [`use_live_query_one`]: the first row, as `Option<T>`.
//! - [`use_sync_status`]: a [`ReadSignal`] of [`SyncStatus`](crate::SyncStatus).
//! - [`use_sync_stream`]: keeps a sync stream subscribed while the component is mounted,
//!   with its status (to also hold a query back until the stream has synced, use
//!   [`use_live_query_with`]).
//!
//! Every task a hook starts belongs to the component's scope: unmounting stops it and
//! releases its table-change subscription (and its stream subscription, whose TTL then
//! starts). Queries run on livesync's reader threads; the UI task only awaits results.
//!
//! **Server-side rendering**: during `VirtualDom::wait_for_suspense` only the one-shot
//! snapshot behind [`UseLiveQuery::suspend`] runs, so a server render takes one snapshot
//! and starts no live task. Render through a `SuspenseBoundary` and call `suspend()?` to
//! get data into server-rendered HTML. A query with sync streams does not subscribe or
//! wait for them on the server (a server without a sync connection would never see them
//! sync): it renders what the server's database holds, and
//! [`UseLiveQuery::is_syncing`] says whether that is complete.
//!
//! ```
//! use dioxus::prelude::*;
//! use livesync::dioxus::{LiveState, use_database, use_live_query};
//!
//! #[derive(livesync::Row, Clone, PartialEq, Debug)]
//! struct Todo {
//!     id: String,
//!     description: String,
//! }
//!
//! #[component]
//! fn Todos(list_id: ReadSignal<String>) -> Element {
//!     let db = use_database();
//!     let todos = use_live_query(move || {
//!         db.query::<Todo>("SELECT id, description FROM todos WHERE list_id = ? ORDER BY id")
//!             .bind(list_id())
//!     });
//!     match todos.value() {
//!         LiveState::Loading => rsx! { p { "loading…" } },
//!         LiveState::Error(error) => rsx! { p { "could not load: {error}" } },
//!         LiveState::Ready(rows) => rsx! {
//!             ul { for todo in rows.iter() { li { key: "{todo.id}", "{todo.description}" } } }
//!         },
//!     }
//! }
//! ```

mod context;
mod live;
mod sync;

pub use crate::query::LiveQueryOptions;
pub use context::{provide_database, try_use_database, use_database};
pub use live::{
    LiveState, UseLiveQuery, UseLiveQueryOne, use_live_query, use_live_query_one,
    use_live_query_one_with, use_live_query_with,
};
pub use sync::{UseSyncStream, use_sync_status, use_sync_stream};

/// Re-exported for signatures: the read-only signal type the hooks return.
pub use dioxus::prelude::ReadSignal;
