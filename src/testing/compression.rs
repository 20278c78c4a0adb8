//! Compressed sync streams, as the PowerSync Service serves them (docs/sync-protocol.md
//! §1.3): the encoding is picked from the request's `Accept-Encoding`, and every line is
//! flushed through the encoder as it is sent, so a compressed stream stays live (a
//! keepalive or a single change reaches the client at once, not when a buffer fills).

use std::io::{self, Write};

use bytes::Bytes;

/// A content encoding of the sync stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    /// The encoding for a request's `Accept-Encoding` (zstd over gzip, as the service
    /// prefers it; a `q=0` entry refuses that encoding). `Identity` when `enabled` is off.
    pub(crate) fn negotiate(accept: Option<&str>, enabled: bool) -> Self {
        let Some(accept) = accept.filter(|_| enabled) else {
            return Self::Identity;
        };
        let offered = |name: &str| {
            accept.split(',').any(|entry| {
                let mut parts = entry.split(';').map(str::trim);
                let coding = parts.next().unwrap_or_default();
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                coding.eq_ignore_ascii_case(name) && !refused
            })
        };
        if offered("zstd") {
            Self::Zstd
        } else if offered("gzip") {
            Self::Gzip
        } else {
            Self::Identity
        }
    }

    /// The `Content-Encoding` header value (`None` for identity).
    pub(crate) fn header(self) -> Option<&'static str> {
        match self {
            Self::Identity => None,
            Self::Gzip => Some("gzip"),
            Self::Zstd => Some("zstd"),
        }
    }
}

/// Encodes a stream's lines one at a time.
pub(crate) enum LineEncoder {
    Identity,
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl LineEncoder {
    pub(crate) fn new(encoding: Encoding) -> io::Result<Self> {
        Ok(match encoding {
            Encoding::Identity => Self::Identity,
            Encoding::Gzip => Self::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            )),
            // Level 3 is zstd's default and what servers commonly use for streams.
            Encoding::Zstd => Self::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?),
        })
    }

    /// The bytes to send for `chunk` (the encoder flushed, so the client can decode all
    /// of it now).
    pub(crate) fn encode(&mut self, chunk: Bytes) -> io::Result<Bytes> {
        let out = match self {
            Self::Identity => return Ok(chunk),
            Self::Gzip(encoder) => {
                encoder.write_all(&chunk)?;
                encoder.flush()?;
                encoder.get_mut()
            }
            Self::Zstd(encoder) => {
                encoder.write_all(&chunk)?;
                encoder.flush()?;
                encoder.get_mut()
            }
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    /// The end of the stream (the gzip trailer, zstd's last frame block); empty for
    /// identity.
    pub(crate) fn finish(self) -> io::Result<Bytes> {
        Ok(Bytes::from(match self {
            Self::Identity => Vec::new(),
            Self::Gzip(encoder) => encoder.finish()?,
            Self::Zstd(encoder) => encoder.finish()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn accept_encoding_is_negotiated_like_the_service() {
        let pick = |accept| Encoding::negotiate(Some(accept), true);
        assert_eq!(pick("gzip, deflate, br"), Encoding::Gzip);
        assert_eq!(pick("zstd, gzip"), Encoding::Zstd);
        assert_eq!(pick("gzip;q=1.0, zstd;q=0"), Encoding::Gzip);
        assert_eq!(pick("br"), Encoding::Identity);
        assert_eq!(Encoding::negotiate(None, true), Encoding::Identity);
        assert_eq!(Encoding::negotiate(Some("zstd"), false), Encoding::Identity);
    }

    #[test]
    fn every_line_decodes_as_soon_as_it_is_sent() {
        for encoding in [Encoding::Gzip, Encoding::Zstd] {
            let mut encoder = LineEncoder::new(encoding).unwrap();
            let mut wire = Vec::new();
            for line in ["{\"a\":1}\n", "{\"b\":2}\n"] {
                wire.extend_from_slice(&encoder.encode(Bytes::from(line)).unwrap());
                // What was sent so far decodes to every line sent so far.
                let mut decoded = String::new();
                let partial: Box<dyn Read> = match encoding {
                    Encoding::Gzip => Box::new(flate2::read::GzDecoder::new(&wire[..])),
                    _ => Box::new(zstd::stream::read::Decoder::new(&wire[..]).unwrap()),
                };
                let _ = partial.take(1 << 20).read_to_string(&mut decoded);
                assert!(decoded.ends_with(line), "{encoding:?}: {decoded:?}");
            }
            wire.extend_from_slice(&encoder.finish().unwrap());
            let mut decoded = String::new();
            match encoding {
                Encoding::Gzip => flate2::read::GzDecoder::new(&wire[..])
                    .read_to_string(&mut decoded)
                    .unwrap(),
                _ => zstd::stream::read::Decoder::new(&wire[..])
                    .unwrap()
                    .read_to_string(&mut decoded)
                    .unwrap(),
            };
            assert_eq!(decoded, "{\"a\":1}\n{\"b\":2}\n");
        }
    }
}
