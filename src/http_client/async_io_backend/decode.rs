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
}
