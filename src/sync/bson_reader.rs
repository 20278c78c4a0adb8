//! Reads one BSON document of the sync stream through serde (docs/sync-protocol.md §1.3),
//! so a BSON sync line decodes into exactly the types an NDJSON line does.
//!
//! Only the element types the PowerSync Service sends are understood: string (0x02),
//! int32 (0x10), int64 (0x12), double (0x01), null (0x0A), bool (0x08), document (0x03)
//! and array (0x04). Any other type, and every malformed length, missing terminator or
//! invalid UTF-8 string, is an error naming the problem, never a panic.
//!
//! Design: the reader never allocates from a length read off the wire. Keys and strings
//! are borrowed from the document (checked against its bounds first), each element's
//! extent is known before its value is visited, and nesting is bounded by
//! [`MAX_DEPTH`], so a hostile document costs at most its own size and a bounded stack.
//!
//! Numbers: the service writes JavaScript numbers, which are doubles; a double holding
//! an integer is handed to serde as an integer, so every integer field (checksums,
//! counts, priorities, `token_expires_in`) takes int32, int64 and integral doubles alike.

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// The deepest nesting of documents and arrays accepted (a sync line nests four deep).
pub(crate) const MAX_DEPTH: usize = 128;

// The element types sync lines use (the test service's writer shares them).
pub(super) const DOUBLE: u8 = 0x01;
pub(super) const STRING: u8 = 0x02;
pub(super) const DOCUMENT: u8 = 0x03;
pub(super) const ARRAY: u8 = 0x04;
pub(super) const BOOL: u8 = 0x08;
pub(super) const NULL: u8 = 0x0A;
pub(super) const INT32: u8 = 0x10;
pub(super) const INT64: u8 = 0x12;

/// What is wrong with a BSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BsonError(String);

impl fmt::Display for BsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BsonError {}

impl de::Error for BsonError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self(message.to_string())
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, BsonError> {
    Err(BsonError(message.into()))
}

/// A serde [`Deserializer`](de::Deserializer) over a whole BSON document (`bytes` is the
/// document exactly, length prefix and trailing `0x00` included).
pub(crate) fn document(bytes: &[u8]) -> Result<BsonValue<'_>, BsonError> {
    elements_of(bytes, "the document")?;
    Ok(BsonValue {
        kind: DOCUMENT,
        key: "",
        bytes,
        depth: 0,
    })
}

/// The first key of a document, if it can be read (to name a line in an error message).
pub(crate) fn first_key(bytes: &[u8]) -> Option<&str> {
    let mut elements = elements_of(bytes, "the document").ok()?;
    elements.next_element().ok()?.map(|element| element.key)
}

/// The element list of the document or array `bytes` (length prefix included), after
/// checking that its length prefix is its size and that it ends in `0x00`.
fn elements_of<'a>(bytes: &'a [u8], what: &str) -> Result<Elements<'a>, BsonError> {
    let Some(declared) = read_i32(bytes) else {
        return fail(format!("{what} is shorter than a BSON length prefix"));
    };
    if declared < 5 || usize::try_from(declared).ok() != Some(bytes.len()) {
        return fail(format!(
            "{what} declares {declared} bytes but has {} (a BSON document is at least 5)",
            bytes.len()
        ));
    }
    if bytes.last() != Some(&0) {
        return fail(format!("{what} does not end with the 0x00 terminator"));
    }
    Ok(Elements {
        bytes: &bytes[4..],
        pos: 0,
        depth: 0,
        pending: None,
    })
}

fn read_i32(bytes: &[u8]) -> Option<i32> {
    Some(i32::from_le_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// A human name for an element type byte, for error messages.
fn type_name(kind: u8) -> &'static str {
    match kind {
        0x05 => "binary",
        0x06 => "undefined",
        0x07 => "ObjectId",
        0x09 => "UTC datetime",
        0x0B => "regular expression",
        0x0D => "JavaScript code",
        0x11 => "timestamp",
        0x13 => "decimal128",
        0x7F | 0xFF => "min/max key",
        _ => "unknown",
    }
}

/// One element of a document or array: its type, key and value bytes.
#[derive(Clone, Copy)]
struct Element<'a> {
    kind: u8,
    key: &'a str,
    value: &'a [u8],
}

/// The elements of one document or array: `bytes` runs from the first element up to and
/// including the terminating `0x00`.
struct Elements<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    /// The element whose key was handed out and whose value was not read yet.
    pending: Option<Element<'a>>,
}

impl<'a> Elements<'a> {
    /// The next element, or `None` at the terminator (which must be the last byte).
    fn next_element(&mut self) -> Result<Option<Element<'a>>, BsonError> {
        let Some(&kind) = self.bytes.get(self.pos) else {
            return fail("a BSON document ends without its 0x00 terminator");
        };
        if kind == 0 {
            if self.pos + 1 != self.bytes.len() {
                return fail("a BSON document has bytes after its 0x00 terminator");
            }
            self.pos += 1;
            return Ok(None);
        }
        let rest = &self.bytes[self.pos + 1..];
        let Some(nul) = rest.iter().position(|b| *b == 0) else {
            return fail("a BSON element name has no 0x00 terminator");
        };
        let key = std::str::from_utf8(&rest[..nul])
            .map_err(|_| BsonError("a BSON element name is not valid UTF-8".into()))?;
        let rest = &rest[nul + 1..];
        let length = match kind {
            DOUBLE | INT64 => 8,
            INT32 => 4,
            BOOL => 1,
            NULL => 0,
            STRING | DOCUMENT | ARRAY => {
                let Some(declared) = read_i32(rest) else {
                    return fail(format!("element {key:?} is cut off in its length"));
                };
                let minimum = if kind == STRING { 1 } else { 5 };
                if declared < minimum {
                    return fail(format!(
                        "element {key:?} declares a length of {declared} (at least {minimum})"
                    ));
                }
                // `declared` is positive and at most i32::MAX: no overflow on any target
                // whose usize has 32 bits or more.
                let declared = declared as usize;
                if kind == STRING {
                    declared.saturating_add(4)
                } else {
                    declared
                }
            }
            other => {
                return fail(format!(
                    "element {key:?} has the unsupported BSON type 0x{other:02x} ({}); a sync \
                     line holds only strings, numbers, booleans, nulls, documents and arrays",
                    type_name(other)
                ));
            }
        };
        let Some(value) = rest.get(..length) else {
            return fail(format!(
                "element {key:?} runs past the end of its document ({length} bytes, {} left)",
                rest.len()
            ));
        };
        self.pos += 1 + nul + 1 + length;
        Ok(Some(Element { kind, key, value }))
    }

    fn value_of(&self, element: Element<'a>) -> BsonValue<'a> {
        BsonValue {
            kind: element.kind,
            key: element.key,
            bytes: element.value,
            depth: self.depth + 1,
        }
    }
}

impl<'de> MapAccess<'de> for Elements<'de> {
    type Error = BsonError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, BsonError> {
        let Some(element) = self.next_element()? else {
            return Ok(None);
        };
        self.pending = Some(element);
        seed.deserialize(BorrowedStrDeserializer::new(element.key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, BsonError> {
        let Some(element) = self.pending.take() else {
            return fail("a BSON value was read before its key");
        };
        seed.deserialize(self.value_of(element))
    }
}

impl<'de> SeqAccess<'de> for Elements<'de> {
    type Error = BsonError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, BsonError> {
        // An array's keys ("0", "1", …) carry nothing the order does not.
        match self.next_element()? {
            Some(element) => seed.deserialize(self.value_of(element)).map(Some),
            None => Ok(None),
        }
    }
}

/// One BSON value (an element's, or the whole document), as a serde deserializer.
pub(crate) struct BsonValue<'a> {
    kind: u8,
    key: &'a str,
    bytes: &'a [u8],
    depth: usize,
}

impl<'a> BsonValue<'a> {
    fn container(&self) -> Result<Elements<'a>, BsonError> {
        if self.depth >= MAX_DEPTH {
            return fail(format!(
                "BSON documents and arrays nest deeper than {MAX_DEPTH} levels"
            ));
        }
        let mut elements = elements_of(self.bytes, &format!("element {:?}", self.key))?;
        elements.depth = self.depth;
        Ok(elements)
    }

    fn string(&self) -> Result<&'a str, BsonError> {
        // The extent was checked when the element was read: 4 length bytes, the text and
        // its 0x00.
        let text = match self.bytes.get(4..) {
            Some([text @ .., 0]) => text,
            _ => {
                return fail(format!(
                    "string {:?} does not end with the 0x00 terminator",
                    self.key
                ));
            }
        };
        std::str::from_utf8(text)
            .map_err(|_| BsonError(format!("string {:?} is not valid UTF-8", self.key)))
    }

    fn fixed<const N: usize>(&self) -> Result<[u8; N], BsonError> {
        self.bytes
            .try_into()
            .map_err(|_| BsonError(format!("element {:?} has the wrong size", self.key)))
    }
}

impl<'de> de::Deserializer<'de> for BsonValue<'de> {
    type Error = BsonError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BsonError> {
        match self.kind {
            DOUBLE => {
                let number = f64::from_le_bytes(self.fixed()?);
                // i64's range is [-2^63, 2^63): 2^63 itself is not an i64.
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                if number.fract() == 0.0 && (-LIMIT..LIMIT).contains(&number) {
                    visitor.visit_i64(number as i64)
                } else {
                    visitor.visit_f64(number)
                }
            }
            STRING => visitor.visit_borrowed_str(self.string()?),
            DOCUMENT => visitor.visit_map(self.container()?),
            ARRAY => visitor.visit_seq(self.container()?),
            BOOL => match self.fixed::<1>()? {
                [0] => visitor.visit_bool(false),
                [1] => visitor.visit_bool(true),
                [other] => fail(format!(
                    "boolean {:?} is 0x{other:02x} (only 0x00 and 0x01 are booleans)",
                    self.key
                )),
            },
            NULL => visitor.visit_unit(),
            INT32 => visitor.visit_i32(i32::from_le_bytes(self.fixed()?)),
            INT64 => visitor.visit_i64(i64::from_le_bytes(self.fixed()?)),
            // `next_element` hands out no other type.
            other => fail(format!("unsupported BSON type 0x{other:02x}")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BsonError> {
        if self.kind == NULL {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BsonError> {
        // The protocol's enums (op types, `"default"`) are unit variants: strings.
        if self.kind != STRING {
            return fail(format!("{:?} must be a string", self.key));
        }
        let text: &'de str = self.string()?;
        visitor.visit_enum(IntoDeserializer::<BsonError>::into_deserializer(text))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, BsonError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BsonError> {
        // Skipped unread: the element's extent is already known.
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde::Deserialize;
    use serde_json::{Value, json};

    use super::*;

    /// A minimal BSON writer for the tests: `(type, key, value bytes)` elements.
    pub(crate) fn doc(elements: &[(u8, &str, Vec<u8>)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, key, value) in elements {
            body.push(*kind);
            body.extend_from_slice(key.as_bytes());
            body.push(0);
            body.extend_from_slice(value);
        }
        body.push(0);
        let mut out = ((body.len() + 4) as i32).to_le_bytes().to_vec();
        out.extend(body);
        out
    }

    pub(crate) fn string(text: &str) -> Vec<u8> {
        let mut out = ((text.len() + 1) as i32).to_le_bytes().to_vec();
        out.extend_from_slice(text.as_bytes());
        out.push(0);
        out
    }

    fn to_json(bytes: &[u8]) -> Result<Value, BsonError> {
        Value::deserialize(document(bytes)?)
    }

    #[test]
    fn the_specs_example_document_reads() {
        let bytes = [
            0x1b, 0, 0, 0, 0x10, b't', b'o', b'k', b'e', b'n', b'_', b'e', b'x', b'p', b'i', b'r',
            b'e', b's', b'_', b'i', b'n', 0, 0x3c, 0, 0, 0, 0,
        ];
        assert_eq!(to_json(&bytes).unwrap(), json!({"token_expires_in": 60}));
    }

    #[test]
    fn every_supported_element_type_reads() {
        let inner = doc(&[(STRING, "k", string("v"))]);
        let array = doc(&[
            (INT32, "0", 1i32.to_le_bytes().to_vec()),
            (NULL, "1", vec![]),
        ]);
        let bytes = doc(&[
            (DOUBLE, "double", 1.5f64.to_le_bytes().to_vec()),
            (DOUBLE, "integral", 7.0f64.to_le_bytes().to_vec()),
            (STRING, "string", string("é日本")),
            (DOCUMENT, "document", inner),
            (ARRAY, "array", array),
            (BOOL, "yes", vec![1]),
            (BOOL, "no", vec![0]),
            (NULL, "null", vec![]),
            (INT32, "int32", (-5i32).to_le_bytes().to_vec()),
            (INT64, "int64", (1i64 << 40).to_le_bytes().to_vec()),
        ]);
        assert_eq!(
            to_json(&bytes).unwrap(),
            json!({"double": 1.5, "integral": 7, "string": "é日本", "document": {"k": "v"},
                   "array": [1, null], "yes": true, "no": false, "null": null,
                   "int32": -5, "int64": 1i64 << 40})
        );
    }

    #[test]
    fn unsupported_element_types_are_named() {
        for kind in [0x05u8, 0x07, 0x09, 0x11, 0x13, 0x42] {
            let bytes = doc(&[(kind, "odd", vec![0; 12])]);
            let error = to_json(&bytes).unwrap_err().to_string();
            assert!(
                error.contains(&format!("0x{kind:02x}")) && error.contains("\"odd\""),
                "{error}"
            );
        }
    }

    #[test]
    fn malformed_documents_are_errors() {
        let good = doc(&[(STRING, "a", string("b"))]);
        let mut no_terminator = good.clone();
        *no_terminator.last_mut().unwrap() = 1;
        let mut bad_utf8 = doc(&[(STRING, "a", string("bb"))]);
        let at = bad_utf8.len() - 3;
        bad_utf8[at] = 0xff;
        let mut long_string = good.clone();
        long_string[7] = 100; // the string's length
        let mut negative_string = good.clone();
        negative_string[7..11].copy_from_slice(&(-1i32).to_le_bytes());
        let mut trailing = good.clone();
        trailing.insert(trailing.len() - 1, 0);
        let len = trailing.len() as i32;
        trailing[..4].copy_from_slice(&len.to_le_bytes());
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("short prefix", vec![5, 0]),
            ("length mismatch", {
                let mut b = good.clone();
                b[0] += 1;
                b
            }),
            ("length below 5", vec![4, 0, 0, 0]),
            ("no terminator", no_terminator),
            ("bad utf-8 string", bad_utf8),
            ("string past the end", long_string),
            ("negative string length", negative_string),
            ("bytes after the terminator", trailing),
            ("bad bool", doc(&[(BOOL, "b", vec![2])])),
            ("key without NUL", {
                let mut b = vec![0, 0, 0, 0, STRING, b'a', b'b', 0];
                let len = b.len() as i32;
                b[..4].copy_from_slice(&len.to_le_bytes());
                b
            }),
            (
                "bad utf-8 key",
                doc(&[(NULL, "\u{e9}", vec![])])
                    .iter()
                    .map(|b| if *b == 0xc3 { 0xff } else { *b })
                    .collect(),
            ),
            ("truncated int64", doc(&[(INT64, "n", vec![1, 2, 3])])),
        ];
        for (what, bytes) in cases {
            assert!(to_json(&bytes).is_err(), "{what}: {bytes:?}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut bytes = doc(&[]);
        for _ in 0..MAX_DEPTH + 5 {
            bytes = doc(&[(DOCUMENT, "d", bytes)]);
        }
        let error = to_json(&bytes).unwrap_err().to_string();
        assert!(error.contains("nest deeper"), "{error}");
    }

    #[test]
    fn integral_doubles_read_as_integers_and_others_as_floats() {
        let number = |value: f64| to_json(&doc(&[(DOUBLE, "n", value.to_le_bytes().to_vec())]));
        assert_eq!(number(-3.0).unwrap(), json!({"n": -3}));
        assert_eq!(number(0.25).unwrap(), json!({"n": 0.25}));
        assert_eq!(number(1e300).unwrap(), json!({"n": 1e300}));
        // NaN has no JSON form; it still reads without a panic.
        let _ = number(f64::NAN);
        let _ = number(f64::INFINITY);
    }
}
