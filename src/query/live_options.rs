//! [`LiveQueryOptions`]: the sync streams a live query's data comes from, shared by the
//! Dioxus and the Leptos adapters (`livesync::dioxus::LiveQueryOptions` and
//! `livesync::leptos::LiveQueryOptions` are this type).

use serde_json::Value;

use crate::SubscribeOptions;

/// What a live query depends on besides its SQL: the sync streams its data comes from
/// (like the `streams` option of PowerSync's React `useQuery`), for the Dioxus
/// `use_live_query_with` and the Leptos `create_live_query_with` and their siblings.
///
/// Each stream is subscribed while the component (or reactive owner) lives, and the query
/// reports loading — the value stays unresolved — until every stream has synced. Options
/// compare equal when they list the same streams with the same parameters and
/// subscription options in the same order; a change re-keys the query.
///
/// ```
/// use livesync::query::LiveQueryOptions;
/// use livesync::SubscribeOptions;
/// use serde_json::json;
/// use std::time::Duration;
///
/// let options = LiveQueryOptions::new()
///     .stream("lists", None)
///     .stream_with(
///         "list_todos",
///         json!({"list_id": "l1"}),
///         SubscribeOptions::default().ttl(Duration::from_secs(600)),
///     );
/// assert_ne!(options, LiveQueryOptions::default());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct LiveQueryOptions {
    streams: Vec<StreamSpec>,
}

impl LiveQueryOptions {
    /// No streams: the same as a plain live query.
    pub fn new() -> Self {
        Self::default()
    }

    /// The query's data comes from sync stream `name` with `parameters` (a JSON object,
    /// or `None`), subscribed with the default TTL and the stream's own priority.
    pub fn stream(self, name: impl Into<String>, parameters: impl Into<Option<Value>>) -> Self {
        self.stream_with(name, parameters, SubscribeOptions::default())
    }

    /// Like [`stream`](Self::stream), subscribed with `options` (TTL, priority).
    pub fn stream_with(
        mut self,
        name: impl Into<String>,
        parameters: impl Into<Option<Value>>,
        options: SubscribeOptions,
    ) -> Self {
        self.streams
            .push(StreamSpec::new(name.into(), parameters.into(), options));
        self
    }

    /// The streams listed, in order.
    #[cfg_attr(
        not(any(feature = "dioxus", feature = "leptos", feature = "leptos08")),
        allow(dead_code, reason = "read by the UI adapters only")
    )]
    pub(crate) fn streams(&self) -> &[StreamSpec] {
        &self.streams
    }
}

/// One sync stream a query depends on: name, parameters, subscription options.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    not(any(feature = "dioxus", feature = "leptos", feature = "leptos08")),
    allow(dead_code, reason = "read by the UI adapters only")
)]
pub(crate) struct StreamSpec {
    pub(crate) name: String,
    pub(crate) parameters: Option<Value>,
    pub(crate) options: SubscribeOptions,
}

impl StreamSpec {
    fn new(name: String, parameters: Option<Value>, options: SubscribeOptions) -> Self {
        Self {
            name,
            // `null` means "no parameters", as in `Database::sync_stream`.
            parameters: parameters.filter(|p| !p.is_null()),
            options,
        }
    }
}
