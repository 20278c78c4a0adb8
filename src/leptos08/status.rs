//! The sync status as a Leptos 0.8 signal.

use futures::StreamExt;
use reactive_graph::effect::Effect;
use reactive_graph::signal::ArcRwSignal;
use reactive_graph::traits::{Set, WithUntracked};
use reactive_graph::wrappers::read::Signal;

use super::context::use_database;
use super::feed::Feed;
use crate::SyncStatus;

/// The [`SyncStatus`] of the database from [`provide_database`](super::provide_database),
/// as a signal that changes whenever the status does (connected, downloading with
/// progress, uploading, has synced, errors).
///
/// It starts with the current status; updates arrive where effects run (the client).
/// When the owner is cleaned up it stops following. Without a provided database it logs
/// an error and stays at `SyncStatus::default()` (offline, never synced).
///
/// ```no_run
/// use livesync::leptos08::use_sync_status;
/// use reactive_graph::traits::Get;
///
/// // view! { <p class="status">{status_line()}</p> }
/// fn status_line() -> impl Fn() -> &'static str {
///     let status = use_sync_status();
///     move || match status.get() {
///         s if s.any_error().is_some() => "sync error",
///         s if s.connected && s.has_synced => "up to date",
///         s if s.connected => "syncing",
///         _ => "offline",
///     }
/// }
/// ```
#[track_caller]
pub fn use_sync_status() -> Signal<SyncStatus> {
    let Some(db) = use_database() else {
        tracing::error!(
            "use_sync_status: no database in context; call livesync::leptos08::provide_database first"
        );
        return Signal::stored(SyncStatus::default());
    };
    let status = ArcRwSignal::new(db.status());
    let feed = Feed::new();
    let writer = status.clone();
    Effect::new(move |started: Option<()>| {
        if started.is_some() {
            return;
        }
        let mut statuses = db.watch_status();
        let status = writer.clone();
        feed.start(async move {
            while let Some(next) = statuses.next().await {
                // The stream starts with the current status, usually the initial value.
                match status.try_with_untracked(|current| *current == next) {
                    None => break, // the signal was disposed
                    Some(true) => {}
                    Some(false) => {
                        if status.try_set(next).is_some() {
                            break;
                        }
                    }
                }
            }
        });
    });
    status.read_only().into()
}
