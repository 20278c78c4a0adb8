//! Bucket rules of the test service: which rows go into which buckets, and which buckets
//! a connected user receives. Deliberately small and explicit (no sync-rules language).

use serde_json::{Map, Value};

/// Where a per-value bucket finds the value that selects a user's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterSource {
    /// The token's `sub` claim (the user id).
    UserId,
    /// A key of the token's `parameters` claim.
    TokenParameter(String),
    /// A key of the client parameters sent in the sync request (`parameters`).
    ClientParameter(String),
    /// A key of a stream subscription's parameters (only in a [`TestStream`]'s rules;
    /// a subscription without it gets an error line, as the real service reports).
    ///
    /// [`TestStream`]: crate::testing::TestStream
    StreamParameter(String),
}

/// One rule routing rows into buckets.
///
/// ```
/// use livesync::testing::{BucketRule, ParameterSource};
/// // Every row of `lists` and `todos` goes to the bucket `global[]`, which every user gets.
/// let everyone = BucketRule::global("global", ["lists", "todos"]);
/// // A `lists` row with owner_id = "u1" goes to `by_owner["u1"]`, which user `u1` gets.
/// let mine = BucketRule::per_value("by_owner", "lists", "owner_id", ParameterSource::UserId);
/// # let _ = (everyone, mine);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketRule {
    /// All rows of the listed tables go into one bucket, `<name>[]`, that every user
    /// receives.
    Global {
        /// Bucket definition name.
        name: String,
        /// Source tables (the client's `object_type`s).
        tables: Vec<String>,
    },
    /// Rows of `table` go into the bucket `<name>[<value>]` for the JSON value of their
    /// `column`; a user receives the bucket whose value equals the one `source` gives for
    /// them (no bucket when the source has no value).
    PerValue {
        /// Bucket definition name.
        name: String,
        /// Source table.
        table: String,
        /// Column whose value selects the bucket.
        column: String,
        /// Where the user's value comes from.
        source: ParameterSource,
    },
}

impl BucketRule {
    /// A bucket `<name>[]` with every row of `tables`, for every user.
    pub fn global<I, S>(name: impl Into<String>, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Global {
            name: name.into(),
            tables: tables.into_iter().map(Into::into).collect(),
        }
    }

    /// A bucket per value of `table.column`, each delivered to the users whose `source`
    /// value matches.
    pub fn per_value(
        name: impl Into<String>,
        table: impl Into<String>,
        column: impl Into<String>,
        source: ParameterSource,
    ) -> Self {
        Self::PerValue {
            name: name.into(),
            table: table.into(),
            column: column.into(),
            source,
        }
    }

    /// The bucket a row of `table` with contents `row` belongs to under this rule, if any.
    pub(crate) fn bucket_of_row(&self, table: &str, row: &Map<String, Value>) -> Option<String> {
        match self {
            Self::Global { name, tables } => tables
                .iter()
                .any(|t| t == table)
                .then(|| bucket_name(name, None)),
            Self::PerValue {
                name,
                table: rule_table,
                column,
                ..
            } => {
                if rule_table != table {
                    return None;
                }
                match row.get(column) {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(bucket_name(name, Some(value))),
                }
            }
        }
    }

    /// The bucket this rule gives a user, if any.
    pub(crate) fn bucket_for_user(&self, user: &UserContext<'_>) -> Option<String> {
        self.bucket_for_subscription(user, None).ok().flatten()
    }

    /// The bucket this rule gives a user for a stream subscription with `parameters`;
    /// an error message when the rule needs a subscription parameter that is missing.
    pub(crate) fn bucket_for_subscription(
        &self,
        user: &UserContext<'_>,
        parameters: Option<&Map<String, Value>>,
    ) -> Result<Option<String>, String> {
        match self {
            Self::Global { name, .. } => Ok(Some(bucket_name(name, None))),
            Self::PerValue { name, source, .. } => {
                let value = match source {
                    ParameterSource::UserId => Some(Value::String(user.user_id.to_owned())),
                    ParameterSource::TokenParameter(key) => user.token_parameters.get(key).cloned(),
                    ParameterSource::ClientParameter(key) => {
                        user.client_parameters.get(key).cloned()
                    }
                    ParameterSource::StreamParameter(key) => match parameters {
                        None => None,
                        Some(parameters) => match parameters.get(key) {
                            None | Some(Value::Null) => {
                                return Err(format!("parameter {key:?} is missing"));
                            }
                            Some(value) => Some(value.clone()),
                        },
                    },
                };
                Ok(value
                    .filter(|v| !v.is_null())
                    .map(|v| bucket_name(name, Some(&v))))
            }
        }
    }

    /// The definition name (bucket names are `<name>[...]`).
    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Global { name, .. } | Self::PerValue { name, .. } => name,
        }
    }
}

/// What the rules know about a connected user.
pub(crate) struct UserContext<'a> {
    pub(crate) user_id: &'a str,
    pub(crate) token_parameters: &'a Map<String, Value>,
    pub(crate) client_parameters: &'a Map<String, Value>,
}

/// `name[]` or `name[<json value>]`, the shape the PowerSync Service gives bucket names.
fn bucket_name(name: &str, value: Option<&Value>) -> String {
    match value {
        None => format!("{name}[]"),
        Some(value) => format!("{name}[{value}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn rows_and_users_meet_in_the_same_bucket_names() {
        let rule = BucketRule::per_value("by_owner", "lists", "owner_id", ParameterSource::UserId);
        let row = object(json!({"owner_id": "u1", "name": "x"}));
        assert_eq!(
            rule.bucket_of_row("lists", &row).unwrap(),
            r#"by_owner["u1"]"#
        );
        assert_eq!(rule.bucket_of_row("todos", &row), None);
        assert_eq!(
            rule.bucket_of_row("lists", &object(json!({"owner_id": null}))),
            None
        );
        let empty = Map::new();
        let user = UserContext {
            user_id: "u1",
            token_parameters: &empty,
            client_parameters: &empty,
        };
        assert_eq!(rule.bucket_for_user(&user).unwrap(), r#"by_owner["u1"]"#);
    }

    #[test]
    fn parameters_select_buckets_and_missing_ones_select_none() {
        let rule = BucketRule::per_value(
            "team",
            "docs",
            "team_id",
            ParameterSource::ClientParameter("team".into()),
        );
        let params = object(json!({"team": 7}));
        let empty = Map::new();
        let with = UserContext {
            user_id: "u",
            token_parameters: &empty,
            client_parameters: &params,
        };
        let without = UserContext {
            user_id: "u",
            token_parameters: &empty,
            client_parameters: &empty,
        };
        assert_eq!(rule.bucket_for_user(&with).unwrap(), "team[7]");
        assert_eq!(rule.bucket_for_user(&without), None);
        let global = BucketRule::global("global", ["docs"]);
        assert_eq!(global.bucket_for_user(&without).unwrap(), "global[]");
    }
}
