//! The sync lines a PowerSync Service sends, parsed and validated (spec §2–3).
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
        let text = String::deserialize(deserializer)?;
        text.parse::<i64>()
            .ok()
            .filter(|id| *id >= 0)
            .map(OpId)
            .ok_or_else(|| de::Error::custom(format!("op id {text:?} is not a decimal u63")))
    }
}

/// A 32-bit wrapping checksum. Accepts unsigned, signed (two's complement) and
/// integral floats, as services send all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Checksum(pub(crate) u32);

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        parse_checksum(&value)
            .map(Checksum)
            .ok_or_else(|| de::Error::custom(format!("invalid checksum {value}")))
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
    Ok(match Value::deserialize(deserializer)? {
        Value::Null => None,
        Value::String(text) => Some(text),
        other => Some(other.to_string()),
    })
}

/// `data`: ops for one bucket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct DataLine {
    pub(crate) bucket: String,
    pub(crate) data: Vec<OplogEntry>,
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
    /// Parses one NDJSON line.
    pub(crate) fn parse(line: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| Error::Protocol(format!("sync line is not JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(Error::Protocol("sync line is not a JSON object".into()));
        };
        let mut entries = object.into_iter();
        let (Some((kind, payload)), None) = (entries.next(), entries.next()) else {
            return Err(Error::Protocol(
                "sync line must have exactly one key (its type)".into(),
            ));
        };
        fn payload_of<T: for<'de> Deserialize<'de>>(kind: &str, payload: Value) -> Result<T> {
            serde_json::from_value(payload)
                .map_err(|e| Error::Protocol(format!("malformed {kind} line: {e}")))
        }
        Ok(match kind.as_str() {
            "checkpoint" => Self::Checkpoint(payload_of(&kind, payload)?),
            "checkpoint_diff" => Self::CheckpointDiff(payload_of(&kind, payload)?),
            "data" => Self::Data(payload_of(&kind, payload)?),
            "checkpoint_complete" => {
                let complete: Complete = payload_of(&kind, payload)?;
                Self::CheckpointComplete {
                    last_op_id: complete.last_op_id,
                }
            }
            "partial_checkpoint_complete" => {
                let partial: PartialComplete = payload_of(&kind, payload)?;
                Self::PartialCheckpointComplete {
                    last_op_id: partial.last_op_id,
                    priority: partial.priority,
                }
            }
            "token_expires_in" => Self::TokenExpiresIn(payload.as_i64().ok_or_else(|| {
                Error::Protocol(format!(
                    "token_expires_in must be an integer, got {payload}"
                ))
            })?),
            _ => Self::Unknown(kind),
        })
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
}
