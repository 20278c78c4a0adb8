//! BSON sync streams, as the PowerSync Service serves them (docs/sync-protocol.md §1.3):
//! the framing is negotiated from the request's `Accept`, and each line is written as
//! one BSON document.
//!
//! The documents are written by [`crate::sync::bson_writer`].

pub(crate) use crate::sync::bson_writer::{DocumentWriter, encode_object};

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
                .fold(None, |best: Option<f32>, q| {
                    Some(best.map_or(q, |b| b.max(q)))
                })
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

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn accept_is_negotiated_preferring_bson_like_the_service() {
        let pick = |accept| StreamFormat::negotiate(Some(accept), true);
        assert_eq!(
            pick("application/vnd.powersync.bson-stream;q=0.9,application/x-ndjson;q=0.8"),
            StreamFormat::Bson
        );
        assert_eq!(
            pick("application/vnd.powersync.bson-stream"),
            StreamFormat::Bson
        );
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
        let expected =
            "1b 00 00 00 10 74 6f 6b 65 6e 5f 65 78 70 69 72 65 73 5f 69 6e 00 3c 00 00 00 00";
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex.join(" "), expected);
    }

    #[test]
    fn documents_read_back_as_the_json_they_were_written_from() {
        let value = json!({"checkpoint": {"last_op_id": "5", "write_checkpoint": null,
            "buckets": [{"bucket": "b", "checksum": -1, "count": 5_000_000_000i64, "priority": 3}],
            "ratio": 0.5, "ok": true, "streams": []}});
        let bytes = encode_object(&value).unwrap();
        let read = Value::deserialize(crate::sync::bson_reader::document(&bytes).unwrap()).unwrap();
        assert_eq!(read, value);
        assert!(encode_object(&json!([1])).is_none());
    }
}
