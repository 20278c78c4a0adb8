//! Splits a byte stream into NDJSON lines in time linear in its length.
//!
//! Network chunks split lines anywhere — also inside a multi-byte UTF-8 character — so
//! bytes are buffered and only complete lines are decoded. Each byte is scanned for `\n`
//! once: the scan resumes where the previous one stopped instead of starting over at the
//! beginning of a long partial line (the quadratic trap of re-scanning the buffer on
//! every chunk).

/// Accumulates chunks and hands out complete lines.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    buffer: Vec<u8>,
    /// Start of the first line not handed out yet.
    start: usize,
    /// Bytes before this offset are known to hold no `\n` (after `start`).
    scanned: usize,
}

impl LineSplitter {
    /// Appends a chunk from the network.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        // Drop consumed bytes once they dominate, so the buffer does not grow without
        // bound; amortised O(1) per byte.
        if self.start > 0 && self.start >= self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete line (without its `\n`); empty lines are skipped.
    pub(crate) fn next_line(&mut self) -> Option<&[u8]> {
        loop {
            let from = self.scanned.max(self.start);
            match self.buffer[from..].iter().position(|b| *b == b'\n') {
                None => {
                    self.scanned = self.buffer.len();
                    return None;
                }
                Some(offset) => {
                    let end = from + offset;
                    let line_start = self.start;
                    self.start = end + 1;
                    self.scanned = self.start;
                    if end > line_start {
                        return Some(&self.buffer[line_start..end]);
                    }
                }
            }
        }
    }

    /// At end of stream: a non-empty unterminated remainder is one last line.
    pub(crate) fn finish(&mut self) -> Option<&[u8]> {
        let rest = &self.buffer[self.start..];
        let line_start = self.start;
        self.start = self.buffer.len();
        self.scanned = self.start;
        (!rest.is_empty()).then(|| &self.buffer[line_start..])
    }

    /// Bytes of the line currently being received (to cap a runaway line).
    pub(crate) fn pending_len(&self) -> usize {
        self.buffer.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(splitter: &mut LineSplitter) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = splitter.next_line() {
            lines.push(String::from_utf8(line.to_vec()).unwrap());
        }
        lines
    }

    #[test]
    fn lines_split_across_chunks_and_inside_a_utf8_character() {
        let text = "{\"a\":\"é\"}\n\n{\"b\":\"日本\"}\n{\"c\":1}";
        let bytes = text.as_bytes();
        // Every possible split point, including inside the multi-byte characters.
        for split in 0..=bytes.len() {
            let mut splitter = LineSplitter::default();
            splitter.push(&bytes[..split]);
            let mut lines = collect(&mut splitter);
            splitter.push(&bytes[split..]);
            lines.extend(collect(&mut splitter));
            if let Some(last) = splitter.finish() {
                lines.push(String::from_utf8(last.to_vec()).unwrap());
            }
            assert_eq!(
                lines,
                ["{\"a\":\"é\"}", "{\"b\":\"日本\"}", "{\"c\":1}"],
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_very_long_line_in_tiny_chunks_is_scanned_once() {
        // 4 MiB line in 1-byte... 64-byte chunks: quadratic rescanning would take
        // ~10^11 steps; linear finishes instantly.
        let line = vec![b'x'; 4 << 20];
        let mut splitter = LineSplitter::default();
        for chunk in line.chunks(64) {
            splitter.push(chunk);
            assert!(splitter.next_line().is_none());
        }
        assert_eq!(splitter.pending_len(), line.len());
        splitter.push(b"\n");
        assert_eq!(splitter.next_line().map(<[u8]>::len), Some(line.len()));
        assert_eq!(splitter.pending_len(), 0);
        assert!(splitter.finish().is_none());
    }

    #[test]
    fn consumed_bytes_are_released() {
        let mut splitter = LineSplitter::default();
        for _ in 0..10_000 {
            splitter.push(b"{\"token_expires_in\":30}\n");
            assert!(splitter.next_line().is_some());
        }
        assert!(splitter.buffer.capacity() < 4096, "buffer stays small");
    }
}
