//! A sync stream subscribed for the lifetime of the reactive owner.

use leptos_reactive::{Signal, SignalWith, create_effect, create_memo};
use serde_json::Value;

use super::context::use_database;
use super::feed::Feed;
use super::status::use_sync_status;
use crate::SyncStreamStatus;

/// Subscribes to sync stream `name` with `parameters` while the current owner lives
/// (the component, usually): the subscription is taken when the client runs the owner's
/// effects and released by `on_cleanup` when the owner is disposed (its TTL then starts).
/// Returns the stream's entry in the sync status, `None` until it is subscribed.
///
/// Like effects, it does nothing on the server (`ssr`): a server render does not
/// subscribe. Without a provided database it logs an error and stays `None`.
///
/// ```no_run
/// use leptos_reactive::*;
/// use serde_json::json;
///
/// fn list_page(list_id: String) -> impl Fn() -> &'static str {
///     let stream = livesync::leptos::use_sync_stream("list_todos", Some(json!({"list_id": list_id})));
///     move || match stream.get() {
///         Some(s) if s.has_synced() => "list synced",
///         Some(s) if !s.errors.is_empty() => "the service refused this list",
///         _ => "syncing this list…",
///     }
/// }
/// ```
#[track_caller]
pub fn use_sync_stream(
    name: impl Into<String>,
    parameters: Option<Value>,
) -> Signal<Option<SyncStreamStatus>> {
    let name: String = name.into();
    let Some(db) = use_database() else {
        tracing::error!(
            stream = %name,
            "use_sync_stream: no database in context; call livesync::leptos::provide_database first"
        );
        return Signal::derive(|| None);
    };
    let status = use_sync_status();
    let feed = Feed::new();
    let stream = db.sync_stream(name.clone(), parameters.clone());
    create_effect(move |started: Option<()>| {
        if started.is_some() {
            return;
        }
        let stream = stream.clone();
        feed.start(crate::ui_feed::hold_subscription(stream));
    });
    create_memo(move |_| status.with(|s| s.for_stream(&name, parameters.clone()).cloned())).into()
}
