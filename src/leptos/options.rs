//! [`LiveQueryOptions`]: the sync streams a live query's data comes from.

use serde_json::Value;

use super::stream_gate::StreamSpec;
use crate::SubscribeOptions;

/// What a live query depends on besides its SQL, for
/// [`create_live_query_with`](super::create_live_query_with) and its siblings: the sync
/// streams its data comes from (like the `streams` option of PowerSync's React
/// `useQuery`).
///
/// Each stream is subscribed while the owner lives, and the value stays unresolved until
/// every stream has synced. Options compare equal when they list the same streams with
/// the same parameters and subscription options in the same order; a change re-keys the
/// value.
///
/// ```
/// use livesync::leptos::LiveQueryOptions;
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
    pub(super) streams: Vec<StreamSpec>,
}

impl LiveQueryOptions {
    /// No streams: the same as [`create_live_query`](super::create_live_query).
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
}
