//! `use_sync_status` and `use_sync_stream`: the sync engine as component state.

use dioxus::prelude::*;
use futures::StreamExt;
use serde_json::Value;

use super::context::use_database;
use crate::{Error, SyncStatus, SyncStreamStatus};

/// The database's [`SyncStatus`], kept current by a task owned by this component (every
/// change; the task stops on unmount). A hook.
///
/// ```
/// use dioxus::prelude::*;
///
/// #[component]
/// fn SyncBadge() -> Element {
///     let status = livesync::dioxus::use_sync_status();
///     let text = if status.read().connected { "online" } else { "offline" };
///     rsx! { span { "{text}" } }
/// }
/// ```
#[track_caller]
pub fn use_sync_status() -> ReadSignal<SyncStatus> {
    let db = use_database();
    let initial = db.status();
    let mut status = use_signal(move || initial);
    use_hook(move || {
        spawn(async move {
            let mut statuses = db.watch_status();
            while let Some(next) = statuses.next().await {
                if *status.peek() != next {
                    status.set(next);
                }
            }
        })
    });
    status.into()
}

/// A sync stream subscription held by a component, from [`use_sync_stream`]. `Copy`.
pub struct UseSyncStream {
    status: Memo<Option<SyncStreamStatus>>,
    error: Signal<Option<Error>>,
}

impl std::fmt::Debug for UseSyncStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not printing the signals: reading them here would subscribe the caller.
        f.debug_struct("UseSyncStream").finish_non_exhaustive()
    }
}

impl Clone for UseSyncStream {
    fn clone(&self) -> Self {
        *self
    }
}

impl Copy for UseSyncStream {}

impl UseSyncStream {
    /// The stream's entry in the sync status (`None` until subscribed).
    pub fn status(&self) -> Option<SyncStreamStatus> {
        self.status.read().clone()
    }

    /// Whether the stream's data has been applied at least once. A subscription the
    /// service refused also counts as synced once the checkpoint was applied (there is
    /// no data for it): check [`errors`](Self::errors) too.
    pub fn has_synced(&self) -> bool {
        self.status
            .read()
            .as_ref()
            .is_some_and(SyncStreamStatus::has_synced)
    }

    /// What the service reported about this subscription (for example a missing
    /// parameter or an unknown stream); empty when all is well.
    pub fn errors(&self) -> Vec<String> {
        self.status
            .read()
            .as_ref()
            .map(|s| s.errors.clone())
            .unwrap_or_default()
    }

    /// Why subscribing failed locally (invalid parameters, a database error), if it did.
    /// Errors the service reports are in [`errors`](Self::errors).
    pub fn error(&self) -> Option<Error> {
        self.error.read().clone()
    }
}

/// Subscribes to sync stream `name` with `parameters` while this component is mounted
/// (like PowerSync's React `useSyncStream`): the subscription is taken when the
/// component mounts and released when it unmounts (its TTL then starts). A hook; the
/// name and parameters are read once per mount — give the component a `key` that
/// includes them to subscribe to something else. For a query that must show loading
/// until the stream's data is there, and re-key with reactive parameters, use
/// [`use_live_query_with`](super::use_live_query_with) instead.
///
/// ```
/// use dioxus::prelude::*;
/// use serde_json::json;
///
/// #[component]
/// fn ListPage(list_id: String) -> Element {
///     let stream = livesync::dioxus::use_sync_stream("list_todos", Some(json!({"list_id": list_id})));
///     if !stream.has_synced() {
///         return rsx! { p { "syncing this list…" } };
///     }
///     rsx! { p { "list synced" } }
/// }
/// ```
#[track_caller]
pub fn use_sync_stream(name: impl Into<String>, parameters: Option<Value>) -> UseSyncStream {
    let db = use_database();
    let status = use_sync_status();
    let name = use_hook(move || name.into());
    let key = (name.clone(), parameters.clone());
    let mut error = use_signal(|| None);
    use_hook(move || {
        let stream = db.sync_stream(name, parameters);
        spawn(async move {
            match stream.subscribe().await {
                // Held by this task, which the component's scope owns: unmounting drops
                // it, and with it the subscription.
                Ok(subscription) => {
                    std::future::pending::<()>().await;
                    drop(subscription);
                }
                Err(failed) => {
                    tracing::warn!(error = %failed, stream = stream.name(), "could not subscribe");
                    error.set(Some(failed));
                }
            }
        })
    });
    let status = use_memo(move || status.read().for_stream(&key.0, key.1.clone()).cloned());
    UseSyncStream { status, error }
}
