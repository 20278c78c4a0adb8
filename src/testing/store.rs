//! The test service's data: its own copy of the backend tables, one op log per bucket,
//! staged changes waiting for `commit`, and write checkpoints.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::bson::DocumentWriter;
use super::checksum::{put_checksum, remove_checksum, subkey};
use super::rules::{BucketRule, UserContext};

/// The four op types of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Put,
    Remove,
    Move,
    Clear,
}

impl OpKind {
    fn wire_name(self) -> &'static str {
        match self {
            Self::Put => "PUT",
            Self::Remove => "REMOVE",
            Self::Move => "MOVE",
            Self::Clear => "CLEAR",
        }
    }
}

/// The row an op is about: table, id and the subkey of its source row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RowKey {
    pub(crate) table: String,
    pub(crate) id: String,
    pub(crate) subkey: String,
}

/// One entry of a bucket's op log.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub(crate) op_id: i64,
    pub(crate) kind: OpKind,
    pub(crate) row: Option<RowKey>,
    /// JSON object text (without `id`), PUT only.
    pub(crate) data: Option<String>,
    pub(crate) checksum: u32,
}

impl Op {
    /// Appends the op as an element of a `data` line to `out`. `raw_data` sends `data`
    /// as JSON text (what clients ask for) rather than as a nested object. Written
    /// directly as text: streaming a large bucket should cost the service little CPU,
    /// since it shares the machine with the client under test.
    pub(crate) fn write_wire(&self, raw_data: bool, out: &mut String) {
        let quoted = |text: &str| serde_json::to_string(text).unwrap_or_else(|_| "null".into());
        out.push_str("{\"op_id\":\"");
        out.push_str(&self.op_id.to_string());
        out.push_str("\",\"op\":\"");
        out.push_str(self.kind.wire_name());
        out.push('"');
        if let Some(row) = &self.row {
            out.push_str(",\"object_type\":");
            out.push_str(&quoted(&row.table));
            out.push_str(",\"object_id\":");
            out.push_str(&quoted(&row.id));
            out.push_str(",\"subkey\":");
            out.push_str(&quoted(&row.subkey));
        }
        out.push_str(",\"checksum\":");
        out.push_str(&self.checksum.to_string());
        if matches!(self.kind, OpKind::Put | OpKind::Remove) {
            out.push_str(",\"data\":");
            match (&self.data, raw_data) {
                (None, _) => out.push_str("null"),
                (Some(text), true) => out.push_str(&quoted(text)),
                (Some(text), false) => out.push_str(text),
            }
        }
        out.push('}');
    }

    /// [`write_wire`](Self::write_wire) for a BSON stream: the op as the next document
    /// of the `data` array open in `out`, under the array index `key`. (A checksum above
    /// `i32::MAX` goes out as an int64, as a JavaScript serializer writes it.)
    pub(crate) fn write_bson(&self, raw_data: bool, key: &str, out: &mut DocumentWriter) {
        out.begin_document(key);
        out.string("op_id", &self.op_id.to_string());
        out.string("op", self.kind.wire_name());
        if let Some(row) = &self.row {
            out.string("object_type", &row.table);
            out.string("object_id", &row.id);
            out.string("subkey", &row.subkey);
        }
        out.integer("checksum", i64::from(self.checksum));
        if matches!(self.kind, OpKind::Put | OpKind::Remove) {
            match (&self.data, raw_data) {
                (None, _) => out.null("data"),
                (Some(text), true) => out.string("data", text),
                (Some(text), false) => {
                    let object = serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
                    out.value("data", &object);
                }
            }
        }
        out.end();
    }
}

/// A bucket's op log with its running checksum (wrapping sum of every op checksum,
/// where a CLEAR stands for everything before it).
#[derive(Debug, Default)]
pub(crate) struct BucketLog {
    pub(crate) ops: Vec<Op>,
    pub(crate) checksum: u32,
}

/// What a checkpoint line says about one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BucketSummary {
    pub(crate) checksum: u32,
    pub(crate) count: usize,
}

/// A user's view of the current checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckpointView {
    pub(crate) last_op_id: i64,
    pub(crate) write_checkpoint: Option<i64>,
    pub(crate) buckets: BTreeMap<String, BucketSummary>,
}

/// A change waiting for [`Store::commit`].
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// PUT straight into a named bucket (test control).
    Put {
        bucket: String,
        table: String,
        id: String,
        data: Map<String, Value>,
    },
    /// REMOVE straight from a named bucket (test control).
    Remove {
        bucket: String,
        table: String,
        id: String,
    },
    /// Write a backend row; the rules route it into buckets.
    Upsert {
        table: String,
        id: String,
        row: Map<String, Value>,
    },
    /// Delete a backend row from every bucket holding it.
    Delete { table: String, id: String },
    /// Replace a bucket's log with one CLEAR op.
    ClearBucket { bucket: String },
    /// Drop a bucket entirely (clients are told it was removed).
    DeleteBucket { bucket: String },
}

/// All server-side state. Guarded by one mutex in the service.
#[derive(Debug, Default)]
pub(crate) struct Store {
    /// The last op id handed out, which is also the current checkpoint id.
    head: i64,
    rules: Vec<BucketRule>,
    /// Rules of sync streams: they route rows, but only subscriptions deliver them.
    stream_rules: Vec<BucketRule>,
    tables: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    /// Which rule buckets each backend row is in, to send REMOVEs when it leaves one.
    row_buckets: HashMap<(String, String), BTreeSet<String>>,
    buckets: BTreeMap<String, BucketLog>,
    /// Buckets written through `put`: every user receives them.
    direct_buckets: BTreeSet<String>,
    staged: Vec<Change>,
    /// Latest write checkpoint per (user id, client id).
    write_checkpoints: HashMap<(String, String), i64>,
    last_write_checkpoint: i64,
    rejected_tables: HashSet<String>,
}

impl Store {
    pub(crate) fn new(rules: Vec<BucketRule>) -> Self {
        Self {
            rules,
            ..Self::default()
        }
    }

    /// A store whose rows are also routed into the buckets of `stream_rules`.
    pub(crate) fn with_stream_rules(mut self, stream_rules: Vec<BucketRule>) -> Self {
        self.stream_rules = stream_rules;
        self
    }

    pub(crate) fn stage(&mut self, change: Change) {
        self.staged.push(change);
    }

    /// Turns every staged change into ops, in order; returns the new checkpoint id.
    pub(crate) fn commit(&mut self) -> i64 {
        for change in std::mem::take(&mut self.staged) {
            self.apply(change);
        }
        self.head
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::Put {
                bucket,
                table,
                id,
                data,
            } => {
                self.direct_buckets.insert(bucket.clone());
                self.append_put(&bucket, &table, &id, &data);
            }
            Change::Remove { bucket, table, id } => self.append_remove(&bucket, &table, &id),
            Change::Upsert { table, id, mut row } => {
                row.remove("id");
                // Nulls are left out of the row JSON; a client reads a missing key as NULL.
                row.retain(|_, value| !value.is_null());
                let now: BTreeSet<String> = self
                    .rules
                    .iter()
                    .chain(&self.stream_rules)
                    .filter_map(|rule| rule.bucket_of_row(&table, &row))
                    .collect();
                let key = (table.clone(), id.clone());
                let before = self.row_buckets.remove(&key).unwrap_or_default();
                for bucket in before.difference(&now) {
                    self.append_remove(bucket, &table, &id);
                }
                for bucket in &now {
                    self.append_put(bucket, &table, &id, &row);
                }
                if !now.is_empty() {
                    self.row_buckets.insert(key, now);
                }
                self.tables.entry(table).or_default().insert(id, row);
            }
            Change::Delete { table, id } => {
                if let Some(rows) = self.tables.get_mut(&table) {
                    rows.remove(&id);
                }
                let before = self
                    .row_buckets
                    .remove(&(table.clone(), id.clone()))
                    .unwrap_or_default();
                for bucket in &before {
                    self.append_remove(bucket, &table, &id);
                }
            }
            Change::ClearBucket { bucket } => {
                self.head += 1;
                let log = self.buckets.entry(bucket.clone()).or_default();
                // The CLEAR carries the sum of everything it replaces: the total is unchanged.
                log.ops = vec![Op {
                    op_id: self.head,
                    kind: OpKind::Clear,
                    row: None,
                    data: None,
                    checksum: log.checksum,
                }];
                for buckets in self.row_buckets.values_mut() {
                    buckets.remove(&bucket);
                }
            }
            Change::DeleteBucket { bucket } => {
                self.buckets.remove(&bucket);
                self.direct_buckets.remove(&bucket);
                for buckets in self.row_buckets.values_mut() {
                    buckets.remove(&bucket);
                }
            }
        }
    }

    fn append_put(&mut self, bucket: &str, table: &str, id: &str, row: &Map<String, Value>) {
        let data = Value::Object(row.clone()).to_string();
        let checksum = put_checksum(table, id, &data);
        let row = RowKey {
            table: table.to_owned(),
            id: id.to_owned(),
            subkey: subkey(table, id),
        };
        self.append(bucket, OpKind::Put, row, Some(data), checksum);
    }

    fn append_remove(&mut self, bucket: &str, table: &str, id: &str) {
        let subkey = subkey(table, id);
        let checksum = remove_checksum(&subkey);
        let row = RowKey {
            table: table.to_owned(),
            id: id.to_owned(),
            subkey,
        };
        self.append(bucket, OpKind::Remove, row, None, checksum);
    }

    fn append(
        &mut self,
        bucket: &str,
        kind: OpKind,
        row: RowKey,
        data: Option<String>,
        checksum: u32,
    ) {
        self.head += 1;
        let log = self.buckets.entry(bucket.to_owned()).or_default();
        log.checksum = log.checksum.wrapping_add(checksum);
        log.ops.push(Op {
            op_id: self.head,
            kind,
            row: Some(row),
            data,
            checksum,
        });
    }

    /// Server-side compaction: every op superseded by a later op on the same row becomes
    /// a MOVE with the same id and checksum, so checksums stay valid.
    pub(crate) fn compact(&mut self, bucket: &str) {
        let Some(log) = self.buckets.get_mut(bucket) else {
            return;
        };
        let mut seen = HashSet::new();
        for op in log.ops.iter_mut().rev() {
            let Some(row) = &op.row else { continue };
            if !seen.insert(row.clone()) {
                op.kind = OpKind::Move;
                op.row = None;
                op.data = None;
            }
        }
    }

    /// The buckets `user` receives and what the current checkpoint says about them.
    /// The checkpoint a user sees: the buckets of the rules for them, the `put`
    /// buckets, and `streamed` (buckets of their stream subscriptions).
    pub(crate) fn checkpoint_for(
        &self,
        user: &UserContext<'_>,
        client_id: &str,
        streamed: &BTreeSet<String>,
    ) -> CheckpointView {
        let mut names: BTreeSet<String> = self
            .rules
            .iter()
            .filter_map(|rule| rule.bucket_for_user(user))
            .collect();
        names.extend(self.direct_buckets.iter().cloned());
        names.extend(streamed.iter().cloned());
        let buckets = names
            .into_iter()
            .map(|name| {
                let summary = self.buckets.get(&name).map_or(
                    BucketSummary {
                        checksum: 0,
                        count: 0,
                    },
                    |log| BucketSummary {
                        checksum: log.checksum,
                        count: log.ops.len(),
                    },
                );
                (name, summary)
            })
            .collect();
        CheckpointView {
            last_op_id: self.head,
            write_checkpoint: self
                .write_checkpoints
                .get(&(user.user_id.to_owned(), client_id.to_owned()))
                .copied(),
            buckets,
        }
    }

    /// Ops of `bucket` after `after`, in order.
    /// Up to `limit` ops of `bucket` with `after < op_id <= up_to`, and whether more
    /// follow in that range.
    pub(crate) fn ops_between(
        &self,
        bucket: &str,
        after: i64,
        up_to: i64,
        limit: usize,
    ) -> (&[Op], bool) {
        self.buckets.get(bucket).map_or((&[], false), |log| {
            let start = log.ops.partition_point(|op| op.op_id <= after);
            let end = log.ops.partition_point(|op| op.op_id <= up_to).max(start);
            let stop = end.min(start.saturating_add(limit));
            (&log.ops[start..stop], stop < end)
        })
    }

    /// A new write checkpoint for (user, client). Uploads are applied as they arrive, so
    /// every upload before it is already in the current checkpoint.
    pub(crate) fn create_write_checkpoint(&mut self, user_id: &str, client_id: &str) -> i64 {
        let key = (user_id.to_owned(), client_id.to_owned());
        // Above any id the client requested itself: a client's write checkpoints only grow.
        let held = self.write_checkpoints.get(&key).copied().unwrap_or(0);
        self.last_write_checkpoint = self.last_write_checkpoint.max(held) + 1;
        self.write_checkpoints
            .insert(key, self.last_write_checkpoint);
        self.last_write_checkpoint
    }

    /// A client-chosen checkpoint request id for (user, client): the service keeps the
    /// larger of it and the one it holds, and answers with what it holds afterwards.
    pub(crate) fn request_checkpoint(&mut self, user_id: &str, client_id: &str, id: i64) -> i64 {
        let held = self
            .write_checkpoints
            .entry((user_id.to_owned(), client_id.to_owned()))
            .or_insert(0);
        *held = (*held).max(id);
        *held
    }

    pub(crate) fn reject_uploads_to(&mut self, table: &str) {
        self.rejected_tables.insert(table.to_owned());
    }

    pub(crate) fn is_rejected(&self, table: &str) -> bool {
        self.rejected_tables.contains(table)
    }

    /// A backend row (PATCH merges into it), if it exists.
    pub(crate) fn row(&self, table: &str, id: &str) -> Option<&Map<String, Value>> {
        self.tables.get(table)?.get(id)
    }

    /// Every row of a backend table, `id` included, sorted by id.
    pub(crate) fn rows(&self, table: &str) -> Vec<Value> {
        self.tables.get(table).map_or_else(Vec::new, |rows| {
            rows.iter()
                .map(|(id, row)| {
                    let mut row = row.clone();
                    row.insert("id".into(), json!(id));
                    Value::Object(row)
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Store {
        fn ops_after(&self, bucket: &str, after: i64) -> Vec<Op> {
            self.ops_between(bucket, after, i64::MAX, usize::MAX)
                .0
                .to_vec()
        }
    }
    use crate::testing::rules::ParameterSource;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn user<'a>(id: &'a str, empty: &'a Map<String, Value>) -> UserContext<'a> {
        UserContext {
            user_id: id,
            token_parameters: empty,
            client_parameters: empty,
        }
    }

    #[test]
    fn a_row_moving_between_buckets_is_removed_from_the_old_one() {
        let rule = BucketRule::per_value("by_owner", "lists", "owner", ParameterSource::UserId);
        let mut store = Store::new(vec![rule]);
        store.stage(Change::Upsert {
            table: "lists".into(),
            id: "l1".into(),
            row: object(json!({"owner": "a", "name": "x"})),
        });
        store.commit();
        store.stage(Change::Upsert {
            table: "lists".into(),
            id: "l1".into(),
            row: object(json!({"owner": "b", "name": "x"})),
        });
        assert_eq!(store.commit(), 3);
        let a = store.ops_after(r#"by_owner["a"]"#, 0);
        assert_eq!(
            a.iter().map(|op| op.kind).collect::<Vec<_>>(),
            [OpKind::Put, OpKind::Remove]
        );
        let empty = Map::new();
        let view = store.checkpoint_for(&user("b", &empty), "c", &BTreeSet::new());
        assert_eq!(view.buckets[r#"by_owner["b"]"#].count, 1);
        assert!(!view.buckets.contains_key(r#"by_owner["a"]"#));
    }

    #[test]
    fn clear_and_compaction_keep_the_bucket_checksum() {
        let mut store = Store::new(Vec::new());
        for data in ["1", "2", "3"] {
            store.stage(Change::Put {
                bucket: "b".into(),
                table: "t".into(),
                id: "r".into(),
                data: object(json!({ "v": data })),
            });
        }
        store.commit();
        let before = store.buckets["b"].checksum;
        let sum = store
            .ops_after("b", 0)
            .iter()
            .fold(0u32, |acc, op| acc.wrapping_add(op.checksum));
        assert_eq!(before, sum);
        store.compact("b");
        let kinds: Vec<_> = store.ops_after("b", 0).iter().map(|op| op.kind).collect();
        assert_eq!(kinds, [OpKind::Move, OpKind::Move, OpKind::Put]);
        store.stage(Change::ClearBucket { bucket: "b".into() });
        store.commit();
        let ops = store.ops_after("b", 0);
        assert_eq!(ops.len(), 1);
        assert_eq!((ops[0].kind, ops[0].checksum), (OpKind::Clear, before));
        assert_eq!(
            store.ops_after("b", 3).len(),
            1,
            "resuming clients get the CLEAR"
        );
    }
}
