//! A sync stream subscribed for the lifetime of the Leptos 0.8 owner.

use reactive_graph::computed::Memo;
use reactive_graph::effect::Effect;
use reactive_graph::traits::With;
use reactive_graph::wrappers::read::Signal;
use serde_json::Value;

use super::context::use_database;
use super::feed::Feed;
use super::status::use_sync_status;
use crate::SyncStreamStatus;

/// Subscribes to sync stream `name` with `parameters` while the current owner lives
/// (the component, usually): taken when the client runs the owner's effects, released
/// when the owner is cleaned up (its TTL then starts). Returns the stream's entry in the
/// sync status, `None` until it is subscribed.
///
/// Like effects, it does nothing on the server. Without a provided database it logs an
/// error and stays `None`.
///
/// ```no_run
/// use reactive_graph::traits::Get;
/// use serde_json::json;
///
/// // view! { <p>{list_state(list_id)}</p> }
/// fn list_state(list_id: String) -> impl Fn() -> &'static str {
///     let stream = livesync::leptos08::use_sync_stream("list_todos", Some(json!({"list_id": list_id})));
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
            "use_sync_stream: no database in context; call livesync::leptos08::provide_database first"
        );
        return Signal::stored(None);
    };
    let status = use_sync_status();
    let feed = Feed::new();
    let stream = db.sync_stream(name.clone(), parameters.clone());
    Effect::new(move |started: Option<()>| {
        if started.is_some() {
            return;
        }
        let stream = stream.clone();
        feed.start(crate::ui_feed::hold_subscription(stream));
    });
    Memo::new(move |_| status.with(|s| s.for_stream(&name, parameters.clone()).cloned())).into()
}
