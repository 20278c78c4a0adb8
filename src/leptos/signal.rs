//! A live query as a plain signal, for code that does not want a resource.

use futures::StreamExt;
use leptos_reactive::{Signal, SignalGet, SignalSet, create_effect, create_memo, create_signal};

use super::context::use_database;
use super::feed::Feed;
use super::resource::LiveResult;
use crate::query::LiveQueryOptions;
use crate::query::stream_gate;
use crate::{FromRow, Query};

/// A query's rows as a read-only signal that stays current: `None` until the first
/// result, then `Some(Ok(rows))` (or `Some(Err(..))` after a failed run) whenever the
/// rows change.
///
/// # Reactive contract
/// - Signals read in `query` re-key it: a different [`Query`] replaces the subscription.
///   The signal keeps the previous rows until the new query's first result (like
///   `<Transition>`).
/// - It is client-only, like `create_local_resource`: it subscribes in an effect, so
///   under `ssr` it stays `None`; server-rendered pages use
///   [`create_live_query`](super::create_live_query).
/// - No `Serialize` or `PartialEq` needed on `T`: unchanged results are already dropped
///   by the [`LiveQuery`](crate::LiveQuery), compared on raw column values.
/// - When the owner is disposed, `on_cleanup` stops the subscription.
///
/// ```no_run
/// use leptos_reactive::*;
/// use livesync::leptos::{create_live_signal, use_database};
///
/// fn open_titles() -> impl Fn() -> Vec<String> {
///     let db = use_database().expect("provide_database at the root");
///     let titles = create_live_signal(move || {
///         db.query::<String>("SELECT description FROM todos WHERE done = 0 ORDER BY id")
///     });
///     move || titles.get().and_then(Result::ok).unwrap_or_default()
/// }
/// ```
#[track_caller]
pub fn create_live_signal<T>(
    query: impl Fn() -> Query<T> + 'static,
) -> Signal<Option<LiveResult<Vec<T>>>>
where
    T: FromRow,
{
    let (rows, set_rows) = create_signal(None);
    let feed = Feed::new();
    // Re-subscribe only when the query itself changed, not on every signal it reads.
    let query = create_memo(move |_| query());
    create_effect(move |_| {
        let mut live = query.get().watch();
        feed.start(async move {
            while let Some(next) = live.next().await {
                if set_rows.try_set(Some(next)).is_some() {
                    break; // the signal was disposed
                }
            }
        });
    });
    rows.into()
}

/// [`create_live_signal`] for data that comes from sync streams: `None` until every
/// stream in `options` has synced (not an empty result), then the rows, live.
///
/// # Reactive contract
/// As [`create_live_signal`] (client-only, keeps the previous rows across a re-key until
/// the new key's first result), and as
/// [`create_live_query_with`](super::create_live_query_with) for the streams: signals
/// read in `query` or `options` re-key it; the streams are subscribed while the owner
/// lives (released by `on_cleanup`, and on a re-key); a stream the service refuses, or
/// a subscription that fails, makes the value `Some(Err(..))` while it lasts; later
/// syncs never make it `None` again. The streams need the database from
/// [`provide_database`](super::provide_database).
///
/// ```no_run
/// use leptos_reactive::*;
/// use livesync::leptos::{LiveQueryOptions, create_live_signal_with, use_database};
/// use serde_json::json;
///
/// fn list_titles(list_id: String) -> impl Fn() -> Option<Vec<String>> {
///     let db = use_database().expect("provide_database at the root");
///     let id = list_id.clone();
///     let titles = create_live_signal_with(
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
pub fn create_live_signal_with<T>(
    query: impl Fn() -> Query<T> + 'static,
    options: impl Fn() -> LiveQueryOptions + 'static,
) -> Signal<Option<LiveResult<Vec<T>>>>
where
    T: FromRow + Clone,
{
    let (rows, set_rows) = create_signal(None);
    let feed = Feed::new();
    let db = use_database();
    // Re-subscribe only when the query or the streams changed.
    let key = create_memo(move |_| (query(), options()));
    create_effect(move |_| {
        let (query, options) = key.get();
        if options.streams().is_empty() {
            let mut live = query.watch();
            feed.start(async move {
                while let Some(next) = live.next().await {
                    if set_rows.try_set(Some(next)).is_some() {
                        break; // the signal was disposed
                    }
                }
            });
            return;
        }
        let Some(db) = db.clone() else {
            feed.stop();
            set_rows.set(Some(Err(stream_gate::no_database(
                "create_live_signal_with",
                "livesync::leptos::provide_database",
            ))));
            return;
        };
        feed.start(async move {
            stream_gate::drive_rows(&db, options.streams(), query, |next| {
                set_rows.try_set(Some(next)).is_none()
            })
            .await;
        });
    });
    rows.into()
}
