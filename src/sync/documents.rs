//! Splits a byte stream into BSON documents (docs/sync-protocol.md §1.3, "BSON framing")
//! in time linear in its length and memory bounded by the largest document allowed.
//!
//! The documents follow each other with no separator; each starts with its total length
//! as a little-endian `i32` that counts the four length bytes and the trailing `0x00`.
//! Network chunks split documents anywhere, so bytes are buffered until a whole document
//! is there. The length is checked as soon as its four bytes arrive: a document longer
//! than the limit fails the stream before any of it is buffered, and one shorter than
//! the smallest document (5 bytes) means the stream is corrupt or not BSON at all.

use crate::{Error, Result};

/// Accumulates chunks and hands out complete documents.
#[derive(Debug)]
pub(crate) struct DocumentSplitter {
    buffer: Vec<u8>,
    /// Start of the first document not handed out yet.
    start: usize,
    /// The largest document accepted (`SyncOptions::max_line_bytes`).
    max: usize,
}

impl DocumentSplitter {
    /// A splitter refusing documents longer than `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            buffer: Vec::new(),
            start: 0,
            max,
        }
    }

    /// Appends a chunk from the network.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        // Drop consumed bytes once they dominate, so the buffer does not grow without
        // bound; amortised O(1) per byte.
        if self.start > 0 && self.start >= self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete document (length prefix and terminator included); `None` until
    /// one has fully arrived.
    ///
    /// # Errors
    /// [`Error::Protocol`] when the next document declares a length below 5 or above
    /// the limit.
    pub(crate) fn next_document(&mut self) -> Result<Option<&[u8]>> {
        let pending = &self.buffer[self.start..];
        let Some(prefix) = pending.get(..4) else {
            return Ok(None);
        };
        let declared = i32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let length = match usize::try_from(declared) {
            Ok(length) if length >= 5 => length,
            _ => {
                return Err(Error::Protocol(format!(
                    "a BSON document of the sync stream declares a length of {declared} bytes \
                     (at least 5): the stream is corrupt or not BSON"
                )));
            }
        };
        if length > self.max {
            return Err(Error::Protocol(format!(
                "a BSON document of the sync stream declares {length} bytes, more than \
                 {} (SyncOptions::max_line_bytes; raise it if the service sends single rows \
                 this large)",
                self.max
            )));
        }
        if pending.len() < length {
            return Ok(None);
        }
        let document_start = self.start;
        self.start += length;
        Ok(Some(&self.buffer[document_start..self.start]))
    }

    /// At end of stream: a document still complete in the buffer, else `None`.
    ///
    /// # Errors
    /// [`Error::Protocol`] when the stream ended inside a document (or in a document
    /// whose length is refused).
    pub(crate) fn finish(&mut self) -> Result<Option<&[u8]>> {
        let received = self.buffer.len() - self.start;
        if received == 0 {
            return Ok(None);
        }
        let start = self.start;
        let complete = self.next_document()?.map(<[u8]>::len);
        match complete {
            Some(length) => Ok(Some(&self.buffer[start..start + length])),
            None => {
                let declared = self.buffer.get(start..start + 4).map_or_else(
                    || "its length prefix".to_owned(),
                    |prefix| {
                        let length =
                            i32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                        format!("{length} bytes")
                    },
                );
                // Nothing more will come: the rest is not handed out again.
                self.start = self.buffer.len();
                Err(Error::Protocol(format!(
                    "the sync stream ended in the middle of a BSON document ({received} bytes \
                     received of {declared})"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document of `len` bytes (only the framing is valid BSON).
    fn document(len: usize, fill: u8) -> Vec<u8> {
        let mut bytes = (len as i32).to_le_bytes().to_vec();
        bytes.resize(len - 1, fill);
        bytes.push(0);
        bytes
    }

    fn drain(splitter: &mut DocumentSplitter, out: &mut Vec<Vec<u8>>) {
        while let Some(document) = splitter.next_document().unwrap() {
            out.push(document.to_vec());
        }
    }

    #[test]
    fn documents_split_at_every_byte_boundary_come_out_whole() {
        let documents = [document(5, 0), document(27, 1), document(300, 2)];
        let stream = documents.concat();
        for first in 0..=stream.len() {
            for second in first..=stream.len() {
                let mut splitter = DocumentSplitter::new(1024);
                let mut out = Vec::new();
                for chunk in [&stream[..first], &stream[first..second], &stream[second..]] {
                    splitter.push(chunk);
                    drain(&mut splitter, &mut out);
                }
                assert!(splitter.finish().unwrap().is_none());
                assert_eq!(out, documents, "split at {first} and {second}");
            }
        }
    }

    #[test]
    fn several_documents_in_one_chunk_and_byte_by_byte() {
        let documents: Vec<Vec<u8>> = (5..40).map(|len| document(len, len as u8)).collect();
        let stream = documents.concat();
        let mut splitter = DocumentSplitter::new(1024);
        let mut out = Vec::new();
        splitter.push(&stream);
        drain(&mut splitter, &mut out);
        assert_eq!(out, documents);

        let mut splitter = DocumentSplitter::new(1024);
        let mut out = Vec::new();
        for byte in &stream {
            splitter.push(std::slice::from_ref(byte));
            drain(&mut splitter, &mut out);
        }
        assert_eq!(out, documents);
        assert!(
            splitter.buffer.capacity() < 1024,
            "consumed bytes are released"
        );
    }

    #[test]
    fn end_of_stream_inside_a_document_is_a_protocol_error() {
        let stream = [document(10, 1), document(20, 2)].concat();
        for cut in 1..stream.len() {
            if cut == 10 {
                continue; // a boundary
            }
            let mut splitter = DocumentSplitter::new(1024);
            splitter.push(&stream[..cut]);
            let mut out = Vec::new();
            drain(&mut splitter, &mut out);
            let error = splitter.finish().unwrap_err().to_string();
            assert!(
                error.contains("ended in the middle"),
                "cut at {cut}: {error}"
            );
        }
        let mut splitter = DocumentSplitter::new(1024);
        splitter.push(&stream[..10]);
        assert!(splitter.next_document().unwrap().is_some());
        assert!(
            splitter.finish().unwrap().is_none(),
            "a boundary ends cleanly"
        );
    }

    #[test]
    fn lengths_below_five_are_refused() {
        for declared in [-1i32, 0, 4, i32::MIN] {
            let mut splitter = DocumentSplitter::new(1024);
            splitter.push(&declared.to_le_bytes());
            let error = splitter.next_document().unwrap_err().to_string();
            assert!(error.contains("at least 5"), "{declared}: {error}");
        }
    }

    #[test]
    fn oversized_lengths_are_refused_before_the_document_is_buffered() {
        let mut splitter = DocumentSplitter::new(64);
        assert!(splitter.next_document().unwrap().is_none());
        splitter.push(&65i32.to_le_bytes());
        let error = splitter.next_document().unwrap_err().to_string();
        assert!(error.contains("max_line_bytes"), "{error}");
        let mut splitter = DocumentSplitter::new(64);
        splitter.push(&document(64, 1));
        assert_eq!(splitter.next_document().unwrap().map(<[u8]>::len), Some(64));
        let mut splitter = DocumentSplitter::new(usize::MAX);
        splitter.push(&i32::MAX.to_le_bytes());
        assert!(
            splitter.next_document().unwrap().is_none(),
            "waits for the rest"
        );
    }

    #[test]
    fn a_large_document_in_tiny_chunks_takes_linear_time() {
        let large = document(8 << 20, 7);
        let mut splitter = DocumentSplitter::new(16 << 20);
        for chunk in large.chunks(64) {
            splitter.push(chunk);
            if let Some(document) = splitter.next_document().unwrap() {
                assert_eq!(document.len(), large.len());
            }
        }
        assert!(splitter.finish().unwrap().is_none());
    }
}
