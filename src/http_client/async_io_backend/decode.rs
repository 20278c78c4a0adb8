//! Decoding a gzip or zstd response body as its bytes arrive (the codecs reqwest's
//! decoding uses, through their `futures` I/O face): each decoded chunk is handed on as
//! soon as the decoder produces it, so a compressed sync stream's lines are not held
//! back waiting for more input.

use std::io;

use bytes::Bytes;
use futures::io::{AsyncRead, AsyncReadExt};
use futures::{StreamExt, TryStreamExt};

use super::super::Body;
use crate::{Error, TransportFailure};

/// A body's `Content-Encoding` that this backend decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Gzip,
    Zstd,
}

impl Encoding {
    /// The encoding a `Content-Encoding` value names, if it is one this backend asks for.
    pub(super) fn of(header: &str) -> Option<Self> {
        match header.trim() {
            value if value.eq_ignore_ascii_case("gzip") => Some(Self::Gzip),
            value if value.eq_ignore_ascii_case("zstd") => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// The largest decoded chunk handed on at once.
const CHUNK: usize = 32 * 1024;

/// `body` decoded from `encoding`. A failure of the body itself comes out as it went
/// in; one of the decoder (corrupt data) is a [`TransportFailure::Body`].
pub(super) fn decoded(body: Body, encoding: Encoding, url: String) -> Body {
    // The body's own errors cross the decoder as I/O errors and are unwrapped after it.
    let reader = body.map_err(io::Error::other).into_async_read();
    let decoder: std::pin::Pin<Box<dyn AsyncRead + Send>> = match encoding {
        Encoding::Gzip => Box::pin(async_compression::futures::bufread::GzipDecoder::new(
            reader,
        )),
        Encoding::Zstd => Box::pin(async_compression::futures::bufread::ZstdDecoder::new(
            reader,
        )),
    };
    futures::stream::unfold(Some(decoder), move |decoder| {
        let url = url.clone();
        async move {
            let mut decoder = decoder?;
            let mut chunk = vec![0; CHUNK];
            match decoder.read(&mut chunk).await {
                Ok(0) => None,
                Ok(read) => {
                    chunk.truncate(read);
                    Some((Ok(Bytes::from(chunk)), Some(decoder)))
                }
                Err(error) => Some((Err(unwrapped(error, url)), None)),
            }
        }
    })
    .boxed()
}

/// The body's error that crossed the decoder, or the decoder's own.
fn unwrapped(error: io::Error, url: String) -> Error {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
    {
        Some(inner) => inner.clone(),
        None => Error::transport_failure(url, TransportFailure::Body, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_encodings_are_recognised_case_insensitively() {
        assert_eq!(Encoding::of("gzip"), Some(Encoding::Gzip));
        assert_eq!(Encoding::of(" ZSTD "), Some(Encoding::Zstd));
        assert_eq!(Encoding::of("br"), None);
        assert_eq!(Encoding::of("identity"), None);
    }

    #[test]
    fn a_corrupt_body_is_a_body_failure_and_a_failed_body_keeps_its_error() {
        futures::executor::block_on(async {
            let corrupt: Body =
                futures::stream::iter([Ok(Bytes::from_static(b"not gzip at all"))]).boxed();
            let mut out = decoded(corrupt, Encoding::Gzip, "http://h/x".into());
            let error = out.next().await.unwrap().unwrap_err();
            assert!(
                matches!(&error, Error::Transport { kind: TransportFailure::Body, url, .. } if url == "http://h/x"),
                "{error}"
            );
            assert!(out.next().await.is_none());

            let failing: Body = futures::stream::iter([Err(Error::Protocol("cut".into()))]).boxed();
            let mut out = decoded(failing, Encoding::Zstd, "http://h/x".into());
            let error = out.next().await.unwrap().unwrap_err();
            assert!(
                matches!(&error, Error::Protocol(m) if m == "cut"),
                "{error}"
            );
        });
    }

    /// The first line of a compressed body that the encoder flushed comes out before the
    /// rest of the body exists.
    #[cfg(feature = "testing")]
    #[test]
    fn flushed_lines_come_out_before_the_body_ends() {
        use std::io::Write;

        let first = b"{\"checkpoint\": 1}\n";
        let gzip = {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(first).unwrap();
            encoder.flush().unwrap();
            encoder.get_ref().clone()
        };
        let zstd = {
            let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            encoder.write_all(first).unwrap();
            encoder.flush().unwrap();
            encoder.get_ref().clone()
        };
        for (encoding, bytes) in [(Encoding::Gzip, gzip), (Encoding::Zstd, zstd)] {
            // The flushed bytes, then a body that never sends more.
            let body: Body = futures::stream::iter([Ok(Bytes::from(bytes))])
                .chain(futures::stream::pending())
                .boxed();
            let mut out = decoded(body, encoding, "http://h/x".into());
            let chunk = futures::executor::block_on(out.next()).unwrap().unwrap();
            assert_eq!(&chunk[..], first, "{encoding:?}");
        }
    }

    #[cfg(feature = "testing")]
    #[test]
    fn a_whole_gzip_body_decodes_across_small_chunks() {
        use std::io::Write;

        let text: String = (0..5_000).map(|i| format!("{{\"line\": {i}}}\n")).collect();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        let compressed = encoder.finish().unwrap();
        let chunks: Vec<crate::Result<Bytes>> = compressed
            .chunks(100)
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect();
        let out = decoded(
            futures::stream::iter(chunks).boxed(),
            Encoding::Gzip,
            "u".into(),
        );
        let decoded: Vec<Bytes> = futures::executor::block_on(out.map(|c| c.unwrap()).collect());
        assert_eq!(decoded.concat(), text.as_bytes());
    }
}
