//! The sync status as a signal.

use futures::StreamExt;
use leptos_reactive::{Signal, SignalSet, SignalWithUntracked, create_effect, create_signal};

use super::context::use_database;
use super::feed::Feed;
use crate::SyncStatus;

/// The [`SyncStatus`] of the database from [`provide_database`](super::provide_database),
/// as a signal that changes whenever the status does (connected, downloading with
/// progress, uploading, has synced, errors).
///
/// It starts with the current status; updates arrive on the client only (on the server
/// the page shows the status at render time). When the owner is disposed, `on_cleanup`
/// stops following. Without a provided database it logs an error and stays at
/// `SyncStatus::default()` (offline, never synced).
///
/// ```no_run
/// use leptos_reactive::*;
/// use livesync::leptos::use_sync_status;
///
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
            "use_sync_status: no database in context; call livesync::leptos::provide_database first"
        );
        return Signal::derive(SyncStatus::default);
    };
    let (status, set_status) = create_signal(db.status());
    let feed = Feed::new();
    create_effect(move |_| {
        let mut statuses = db.watch_status();
        feed.start(async move {
            while let Some(next) = statuses.next().await {
                // The stream starts with the current status, usually the initial value.
                match status.try_with_untracked(|current| *current == next) {
                    None => break, // the signal was disposed
                    Some(true) => {}
                    Some(false) => {
                        if set_status.try_set(next).is_some() {
                            break;
                        }
                    }
                }
            }
        });
    });
    status.into()
}
