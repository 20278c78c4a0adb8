//! The sync lines a PowerSync Service sends, parsed and validated (docs/sync-protocol.md §2–3).
//!
//! A line is a JSON object with exactly one key naming its type. Unknown types are kept
//! as [`SyncLine::Unknown`] (forward compatibility); anything malformed is an
//! [`Error::Protocol`] naming the problem.

use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

use crate::{Error, Result};

/// An op id (decimal string on the wire, at most `i64::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct OpId(pub(crate) i64);

impl<'de> Deserialize<'de> for OpId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OpIdVisitor;
        impl de::Visitor<'_> for OpIdVisitor {
            type Value = OpId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an op id as a decimal string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<OpId, E> {
                text.parse::<i64>()
                    .ok()
                    .filter(|id| *id >= 0)
                    .map(OpId)
                    .ok_or_else(|| E::custom(format!("op id {text:?} is not a decimal u63")))
            }
        }
        deserializer.deserialize_str(OpIdVisitor)
    }
}

/// A 32-bit wrapping checksum. Accepts unsigned, signed (two's complement) and
/// integral floats, as services send all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Checksum(pub(crate) u32);

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChecksumVisitor;
        impl de::Visitor<'_> for ChecksumVisitor {
            type Value = Checksum;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a 32-bit checksum (unsigned, signed or an integral float)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Checksum, E> {
                checksum_or_error(Value::from(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Checksum, E> {
                checksum_or_error(Value::from(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Checksum, E> {
                checksum_or_error(Value::from(v))
            }
        }
        fn checksum_or_error<E: de::Error>(value: Value) -> Result<Checksum, E> {
            parse_checksum(&value)
                .map(Checksum)
                .ok_or_else(|| E::custom(format!("invalid checksum {value}")))
        }
        deserializer.deserialize_any(ChecksumVisitor)
    }
}

fn parse_checksum(value: &Value) -> Option<u32> {
    let number = value.as_number()?;
    if let Some(unsigned) = number.as_u64() {
        return u32::try_from(unsigned).ok();
    }
    if let Some(signed) = number.as_i64() {
        return i32::try_from(signed).ok().map(|s| s as u32);
    }
    let float = number.as_f64()?;
    if float.fract() != 0.0 || !float.is_finite() {
        return None;
    }
    if (0.0..=u32::MAX as f64).contains(&float) {
        Some(float as u32)
    } else if (i32::MIN as f64..0.0).contains(&float) {
        Some(float as i32 as u32)
    } else {
        None
    }
}

/// One bucket of a checkpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct BucketChecksum {
    pub(crate) bucket: String,
    pub(crate) checksum: Checksum,
    #[serde(default = "default_priority")]
    pub(crate) priority: u8,
    #[serde(default)]
    pub(crate) count: Option<u64>,
    /// Why the bucket is included (sync streams, docs/sync-protocol.md §6.4); empty for sync rules.
    #[serde(default)]
    pub(crate) subscriptions: Vec<BucketReason>,
}

/// One reason a bucket is in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BucketReason {
    /// Index into the checkpoint line's `streams` (a default stream).
    Default(usize),
    /// Index into the request's `streams.subscriptions`.
    Sub(usize),
    /// A reason this client does not know (a newer service); ignored.
    Unknown,
}

impl<'de> Deserialize<'de> for BucketReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let index = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|i| usize::try_from(i).ok())
        };
        Ok(match (index("default"), index("sub")) {
            (Some(i), _) => Self::Default(i),
            (None, Some(i)) => Self::Sub(i),
            (None, None) => Self::Unknown,
        })
    }
}

/// A stream the checkpoint covers (`checkpoint.streams[]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct StreamDescription {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) is_default: bool,
    #[serde(default)]
    pub(crate) errors: Vec<StreamErrorLine>,
}

/// An error the service reports for a subscription.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct StreamErrorLine {
    pub(crate) subscription: ErrorSubject,
    pub(crate) message: String,
}

/// Which subscription a stream error is about: `"default"` or a request index
/// (anything else is kept as `Other` and only logged).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub(crate) enum ErrorSubject {
    Request(usize),
    Default(DefaultMarker),
    Other(de::IgnoredAny),
}

/// The literal `"default"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DefaultMarker {
    Default,
}

fn default_priority() -> u8 {
    3
}

/// `checkpoint`: a new target, replacing any previous one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) last_op_id: OpId,
    #[serde(default)]
    pub(crate) write_checkpoint: Option<OpId>,
    pub(crate) buckets: Vec<BucketChecksum>,
    #[serde(default)]
    pub(crate) streams: Vec<StreamDescription>,
}

/// `checkpoint_diff`: changes to the tracked checkpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct CheckpointDiff {
    pub(crate) last_op_id: OpId,
    #[serde(default)]
    pub(crate) write_checkpoint: Option<OpId>,
    pub(crate) updated_buckets: Vec<BucketChecksum>,
    pub(crate) removed_buckets: Vec<String>,
}

/// The four op types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum OpType {
    Put,
    Remove,
    Move,
    Clear,
}

/// One entry of a `data` line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct OplogEntry {
    pub(crate) op_id: OpId,
    pub(crate) op: OpType,
    pub(crate) checksum: Checksum,
    #[serde(default)]
    pub(crate) object_type: Option<String>,
    #[serde(default)]
    pub(crate) object_id: Option<String>,
    #[serde(default)]
    pub(crate) subkey: Option<String>,
    /// JSON object text (`raw_data: true`); an object is re-serialised.
    #[serde(default, deserialize_with = "data_as_text")]
    pub(crate) data: Option<String>,
}

fn data_as_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct DataVisitor;
    impl<'de> de::Visitor<'de> for DataVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("row data as JSON text, an object, or null")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(text.to_owned()))
        }
        fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
            Ok(Some(text))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            // `raw_data: false` (or a service ignoring it): keep the object as JSON text.
            let object = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
            Ok(Some(object.to_string()))
        }
    }
    deserializer.deserialize_any(DataVisitor)
}

/// `data`: ops for one bucket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct DataLine {
    pub(crate) bucket: String,
    pub(crate) data: Vec<OplogEntry>,
}

impl DataLine {
    /// Refuses a line whose PUT carries row data that is not JSON object text
    /// (docs/sync-protocol.md §4.5): stored, it would make every read of its table fail
    /// (the views extract columns with SQLite's JSON functions). The error names the
    /// bucket and op, never the data.
    fn check_row_data(&self) -> Result<()> {
        for op in &self.data {
            if op.op != OpType::Put {
                continue;
            }
            let Some(data) = &op.data else { continue };
            if let Err(problem) = check_object_text(data) {
                return Err(Error::Protocol(format!(
                    "bucket {:?}, op {}: the row data of a PUT to {:?} {problem}; the line is \
                     refused so that the table stays readable",
                    self.bucket,
                    op.op_id.0,
                    op.object_type.as_deref().unwrap_or("?"),
                )));
            }
        }
        Ok(())
    }
}

/// `Ok` when `text` is one JSON object that SQLite's JSON functions read back as valid
/// UTF-8; else what is wrong with it.
fn check_object_text(text: &str) -> std::result::Result<(), String> {
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return Err("is not a JSON object".into());
    }
    // A `\u` escape may be a lone surrogate, which only decoding the strings notices
    // (SQLite would turn it into invalid UTF-8); text without one needs only the
    // allocation-free structural check.
    let checked = if text.contains("\\u") {
        serde_json::from_str::<Value>(text).map(drop)
    } else {
        serde_json::from_str::<de::IgnoredAny>(text).map(drop)
    };
    checked.map_err(|e| format!("is not valid JSON ({e})"))
}

/// Finding the op at fault in a `data` line that failed to parse, for the error message
/// (the error path only: it parses the line twice more).
mod bad_op {
    use std::cell::Cell;

    use serde::Deserialize;
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

    use super::{OpId, OplogEntry};

    /// The bucket of the line and, when the fault is inside an op, that op's id.
    pub(super) fn locate(line: &[u8]) -> Option<(String, Option<OpId>)> {
        // Lenient: values are skipped unread (a lone surrogate escape passes), so the op
        // ids come through even when an op's data cannot be decoded.
        #[derive(Deserialize)]
        struct Line {
            data: Data,
        }
        #[derive(Deserialize)]
        struct Data {
            bucket: String,
            #[serde(default)]
            data: Vec<Op>,
        }
        #[derive(Deserialize)]
        struct Op {
            op_id: OpId,
        }
        let lenient: Line = serde_json::from_slice(line).ok()?;
        // Strict, counting the ops that parse: the first one that does not is at fault.
        let parsed = Cell::new(0);
        let mut deserializer = serde_json::Deserializer::from_slice(line);
        let faulty = Counted::Line(&parsed)
            .deserialize(&mut deserializer)
            .is_err();
        let op_id = lenient
            .data
            .data
            .get(parsed.get())
            .filter(|_| faulty)
            .map(|op| op.op_id);
        Some((lenient.data.bucket, op_id))
    }

    /// Walks `{"data": {"data": [op, …]}}`, counting the ops that parse.
    #[derive(Clone, Copy)]
    enum Counted<'c> {
        Line(&'c Cell<usize>),
        Data(&'c Cell<usize>),
        Ops(&'c Cell<usize>),
    }

    impl<'de> DeserializeSeed<'de> for Counted<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            match self {
                Self::Ops(_) => deserializer.deserialize_seq(self),
                _ => deserializer.deserialize_map(self),
            }
        }
    }

    impl<'de> Visitor<'de> for Counted<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a data line")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let inner = match self {
                Self::Line(count) => Self::Data(count),
                Self::Data(count) | Self::Ops(count) => Self::Ops(count),
            };
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "data" {
                    map.next_value_seed(inner)?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            if let Self::Ops(count) = self {
                while seq.next_element::<OplogEntry>()?.is_some() {
                    count.set(count.get() + 1);
                }
            }
            Ok(())
        }
    }
}

/// A parsed sync line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SyncLine {
    Checkpoint(Checkpoint),
    CheckpointDiff(CheckpointDiff),
    Data(DataLine),
    CheckpointComplete {
        last_op_id: OpId,
    },
    PartialCheckpointComplete {
        last_op_id: OpId,
        priority: u8,
    },
    TokenExpiresIn(i64),
    /// A line type this client does not know; ignored.
    Unknown(String),
}

#[derive(Deserialize)]
struct Complete {
    last_op_id: OpId,
}

#[derive(Deserialize)]
struct PartialComplete {
    last_op_id: OpId,
    priority: u8,
}

impl SyncLine {
    /// Parses one NDJSON line, straight into the line's types (no intermediate
    /// `serde_json::Value`: data lines are the bulk of a sync).
    pub(crate) fn parse(line: &[u8]) -> Result<Self> {
        let mut deserializer = serde_json::Deserializer::from_slice(line);
        let parsed = LineVisitor::parse(&mut deserializer).and_then(|line| {
            deserializer.end()?;
            Ok(line)
        });
        let parsed = parsed.map_err(|e| {
            let message = e.to_string();
            if message.starts_with(NOT_AN_OBJECT) || message.starts_with(ONE_KEY) {
                Error::Protocol(message)
            } else if let Some(kind) = line_kind(line) {
                let at = match bad_op::locate(line) {
                    Some((bucket, Some(op_id))) => format!(" (bucket {bucket:?}, op {})", op_id.0),
                    Some((bucket, None)) => format!(" (bucket {bucket:?})"),
                    None => String::new(),
                };
                Error::Protocol(format!("malformed {kind} line{at}: {message}"))
            } else {
                Error::Protocol(format!("sync line is not JSON: {message}"))
            }
        })?;
        if let SyncLine::Data(data) = &parsed {
            data.check_row_data()?;
        }
        Ok(parsed)
    }
}

impl SyncLine {
    /// Parses one BSON document of a BSON sync stream (docs/sync-protocol.md §1.3) into
    /// the same types as [`parse`](Self::parse): the document has the JSON line's shape.
    pub(crate) fn parse_bson(document: &[u8]) -> Result<Self> {
        use serde::Deserializer as _;
        let parsed = super::bson_reader::document(document)
            .and_then(|value| value.deserialize_any(LineVisitor));
        let parsed = parsed.map_err(|e| {
            let message = e.to_string();
            if message.starts_with(NOT_AN_OBJECT) || message.starts_with(ONE_KEY) {
                Error::Protocol(message)
            } else if let Some(kind) = super::bson_reader::first_key(document) {
                Error::Protocol(format!("malformed {kind} line (BSON): {message}"))
            } else {
                Error::Protocol(format!("sync line is not valid BSON: {message}"))
            }
        })?;
        if let SyncLine::Data(data) = &parsed {
            data.check_row_data()?;
        }
        Ok(parsed)
    }
}

const NOT_AN_OBJECT: &str = "sync line is not a JSON object";
const ONE_KEY: &str = "sync line must have exactly one key (its type)";

/// The key of a line that failed to parse, for the error message.
fn line_kind(line: &[u8]) -> Option<String> {
    // Values skipped unread: a line whose fault is inside a value still has a kind.
    let keys: std::collections::BTreeMap<String, de::IgnoredAny> =
        serde_json::from_slice(line).ok()?;
    keys.into_keys().next()
}

struct LineVisitor;

impl LineVisitor {
    fn parse(
        deserializer: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
    ) -> serde_json::Result<SyncLine> {
        deserializer.deserialize_any(LineVisitor)
    }
}

impl<'de> de::Visitor<'de> for LineVisitor {
    type Value = SyncLine;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(NOT_AN_OBJECT)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<SyncLine, A::Error> {
        let Some(kind) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
            return Err(de::Error::custom(ONE_KEY));
        };
        let line = match kind.as_ref() {
            "checkpoint" => SyncLine::Checkpoint(map.next_value()?),
            "checkpoint_diff" => SyncLine::CheckpointDiff(map.next_value()?),
            "data" => SyncLine::Data(map.next_value()?),
            "checkpoint_complete" => {
                let complete: Complete = map.next_value()?;
                SyncLine::CheckpointComplete {
                    last_op_id: complete.last_op_id,
                }
            }
            "partial_checkpoint_complete" => {
                let partial: PartialComplete = map.next_value()?;
                SyncLine::PartialCheckpointComplete {
                    last_op_id: partial.last_op_id,
                    priority: partial.priority,
                }
            }
            "token_expires_in" => SyncLine::TokenExpiresIn(map.next_value()?),
            other => {
                map.next_value::<de::IgnoredAny>()?;
                SyncLine::Unknown(other.to_owned())
            }
        };
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(ONE_KEY));
        }
        Ok(line)
    }

    // Every other JSON value is not an object.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<SyncLine, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SyncLine, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<SyncLine, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<SyncLine, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<SyncLine, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
    fn visit_unit<E: de::Error>(self) -> Result<SyncLine, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<SyncLine, A::Error> {
        Err(de::Error::custom(NOT_AN_OBJECT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_accept_unsigned_signed_and_integral_floats() {
        let parse = |text: &str| parse_checksum(&serde_json::from_str(text).unwrap());
        assert_eq!(parse("4294967295"), Some(4_294_967_295));
        assert_eq!(parse("-1"), Some(4_294_967_295));
        assert_eq!(parse("-721471609"), Some(3_573_495_687));
        assert_eq!(parse("7.0"), Some(7));
        assert_eq!(parse("-1.0"), Some(u32::MAX));
        assert_eq!(parse("4294967296"), None);
        assert_eq!(parse("-2147483649"), None);
        assert_eq!(parse("1.5"), None);
        assert_eq!(parse("\"1\""), None);
    }

    #[test]
    fn every_line_type_parses() {
        let line = br#"{"checkpoint":{"last_op_id":"2","write_checkpoint":"7","buckets":[{"bucket":"b","checksum":-1,"count":1}],"streams":[]}}"#;
        let SyncLine::Checkpoint(checkpoint) = SyncLine::parse(line).unwrap() else {
            panic!()
        };
        assert_eq!(checkpoint.last_op_id, OpId(2));
        assert_eq!(checkpoint.write_checkpoint, Some(OpId(7)));
        assert_eq!(checkpoint.buckets[0].checksum, Checksum(u32::MAX));
        assert_eq!(checkpoint.buckets[0].priority, 3);

        let line = br#"{"data":{"bucket":"b","data":[{"op_id":"3","op":"PUT","object_type":"todos","object_id":"t1","checksum":40,"subkey":"s","data":"{\"a\":1}"},{"op_id":"4","op":"REMOVE","object_type":"todos","object_id":"t2","checksum":35,"data":null},{"op_id":"5","op":"MOVE","checksum":5}]}}"#;
        let SyncLine::Data(data) = SyncLine::parse(line).unwrap() else {
            panic!()
        };
        assert_eq!(data.data[0].data.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(data.data[1].op, OpType::Remove);
        assert_eq!(data.data[2].object_id, None);

        assert_eq!(
            SyncLine::parse(br#"{"partial_checkpoint_complete":{"last_op_id":"2","priority":1}}"#)
                .unwrap(),
            SyncLine::PartialCheckpointComplete {
                last_op_id: OpId(2),
                priority: 1
            }
        );
        assert_eq!(
            SyncLine::parse(br#"{"token_expires_in":25}"#).unwrap(),
            SyncLine::TokenExpiresIn(25)
        );
        assert_eq!(
            SyncLine::parse(br#"{"some_future_line":{"x":1}}"#).unwrap(),
            SyncLine::Unknown("some_future_line".into())
        );
    }

    #[test]
    fn malformed_lines_are_protocol_errors() {
        for line in [
            &br#""invalid sync line""#[..],
            b"not json",
            br#"{"checkpoint_complete":{"last_op_id":"1"},"extra":1}"#,
            br#"{"checkpoint":{"last_op_id":2,"buckets":[]}}"#,
            br#"{"data":{"bucket":"b","data":[{"op_id":"1","op":"UPSERT","checksum":1}]}}"#,
            br#"{"token_expires_in":"soon"}"#,
        ] {
            let error = SyncLine::parse(line).unwrap_err();
            assert!(matches!(error, Error::Protocol(_)), "{error}");
        }
    }

    /// A data line of bucket `b` with a good PUT (op 1) and then a PUT (op 2) of `data`.
    fn data_line(data: &str) -> String {
        format!(
            r#"{{"data":{{"bucket":"b","data":[
                {{"op_id":"1","op":"PUT","object_type":"todos","object_id":"a","checksum":1,"data":"{{}}"}},
                {{"op_id":"2","op":"PUT","object_type":"todos","object_id":"b","checksum":2,"data":{data}}}]}}}}"#
        )
        .replace('\n', "")
    }

    #[test]
    fn row_data_that_is_not_json_object_text_is_refused_naming_bucket_and_op() {
        for data in [
            r#""not json""#,
            r#""[1, 2]""#,
            r#""{\"a\": 1""#,
            r#""{\"a\": \"\\ud800\"}""#, // a lone surrogate escape inside JSON text
            r#"{"a": "\ud800"}"#,        // the same inside an object (raw_data off)
            r#"[1]"#,
            r#"7"#,
        ] {
            let line = data_line(data);
            let error = SyncLine::parse(line.as_bytes()).unwrap_err().to_string();
            assert!(
                error.contains(r#"bucket "b""#) && error.contains("op 2"),
                "{data}: {error}"
            );
        }
    }

    #[test]
    fn row_data_that_is_json_object_text_or_null_passes() {
        for data in [
            r#""{}""#,
            r#"" {\"a\": [1, {\"b\": null}], \"c\": \"\\ud83d\\ude00 \\u00e9\"}""#,
            r#"{"a": "\ud83d\ude00"}"#,
            "null",
        ] {
            let line = data_line(data);
            SyncLine::parse(line.as_bytes()).unwrap_or_else(|e| panic!("{data}: {e}"));
        }
    }

    mod bson {
        use serde_json::json;

        use super::*;
        use crate::sync::bson_writer::{DocumentWriter, encode_object};

        /// Writes one number field, of a chosen BSON type.
        type WriteNumber = Box<dyn Fn(&mut DocumentWriter, &str)>;

        /// Lines of every type, as JSON.
        fn lines() -> Vec<Value> {
            vec![
                json!({"checkpoint": {"last_op_id": "2", "write_checkpoint": "7", "buckets": [
                    {"bucket": "b", "checksum": -1, "count": 1, "priority": 1,
                     "subscriptions": [{"default": 0}, {"sub": 1}, {"other": true}]}],
                    "streams": [{"name": "lists", "is_default": true, "errors": [
                        {"subscription": "default", "message": "m"},
                        {"subscription": 0, "message": "n"}]}]}}),
                json!({"checkpoint_diff": {"last_op_id": "3", "write_checkpoint": null,
                    "updated_buckets": [{"bucket": "b", "checksum": 4_294_967_295u32}],
                    "removed_buckets": ["c"]}}),
                json!({"data": {"bucket": "b", "has_more": false, "after": "0", "next_after": "5",
                    "data": [
                    {"op_id": "3", "op": "PUT", "object_type": "todos", "object_id": "t1",
                     "checksum": 40, "subkey": "s", "data": "{\"a\":\"é\"}"},
                    {"op_id": "4", "op": "REMOVE", "object_type": "todos", "object_id": "t2",
                     "checksum": 35, "data": null},
                    {"op_id": "5", "op": "PUT", "object_type": "todos", "object_id": "t3",
                     "checksum": 1, "data": {"nested": [1, 2.5, "x"]}},
                    {"op_id": "6", "op": "MOVE", "checksum": 5},
                    {"op_id": "7", "op": "CLEAR", "checksum": 6}]}}),
                json!({"checkpoint_complete": {"last_op_id": "2"}}),
                json!({"partial_checkpoint_complete": {"last_op_id": "2", "priority": 1}}),
                json!({"token_expires_in": 25}),
                json!({"some_future_line": {"x": [1, {"y": null}]}}),
            ]
        }

        #[test]
        fn every_line_type_parses_from_bson_as_from_json() {
            for line in lines() {
                let from_json = SyncLine::parse(line.to_string().as_bytes()).unwrap();
                let document = encode_object(&line).unwrap();
                assert_eq!(
                    SyncLine::parse_bson(&document).unwrap(),
                    from_json,
                    "{line}"
                );
            }
        }

        /// A checkpoint whose checksum, count and priority are written by `number`.
        fn checkpoint(number: impl Fn(&mut DocumentWriter, &str)) -> Vec<u8> {
            let mut w = DocumentWriter::new();
            w.begin_document("checkpoint");
            w.string("last_op_id", "1");
            w.begin_array("buckets");
            w.begin_document("0");
            w.string("bucket", "b");
            number(&mut w, "checksum");
            number(&mut w, "count");
            number(&mut w, "priority");
            w.end();
            w.end();
            w.finish()
        }

        #[test]
        fn number_fields_take_int32_int64_and_doubles() {
            let writers: [(&str, WriteNumber); 3] = [
                ("int32", Box::new(|w, key| w.int32(key, 2))),
                ("int64", Box::new(|w, key| w.int64(key, 2))),
                ("double", Box::new(|w, key| w.double(key, 2.0))),
            ];
            for (kind, write) in writers {
                let SyncLine::Checkpoint(parsed) = SyncLine::parse_bson(&checkpoint(write))
                    .unwrap_or_else(|e| panic!("{kind}: {e}"))
                else {
                    panic!("{kind}: not a checkpoint")
                };
                let bucket = &parsed.buckets[0];
                assert_eq!(
                    (bucket.checksum, bucket.count, bucket.priority),
                    (Checksum(2), Some(2), 2),
                    "{kind}"
                );
            }
            // Checksums use the whole u32 range, signed or not, in every type.
            for (write, expected) in [
                (
                    Box::new(|w: &mut DocumentWriter, k: &str| w.int32(k, -1)) as WriteNumber,
                    u32::MAX,
                ),
                (
                    Box::new(|w: &mut DocumentWriter, k: &str| w.int64(k, 4_294_967_295)),
                    u32::MAX,
                ),
                (
                    Box::new(|w: &mut DocumentWriter, k: &str| w.double(k, 4_294_967_295.0)),
                    u32::MAX,
                ),
                (
                    Box::new(|w: &mut DocumentWriter, k: &str| w.double(k, -2.0)),
                    u32::MAX - 1,
                ),
            ] {
                let document = {
                    let mut w = DocumentWriter::new();
                    w.begin_document("checkpoint_diff");
                    w.string("last_op_id", "1");
                    w.begin_array("updated_buckets");
                    w.begin_document("0");
                    w.string("bucket", "b");
                    write(&mut w, "checksum");
                    w.end();
                    w.end();
                    w.begin_array("removed_buckets");
                    w.end();
                    w.finish()
                };
                let SyncLine::CheckpointDiff(diff) = SyncLine::parse_bson(&document).unwrap()
                else {
                    panic!()
                };
                assert_eq!(diff.updated_buckets[0].checksum, Checksum(expected));
            }
            let mut w = DocumentWriter::new();
            w.double("token_expires_in", 30.0);
            assert_eq!(
                SyncLine::parse_bson(&w.finish()).unwrap(),
                SyncLine::TokenExpiresIn(30)
            );
        }

        #[test]
        fn fractional_or_out_of_range_numbers_are_protocol_errors() {
            for write in [
                Box::new(|w: &mut DocumentWriter, k: &str| w.double(k, 1.5)) as WriteNumber,
                Box::new(|w: &mut DocumentWriter, k: &str| w.int64(k, 1 << 40)),
                Box::new(|w: &mut DocumentWriter, k: &str| w.string(k, "2")),
            ] {
                let error = SyncLine::parse_bson(&checkpoint(write)).unwrap_err();
                assert!(
                    matches!(&error, Error::Protocol(m) if m.contains("malformed checkpoint line (BSON)")),
                    "{error}"
                );
            }
        }

        #[test]
        fn bson_lines_that_break_the_protocol_are_refused() {
            let mut w = DocumentWriter::new();
            w.int32("token_expires_in", 1);
            w.int32("extra", 1);
            let error = SyncLine::parse_bson(&w.finish()).unwrap_err().to_string();
            assert!(error.contains("exactly one key"), "{error}");

            let error = SyncLine::parse_bson(&DocumentWriter::new().finish())
                .unwrap_err()
                .to_string();
            assert!(error.contains("exactly one key"), "{error}");

            // Row data that is not JSON object text, as over NDJSON.
            let line = json!({"data": {"bucket": "b", "data": [{"op_id": "1", "op": "PUT",
                "object_type": "t", "object_id": "a", "checksum": 1, "data": "[1]"}]}});
            let error = SyncLine::parse_bson(&encode_object(&line).unwrap())
                .unwrap_err()
                .to_string();
            assert!(error.contains("op 1"), "{error}");

            // An op id must be a decimal string.
            let line = json!({"checkpoint_complete": {"last_op_id": 5}});
            let error = SyncLine::parse_bson(&encode_object(&line).unwrap())
                .unwrap_err()
                .to_string();
            assert!(error.contains("decimal string"), "{error}");

            // An unsupported element type is named.
            let mut document = encode_object(&json!({"token_expires_in": 1})).unwrap();
            document[4] = 0x09; // int32 → UTC datetime (8 bytes: now runs past the end)
            let error = SyncLine::parse_bson(&document).unwrap_err().to_string();
            assert!(error.contains("0x09"), "{error}");
        }

        /// A small deterministic generator (xorshift64*), so failures reproduce.
        struct Rng(u64);
        impl Rng {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
            }
            fn below(&mut self, n: usize) -> usize {
                (self.next() % n as u64) as usize
            }
        }

        #[test]
        fn truncated_and_mutated_documents_never_panic() {
            let documents: Vec<Vec<u8>> =
                lines().iter().map(|l| encode_object(l).unwrap()).collect();
            let mut rng = Rng(0x5eed_1234_abcd_ef01);
            let mut outcomes = [0usize; 2];
            for document in &documents {
                // Every truncation, with the length prefix kept or fixed up.
                for cut in 0..document.len() {
                    let mut short = document[..cut].to_vec();
                    let _ = SyncLine::parse_bson(&short);
                    if cut >= 4 {
                        short[..4].copy_from_slice(&(cut as i32).to_le_bytes());
                        let _ = SyncLine::parse_bson(&short);
                    }
                }
                // Random mutations: 1–4 bytes replaced with random or boundary values.
                for _ in 0..2_000 {
                    let mut mutated = document.clone();
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(mutated.len());
                        mutated[at] = match rng.below(4) {
                            0 => 0,
                            1 => 0xff,
                            2 => 0x7f,
                            _ => rng.next() as u8,
                        };
                    }
                    match SyncLine::parse_bson(&mutated) {
                        Ok(_) => outcomes[0] += 1,
                        Err(Error::Protocol(_)) => outcomes[1] += 1,
                        Err(other) => panic!("not a protocol error: {other}"),
                    }
                    // The same bytes as a stream through the splitter, in odd chunks.
                    let mut reader = crate::sync::framing::LineReader::new(
                        crate::sync::framing::Framing::Bson,
                        1 << 16,
                    );
                    for chunk in mutated.chunks(1 + rng.below(13)) {
                        reader.push(chunk);
                        while let Ok(Some(_)) = reader.next_line(false) {}
                    }
                    let _ = reader.next_line(true);
                }
            }
            // Both outcomes occur: the loop does reach the decoder's checks, not only
            // the length prefix.
            assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
        }
    }
}
