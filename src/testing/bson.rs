//! BSON sync streams, as the PowerSync Service serves them (docs/sync-protocol.md §1.3):
//! the framing is negotiated from the request's `Accept`, and each line is written as
//! one BSON document.
//!
//! Numbers are written as the service's JavaScript BSON serializer writes them: an
//! integer that fits 32 bits as int32, a larger one as int64, anything else as a double.

use serde_json::Value;

/// The media types of the two framings.
pub(crate) const BSON_STREAM: &str = "application/vnd.powersync.bson-stream";
pub(crate) const NDJSON: &str = "application/x-ndjson";

/// How a sync stream's lines are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamFormat {
    Ndjson,
    Bson,
}

impl StreamFormat {
    /// The framing for a request's `Accept`: BSON when it is offered with a quality at
    /// least that of NDJSON (`*/*` counts for NDJSON, and an `Accept` without either
    /// means NDJSON, as the service answers a client that sends none). Always NDJSON
    /// when `bson_enabled` is off.
    pub(crate) fn negotiate(accept: Option<&str>, bson_enabled: bool) -> Self {
        let Some(accept) = accept.filter(|_| bson_enabled) else {
            return Self::Ndjson;
        };
        let quality = |wanted: &[&str]| {
            accept
                .split(',')
                .filter_map(|entry| {
                    let mut parts = entry.split(';').map(str::trim);
                    let media = parts.next().unwrap_or_default();
                    if !wanted.iter().any(|w| media.eq_ignore_ascii_case(w)) {
                        return None;
                    }
                    let q = parts
                        .find_map(|p| p.strip_prefix("q="))
                        .and_then(|q| q.parse::<f32>().ok())
                        .unwrap_or(1.0);
                    Some(q)
                })
                .fold(None, |best: Option<f32>, q| Some(best.map_or(q, |b| b.max(q))))
        };
        match (quality(&[BSON_STREAM]), quality(&[NDJSON, "*/*"])) {
            (Some(bson), ndjson) if bson > 0.0 && bson >= ndjson.unwrap_or(0.0) => Self::Bson,
            _ => Self::Ndjson,
        }
    }

    /// The response's `Content-Type`.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => NDJSON,
            Self::Bson => BSON_STREAM,
        }
    }
}

const DOUBLE: u8 = 0x01;
const STRING: u8 = 0x02;
const DOCUMENT: u8 = 0x03;
const ARRAY: u8 = 0x04;
const BOOL: u8 = 0x08;
const NULL: u8 = 0x0A;
const INT32: u8 = 0x10;
const INT64: u8 = 0x12;

/// Writes one BSON document element by element; nested documents and arrays are opened
/// and closed in order (their lengths are filled in when they close).
#[derive(Debug, Default)]
pub(crate) struct DocumentWriter {
    out: Vec<u8>,
    /// Where the length prefix of each open document or array is.
    open: Vec<usize>,
}

impl DocumentWriter {
    /// A writer with the top-level document open.
    pub(crate) fn new() -> Self {
        let mut writer = Self::default();
        writer.open_container();
        writer
    }

    fn open_container(&mut self) {
        self.open.push(self.out.len());
        self.out.extend_from_slice(&[0; 4]);
    }

    fn element(&mut self, kind: u8, key: &str) {
        self.out.push(kind);
        // Keys come from the protocol's field names and the service's own data:
        // none holds a NUL, which a BSON name cannot carry.
        self.out.extend_from_slice(key.as_bytes());
        self.out.push(0);
    }

    /// Opens a nested document under `key`.
    pub(crate) fn begin_document(&mut self, key: &str) {
        self.element(DOCUMENT, key);
        self.open_container();
    }

    /// Opens a nested array under `key` (its elements' keys are "0", "1", …).
    pub(crate) fn begin_array(&mut self, key: &str) {
        self.element(ARRAY, key);
        self.open_container();
    }

    /// Closes the innermost open document or array.
    pub(crate) fn end(&mut self) {
        self.out.push(0);
        if let Some(start) = self.open.pop() {
            let length = i32::try_from(self.out.len() - start).unwrap_or(i32::MAX);
            self.out[start..start + 4].copy_from_slice(&length.to_le_bytes());
        }
    }

    pub(crate) fn string(&mut self, key: &str, value: &str) {
        self.element(STRING, key);
        let length = i32::try_from(value.len() + 1).unwrap_or(i32::MAX);
        self.out.extend_from_slice(&length.to_le_bytes());
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(0);
    }

    pub(crate) fn integer(&mut self, key: &str, value: i64) {
        match i32::try_from(value) {
            Ok(small) => {
                self.element(INT32, key);
                self.out.extend_from_slice(&small.to_le_bytes());
            }
            Err(_) => {
                self.element(INT64, key);
                self.out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }

    pub(crate) fn double(&mut self, key: &str, value: f64) {
        self.element(DOUBLE, key);
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn bool(&mut self, key: &str, value: bool) {
        self.element(BOOL, key);
        self.out.push(u8::from(value));
    }

    pub(crate) fn null(&mut self, key: &str) {
        self.element(NULL, key);
    }

    /// Writes any JSON value under `key`.
    pub(crate) fn value(&mut self, key: &str, value: &Value) {
        match value {
            Value::Null => self.null(key),
            Value::Bool(b) => self.bool(key, *b),
            Value::Number(number) => match number.as_i64() {
                Some(integer) => self.integer(key, integer),
                None => self.double(key, number.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(text) => self.string(key, text),
            Value::Array(items) => {
                self.begin_array(key);
                for (index, item) in items.iter().enumerate() {
                    self.value(&index.to_string(), item);
                }
                self.end();
            }
            Value::Object(fields) => {
                self.begin_document(key);
                for (name, field) in fields {
                    self.value(name, field);
                }
                self.end();
            }
        }
    }

    /// The finished document (closing what is still open).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        while !self.open.is_empty() {
            self.end();
        }
        self.out
    }
}

/// A JSON object as one BSON document; `None` for any other value (a BSON stream can
/// only carry documents).
pub(crate) fn encode_object(value: &Value) -> Option<Vec<u8>> {
    let fields = value.as_object()?;
    let mut writer = DocumentWriter::new();
    for (name, field) in fields {
        writer.value(name, field);
    }
    Some(writer.finish())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[test]
    fn accept_is_negotiated_preferring_bson_like_the_service() {
        let pick = |accept| StreamFormat::negotiate(Some(accept), true);
        assert_eq!(
            pick("application/vnd.powersync.bson-stream;q=0.9,application/x-ndjson;q=0.8"),
            StreamFormat::Bson
        );
        assert_eq!(pick("application/vnd.powersync.bson-stream"), StreamFormat::Bson);
        assert_eq!(pick("application/x-ndjson"), StreamFormat::Ndjson);
        assert_eq!(
            pick("application/vnd.powersync.bson-stream;q=0.5, */*"),
            StreamFormat::Ndjson
        );
        assert_eq!(
            pick("application/vnd.powersync.bson-stream;q=0"),
            StreamFormat::Ndjson
        );
        assert_eq!(StreamFormat::negotiate(None, true), StreamFormat::Ndjson);
        assert_eq!(
            StreamFormat::negotiate(Some("application/vnd.powersync.bson-stream"), false),
            StreamFormat::Ndjson
        );
    }

    #[test]
    fn the_specs_example_document_is_written_byte_for_byte() {
        let bytes = encode_object(&json!({"token_expires_in": 60})).unwrap();
        let expected = "1b 00 00 00 10 74 6f 6b 65 6e 5f 65 78 70 69 72 65 73 5f 69 6e 00 3c 00 00 00 00";
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex.join(" "), expected);
    }

    #[test]
    fn documents_read_back_as_the_json_they_were_written_from() {
        let value = json!({"checkpoint": {"last_op_id": "5", "write_checkpoint": null,
            "buckets": [{"bucket": "b", "checksum": -1, "count": 5_000_000_000i64, "priority": 3}],
            "ratio": 0.5, "ok": true, "streams": []}});
        let bytes = encode_object(&value).unwrap();
        let read =
            Value::deserialize(crate::sync::bson_reader::document(&bytes).unwrap()).unwrap();
        assert_eq!(read, value);
        assert!(encode_object(&json!([1])).is_none());
    }
}
