//! A live query as a plain signal, for code that does not want a resource.

use futures::StreamExt;
use leptos_reactive::{Signal, SignalGet, SignalSet, create_effect, create_memo, create_signal};

use super::feed::Feed;
use super::resource::LiveResult;
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
