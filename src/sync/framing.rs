//! Cuts a sync stream's body into parsed sync lines, by the framing its response's
//! `Content-Type` names (docs/sync-protocol.md §1.3): NDJSON lines or BSON documents.

use super::documents::DocumentSplitter;
use super::lines::LineSplitter;
use super::protocol::SyncLine;
use crate::{Error, Result};

/// The media type of a BSON sync stream.
pub(crate) const BSON_STREAM: &str = "application/vnd.powersync.bson-stream";

/// The `Accept` header of a client that prefers BSON, as the official SDKs send it.
pub(crate) const ACCEPT_BSON_OR_NDJSON: &str =
    "application/vnd.powersync.bson-stream;q=0.9,application/x-ndjson;q=0.8";

/// The `Accept` header of an NDJSON-only client.
pub(crate) const ACCEPT_NDJSON: &str = "application/x-ndjson";

/// How a sync stream's lines are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Ndjson,
    Bson,
}

impl Framing {
    /// The framing a response's `Content-Type` names: BSON when it contains the BSON
    /// stream type, NDJSON for anything else (also a missing header).
    pub(crate) fn of_content_type(content_type: Option<&str>) -> Self {
        match content_type {
            Some(value) if value.to_ascii_lowercase().contains(BSON_STREAM) => Self::Bson,
            _ => Self::Ndjson,
        }
    }
}

/// Splits and parses the lines of one sync stream.
#[derive(Debug)]
pub(crate) enum LineReader {
    Ndjson { lines: LineSplitter, max: usize },
    Bson(DocumentSplitter),
}

impl LineReader {
    /// A reader for `framing` accepting lines (or documents) of at most `max` bytes.
    pub(crate) fn new(framing: Framing, max: usize) -> Self {
        match framing {
            Framing::Ndjson => Self::Ndjson {
                lines: LineSplitter::default(),
                max,
            },
            Framing::Bson => Self::Bson(DocumentSplitter::new(max)),
        }
    }

    /// Appends a chunk from the network.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        match self {
            Self::Ndjson { lines, .. } => lines.push(chunk),
            Self::Bson(documents) => documents.push(chunk),
        }
    }

    /// The next complete line, parsed, with its size in bytes. At the end of the body
    /// (`ended`), an unterminated NDJSON remainder is the last line, and a BSON document
    /// cut short is an error.
    ///
    /// # Errors
    /// [`Error::Protocol`] for a line that does not parse, one longer than the limit,
    /// or a stream ending inside a BSON document.
    pub(crate) fn next_line(&mut self, ended: bool) -> Result<Option<(SyncLine, usize)>> {
        match self {
            Self::Ndjson { lines, max } => {
                let line = if ended {
                    lines.finish()
                } else {
                    lines.next_line()
                };
                let Some(line) = line else {
                    // A line is buffered whole: this bounds what one line can take.
                    if lines.pending_len() > *max {
                        return Err(line_too_long(*max));
                    }
                    return Ok(None);
                };
                if line.len() > *max {
                    return Err(line_too_long(*max));
                }
                Ok(Some((SyncLine::parse(line)?, line.len())))
            }
            Self::Bson(documents) => {
                let document = if ended {
                    documents.finish()?
                } else {
                    documents.next_document()?
                };
                document
                    .map(|document| Ok((SyncLine::parse_bson(document)?, document.len())))
                    .transpose()
            }
        }
    }
}

fn line_too_long(max: usize) -> Error {
    Error::Protocol(format!(
        "a sync line exceeded {max} bytes (SyncOptions::max_line_bytes; raise it if the \
         service sends single rows this large)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::bson_reader::tests::{doc, string};

    #[test]
    fn the_content_type_picks_the_framing() {
        let of = |value| Framing::of_content_type(Some(value));
        assert_eq!(of("application/vnd.powersync.bson-stream"), Framing::Bson);
        assert_eq!(
            of("Application/VND.PowerSync.BSON-Stream; charset=binary"),
            Framing::Bson
        );
        assert_eq!(of("application/x-ndjson"), Framing::Ndjson);
        assert_eq!(of("text/plain"), Framing::Ndjson);
        assert_eq!(Framing::of_content_type(None), Framing::Ndjson);
    }

    #[test]
    fn both_framings_yield_the_same_lines() {
        let json = b"{\"token_expires_in\":60}\n{\"checkpoint_complete\":{\"last_op_id\":\"3\"}}";
        let bson = [
            doc(&[(0x10, "token_expires_in", 60i32.to_le_bytes().to_vec())]),
            doc(&[(
                0x03,
                "checkpoint_complete",
                doc(&[(0x02, "last_op_id", string("3"))]),
            )]),
        ]
        .concat();
        for (framing, bytes) in [(Framing::Ndjson, &json[..]), (Framing::Bson, &bson[..])] {
            let mut reader = LineReader::new(framing, 1024);
            let mut lines = Vec::new();
            for chunk in bytes.chunks(3) {
                reader.push(chunk);
                while let Some((line, _)) = reader.next_line(false).unwrap() {
                    lines.push(line);
                }
            }
            while let Some((line, _)) = reader.next_line(true).unwrap() {
                lines.push(line);
            }
            assert_eq!(
                lines,
                [
                    SyncLine::TokenExpiresIn(60),
                    SyncLine::CheckpointComplete {
                        last_op_id: crate::sync::protocol::OpId(3)
                    }
                ],
                "{framing:?}"
            );
        }
    }

    #[test]
    fn an_endless_ndjson_line_is_refused_at_the_limit() {
        let mut reader = LineReader::new(Framing::Ndjson, 16);
        reader.push(&[b'x'; 17]);
        let error = reader.next_line(false).unwrap_err().to_string();
        assert!(error.contains("max_line_bytes"), "{error}");
    }
}
