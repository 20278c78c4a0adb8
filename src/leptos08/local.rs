//! Client-only live values: a live query as a `LocalResource` or as a plain `Signal`.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use leptos_server::LocalResource;
use reactive_graph::computed::AsyncDerived;
use reactive_graph::effect::Effect;
use reactive_graph::signal::ArcRwSignal;
use reactive_graph::traits::{Set, WithUntracked};
use reactive_graph::wrappers::read::Signal;

use super::context::use_database;
use super::feed::Feed;
use super::resource::LiveResult;
use crate::query::LiveQueryOptions;
use crate::query::stream_gate;
use crate::{Error, FromRow, Query};

/// A query's rows as a Leptos 0.8 [`LocalResource`] that stays current: loaded on the
/// client only (on the server it stays pending, so a `<Suspense>` around it renders its
/// fallback there), then written again whenever the rows change.
///
/// # Reactive contract
/// - Signals read in `query` re-key it: the resource loads again (`<Transition>` keeps
///   the previous rows meanwhile) and follows the new query.
/// - No `Serialize`, `Send` or `Sync` needed on `T` or on the closure: nothing travels
///   from the server.
/// - Live updates are written only when the rows differ, and are not loads.
/// - When the owner is cleaned up, the subscription is released.
///
/// ```no_run
/// use livesync::leptos08::{use_database, use_live_local_query};
/// use reactive_graph::traits::Get;
///
/// // view! { <Suspense fallback=|| "loading">{move || titles()}</Suspense> }
/// fn titles() -> impl Fn() -> Vec<String> {
///     let db = use_database().expect("provide_database at the root");
///     let titles = use_live_local_query(move || {
///         db.query::<String>("SELECT description FROM todos WHERE done = 0 ORDER BY id")
///     });
///     move || titles.get().and_then(Result::ok).unwrap_or_default()
/// }
/// ```
#[track_caller]
pub fn use_live_local_query<T>(
    query: impl Fn() -> Query<T> + 'static,
) -> LocalResource<LiveResult<Vec<T>>>
where
    T: FromRow + PartialEq,
{
    let feed = Feed::new();
    let generation = Arc::new(AtomicU64::new(0));
    let resource: Rc<std::cell::OnceCell<LocalResource<LiveResult<Vec<T>>>>> = Rc::default();
    let handle = Rc::clone(&resource);
    let local = LocalResource::new(move || {
        // Read here, tracked: the signals `query` reads re-key the resource.
        let key = query();
        let this = generation.fetch_add(1, Ordering::SeqCst) + 1;
        feed.stop();
        let (feed, generation, handle) =
            (feed.clone(), Arc::clone(&generation), Rc::clone(&handle));
        async move {
            let mut live = key.watch();
            let first = live.next().await.unwrap_or(Err(Error::Closed));
            if generation.load(Ordering::SeqCst) == this
                && let Some(resource) = handle.get().copied()
            {
                feed.start(crate::ui_feed::pump(live, move |next| {
                    let derived: &AsyncDerived<LiveResult<Vec<T>>> = &resource;
                    match derived.try_with_untracked(|current| {
                        crate::ui_feed::unchanged(current.as_ref(), &next)
                    }) {
                        None => false,
                        Some(true) => true,
                        Some(false) => resource.try_set(Some(next)).is_none(),
                    }
                }));
            }
            first
        }
    });
    let _ = resource.set(local);
    local
}

/// A query's rows as a read-only [`Signal`] that stays current: `None` until the first
/// result, then `Some(Ok(rows))` (or `Some(Err(..))` after a failed run) whenever the
/// rows change. Client-only: it subscribes in an effect, so on the server it stays
/// `None`.
///
/// - Signals read in `query` re-key it; the signal keeps the previous rows until the new
///   query's first result.
/// - No `PartialEq` or `Serialize` needed on `T`: unchanged results are already dropped
///   by the [`LiveQuery`](crate::LiveQuery), compared on raw column values.
/// - When the owner is cleaned up, the subscription is released.
///
/// ```no_run
/// use livesync::leptos08::{use_database, use_live_signal};
/// use reactive_graph::traits::Get;
///
/// // view! { <p>{move || open_count()} " open"</p> }
/// fn open_count() -> impl Fn() -> usize {
///     let db = use_database().expect("provide_database at the root");
///     let open = use_live_signal(move || db.query::<String>("SELECT id FROM todos WHERE done = 0"));
///     move || open.get().and_then(Result::ok).map_or(0, |rows| rows.len())
/// }
/// ```
#[track_caller]
pub fn use_live_signal<T>(
    query: impl Fn() -> Query<T> + 'static,
) -> Signal<Option<LiveResult<Vec<T>>>>
where
    T: FromRow + Sync,
{
    let rows = ArcRwSignal::new(None);
    let feed = Feed::new();
    let writer = rows.clone();
    Effect::new(move |previous: Option<Query<T>>| {
        let key = query();
        // Re-subscribe only when the query itself changed, not on every signal it reads.
        if previous.as_ref() != Some(&key) {
            let rows = writer.clone();
            feed.start(crate::ui_feed::pump(key.clone().watch(), move |next| {
                rows.try_set(Some(next)).is_none()
            }));
        }
        key
    });
    rows.read_only().into()
}

/// Like [`use_live_signal`], for a query whose rows come from sync streams: the signal
/// stays `None` until every stream in `options` has synced (not the empty local result),
/// then follows the rows. The streams are subscribed while the owner lives; signals read
/// in `query` or `options` re-key both, and the signal keeps the previous rows until the
/// new streams have synced. A stream the service refuses, a failed subscription or a
/// missing database in context ([`provide_database`](super::provide_database)) make it
/// `Some(Err(..))`. Client-only, like [`use_live_signal`].
///
/// ```no_run
/// use livesync::leptos08::{LiveQueryOptions, use_database, use_live_signal_with};
/// use reactive_graph::traits::Get;
/// use serde_json::json;
///
/// // view! { <p>{move || titles().map(|t| t.join(", ")).unwrap_or_else(|| "syncing…".into())}</p> }
/// fn titles(list_id: String) -> impl Fn() -> Option<Vec<String>> {
///     let db = use_database().expect("provide_database at the root");
///     let id = list_id.clone();
///     let titles = use_live_signal_with(
///         move || {
///             db.query::<String>("SELECT description FROM todos WHERE list_id = ? ORDER BY id")
///                 .bind(id.clone())
///         },
///         move || LiveQueryOptions::new().stream("list_todos", json!({"list_id": list_id})),
///     );
///     move || titles.get().and_then(Result::ok) // None: still syncing
/// }
/// ```
#[track_caller]
pub fn use_live_signal_with<T>(
    query: impl Fn() -> Query<T> + 'static,
    options: impl Fn() -> LiveQueryOptions + 'static,
) -> Signal<Option<LiveResult<Vec<T>>>>
where
    T: FromRow + Clone + Sync,
{
    let rows = ArcRwSignal::new(None);
    let feed = Feed::new();
    let db = use_database();
    let writer = rows.clone();
    Effect::new(move |previous: Option<(Query<T>, LiveQueryOptions)>| {
        let key = (query(), options());
        // Re-subscribe only when the query or the streams changed.
        if previous.as_ref() == Some(&key) {
            return key;
        }
        let (live, options) = key.clone();
        let rows = writer.clone();
        if options.streams().is_empty() {
            feed.start(crate::ui_feed::pump(live.watch(), move |next| {
                rows.try_set(Some(next)).is_none()
            }));
            return key;
        }
        let Some(db) = db.clone() else {
            feed.stop();
            rows.set(Some(Err(stream_gate::no_database(
                "use_live_signal_with",
                "livesync::leptos08::provide_database",
            ))));
            return key;
        };
        feed.start(async move {
            stream_gate::drive_rows(&db, options.streams(), live, |next| {
                rows.try_set(Some(next)).is_none()
            })
            .await;
        });
        key
    });
    rows.read_only().into()
}
