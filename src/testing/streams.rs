//! Sync streams of the test service: named groups of bucket rules that a client
//! subscribes to with parameters (or gets by default), and how one sync request's
//! `streams` field resolves into buckets, bucket reasons and stream descriptions.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::rules::{BucketRule, UserContext};

/// A sync stream the test service offers: its bucket rules run for each subscription
/// (with [`ParameterSource::StreamParameter`] reading the subscription's parameters).
///
/// ```
/// use livesync::testing::{BucketRule, ParameterSource, TestStream};
/// // `db.sync_stream("list_todos", json!({"list_id": "l1"}))` gets the todos of list l1.
/// let list_todos = TestStream::new(
///     "list_todos",
///     BucketRule::per_value("list_todos", "todos", "list_id", ParameterSource::StreamParameter("list_id".into())),
/// );
/// // Every client gets the `lists` stream without subscribing, at priority 1.
/// let lists = TestStream::new("lists", BucketRule::global("lists", ["lists"]))
///     .auto_subscribe()
///     .priority(1);
/// # let _ = (list_todos, lists);
/// ```
///
/// [`ParameterSource::StreamParameter`]: crate::testing::ParameterSource::StreamParameter
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestStream {
    pub(crate) name: String,
    pub(crate) rules: Vec<BucketRule>,
    pub(crate) auto_subscribe: bool,
    pub(crate) priority: Option<u8>,
}

impl TestStream {
    /// A stream named `name` whose data is the bucket of `rule`.
    pub fn new(name: impl Into<String>, rule: BucketRule) -> Self {
        Self {
            name: name.into(),
            rules: vec![rule],
            auto_subscribe: false,
            priority: None,
        }
    }

    /// The common parameterised stream: every row of `table` whose `column` equals the
    /// subscription's parameter `parameter`, in one bucket per value (named after the
    /// stream).
    ///
    /// ```
    /// use livesync::testing::TestStream;
    /// // db.sync_stream("list_todos", json!({"list_id": "l1"})) gets list l1's todos.
    /// let list_todos = TestStream::per_parameter("list_todos", "todos", "list_id", "list_id");
    /// # let _ = list_todos;
    /// ```
    pub fn per_parameter(
        name: impl Into<String>,
        table: impl Into<String>,
        column: impl Into<String>,
        parameter: impl Into<String>,
    ) -> Self {
        let name = name.into();
        let rule = BucketRule::per_value(
            name.clone(),
            table,
            column,
            super::ParameterSource::StreamParameter(parameter.into()),
        );
        Self::new(name, rule)
    }

    /// Adds another bucket rule (a stream with several queries).
    pub fn rule(mut self, rule: BucketRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Every client that asks for default streams is subscribed (`auto_subscribe: true`
    /// in a real sync config).
    pub fn auto_subscribe(mut self) -> Self {
        self.auto_subscribe = true;
        self
    }

    /// The priority of the stream's buckets (0 highest … 3, the default); a
    /// subscription's `override_priority` takes precedence.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority.min(3));
        self
    }
}

/// One entry of the request's `streams.subscriptions`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RequestedStream {
    pub(crate) stream: String,
    pub(crate) parameters: Option<Map<String, Value>>,
    pub(crate) override_priority: Option<u8>,
}

/// The request's `streams` field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamsRequest {
    pub(crate) include_defaults: bool,
    pub(crate) subscriptions: Vec<RequestedStream>,
}

impl StreamsRequest {
    /// Reads `streams` from a request body (absent: defaults only).
    pub(crate) fn from_body(body: &Value) -> Result<Self, String> {
        let streams = match body.get("streams") {
            None | Some(Value::Null) => {
                return Ok(Self {
                    include_defaults: true,
                    subscriptions: Vec::new(),
                });
            }
            Some(Value::Object(streams)) => streams,
            Some(_) => return Err("streams must be an object".into()),
        };
        let include_defaults = match streams.get("include_defaults") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(include)) => *include,
            Some(_) => return Err("streams.include_defaults must be a boolean".into()),
        };
        let mut subscriptions = Vec::new();
        match streams.get("subscriptions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    subscriptions.push(requested_stream(item)?);
                }
            }
            Some(_) => return Err("streams.subscriptions must be an array".into()),
        }
        Ok(Self {
            include_defaults,
            subscriptions,
        })
    }
}

fn requested_stream(item: &Value) -> Result<RequestedStream, String> {
    let stream = item["stream"]
        .as_str()
        .ok_or("streams.subscriptions[].stream must be a string")?
        .to_owned();
    let parameters = match &item["parameters"] {
        Value::Null => None,
        Value::Object(parameters) => Some(parameters.clone()),
        _ => return Err("streams.subscriptions[].parameters must be an object or null".into()),
    };
    let override_priority = match &item["override_priority"] {
        Value::Null => None,
        value => Some(
            value
                .as_u64()
                .filter(|p| *p <= 3)
                .ok_or("streams.subscriptions[].override_priority must be 0..=3 or null")?
                as u8,
        ),
    };
    Ok(RequestedStream {
        stream,
        parameters,
        override_priority,
    })
}

/// A bucket that streams bring, with its priority and why it is included.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamedBucket {
    pub(crate) priority: u8,
    /// `{"default": j}` / `{"sub": i}` entries for the checkpoint line.
    pub(crate) reasons: Vec<Value>,
}

/// What a request's `streams` resolve to for one user.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ResolvedStreams {
    pub(crate) buckets: BTreeMap<String, StreamedBucket>,
    /// The checkpoint line's `streams` descriptions.
    pub(crate) descriptions: Vec<Value>,
}

/// Resolves default streams and subscriptions into buckets (docs/sync-protocol.md §2.1, §6).
pub(crate) fn resolve(
    streams: &[TestStream],
    request: &StreamsRequest,
    user: &UserContext<'_>,
    rule_priority: impl Fn(&str) -> u8,
) -> ResolvedStreams {
    let mut resolved = ResolvedStreams::default();
    // Description index per stream name, with its errors.
    let mut described: Vec<(String, bool, Vec<Value>)> = Vec::new();
    let mut describe = |name: &str, is_default: bool| -> usize {
        if let Some(index) = described.iter().position(|(n, _, _)| n == name) {
            return index;
        }
        described.push((name.to_owned(), is_default, Vec::new()));
        described.len() - 1
    };
    let mut add = |bucket: String, priority: u8, reason: Value| {
        let entry = resolved
            .buckets
            .entry(bucket)
            .or_insert_with(|| StreamedBucket {
                priority,
                reasons: Vec::new(),
            });
        entry.priority = entry.priority.min(priority);
        entry.reasons.push(reason);
    };
    let mut errors: Vec<(usize, Value)> = Vec::new();
    if request.include_defaults {
        for stream in streams.iter().filter(|s| s.auto_subscribe) {
            let index = describe(&stream.name, true);
            for rule in &stream.rules {
                match rule.bucket_for_subscription(user, Some(&Map::new())) {
                    Ok(Some(bucket)) => {
                        let priority = stream
                            .priority
                            .unwrap_or_else(|| rule_priority(rule.name()));
                        add(bucket, priority, json!({"default": index}));
                    }
                    Ok(None) => {}
                    // A default stream that needs a subscription parameter cannot resolve.
                    Err(message) => errors.push((
                        index,
                        json!({"subscription": "default", "message": message}),
                    )),
                }
            }
        }
    }
    for (sub, requested) in request.subscriptions.iter().enumerate() {
        let Some(stream) = streams.iter().find(|s| s.name == requested.stream) else {
            let index = describe(&requested.stream, false);
            errors.push((
                index,
                json!({"subscription": sub, "message": format!("stream {:?} is not defined", requested.stream)}),
            ));
            continue;
        };
        let index = describe(&stream.name, stream.auto_subscribe);
        let parameters = requested.parameters.clone().unwrap_or_default();
        for rule in &stream.rules {
            match rule.bucket_for_subscription(user, Some(&parameters)) {
                Ok(Some(bucket)) => {
                    let priority = requested
                        .override_priority
                        .or(stream.priority)
                        .unwrap_or_else(|| rule_priority(rule.name()));
                    add(bucket, priority, json!({"sub": sub}));
                }
                Ok(None) => {}
                Err(message) => {
                    errors.push((index, json!({"subscription": sub, "message": message})))
                }
            }
        }
    }
    for (index, error) in errors {
        described[index].2.push(error);
    }
    resolved.descriptions = described
        .into_iter()
        .map(|(name, is_default, errors)| {
            json!({"name": name, "is_default": is_default, "errors": errors})
        })
        .collect();
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ParameterSource;

    #[test]
    fn defaults_subscriptions_and_errors_resolve_like_the_service() {
        let streams = [
            TestStream::new("global", BucketRule::global("global", ["settings"])).auto_subscribe(),
            TestStream::new(
                "lists",
                BucketRule::per_value(
                    "lists",
                    "lists",
                    "owner_id",
                    ParameterSource::StreamParameter("owner".into()),
                ),
            )
            .priority(2),
        ];
        let request = StreamsRequest::from_body(
            &json!({"streams": {"include_defaults": true, "subscriptions": [
            {"stream": "lists", "parameters": {"owner": "u1"}, "override_priority": 1},
            {"stream": "lists", "parameters": {}, "override_priority": null},
            {"stream": "nope", "parameters": null, "override_priority": null}]}}),
        )
        .unwrap();
        let empty = Map::new();
        let user = UserContext {
            user_id: "u",
            token_parameters: &empty,
            client_parameters: &empty,
        };
        let resolved = resolve(&streams, &request, &user, |_| 3);
        assert_eq!(
            resolved.buckets["lists[\"u1\"]"],
            StreamedBucket {
                priority: 1,
                reasons: vec![json!({"sub": 0})]
            }
        );
        assert_eq!(
            resolved.buckets["global[]"].reasons,
            [json!({"default": 0})]
        );
        assert_eq!(resolved.buckets.len(), 2);
        assert_eq!(
            resolved.descriptions,
            [
                json!({"name": "global", "is_default": true, "errors": []}),
                json!({"name": "lists", "is_default": false, "errors": [
                    {"subscription": 1, "message": "parameter \"owner\" is missing"}]}),
                json!({"name": "nope", "is_default": false, "errors": [
                    {"subscription": 2, "message": "stream \"nope\" is not defined"}]}),
            ]
        );
        let without_defaults = StreamsRequest::from_body(
            &json!({"streams": {"include_defaults": false, "subscriptions": []}}),
        )
        .unwrap();
        assert!(
            resolve(&streams, &without_defaults, &user, |_| 3)
                .buckets
                .is_empty()
        );
        assert!(
            StreamsRequest::from_body(&json!({"streams": {"subscriptions": [{"stream": 1}]}}))
                .is_err()
        );
    }
}
