//! Writes BSON documents (docs/sync-protocol.md §1.3): for the test service's BSON sync
//! streams and for tests of the reader (compiled only for those).
//!
//! Numbers are written as the service's JavaScript BSON serializer writes them: an
//! integer that fits 32 bits as int32, a larger one as int64, anything else as a double
//! (tests that need another numeric type write it explicitly).

use serde_json::Value;

use super::bson_reader::{ARRAY, BOOL, DOCUMENT, DOUBLE, INT32, INT64, NULL, STRING};

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

    /// An integer as int32 when it fits, else as int64.
    pub(crate) fn integer(&mut self, key: &str, value: i64) {
        match i32::try_from(value) {
            Ok(small) => self.int32(key, small),
            Err(_) => self.int64(key, value),
        }
    }

    pub(crate) fn int32(&mut self, key: &str, value: i32) {
        self.element(INT32, key);
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn int64(&mut self, key: &str, value: i64) {
        self.element(INT64, key);
        self.out.extend_from_slice(&value.to_le_bytes());
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
