//! The HTTP client livesync sends requests with: reqwest on rustls with the `ring`
//! crypto provider (no OpenSSL, and no aws-lc C build), and capped reads of the small
//! answers a service gives besides the sync stream.

use serde_json::Value;

use crate::{Error, Result, USER_AGENT};

/// How much of an error response's body is read (the rest is dropped: a description
/// longer than this is not one a user reads).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// A client that sends livesync's `User-Agent`, followed by `extra` when given, and asks
/// for compressed bodies when `compressed` (native only: in the browser fetch decides).
///
/// Its TLS configuration is its own: `ring` and the platform's trust store, without
/// touching rustls's process-wide default provider, which stays the app's to install.
pub(crate) fn http_client_with(extra: Option<&str>, compressed: bool) -> Result<reqwest::Client> {
    let user_agent = match extra {
        Some(extra) => format!("{USER_AGENT} {extra}"),
        None => USER_AGENT.to_owned(),
    };
    let builder = reqwest::Client::builder().user_agent(user_agent);
    #[cfg(target_arch = "wasm32")]
    let _ = compressed;
    // In the browser, fetch owns TLS and sockets.
    #[cfg(not(target_arch = "wasm32"))]
    let builder = builder
        // Sends `Accept-Encoding: gzip, zstd` and decodes the body as it streams.
        .gzip(compressed)
        .zstd(compressed)
        .tls_backend_preconfigured(tls_config()?)
        // A dead peer must not hold a request forever: bounded connects, and TCP
        // keepalives to notice half-open connections (the sync stream also has its own
        // idle timeout).
        .connect_timeout(std::time::Duration::from_secs(10))
        .tcp_keepalive(std::time::Duration::from_secs(30));
    builder
        .build()
        .map_err(|source| Error::transport(String::new(), source))
}

/// rustls on `ring`, verifying servers against the platform's roots.
#[cfg(not(target_arch = "wasm32"))]
fn tls_config() -> Result<rustls::ClientConfig> {
    use std::sync::Arc;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
        .map_err(|source| Error::Tls(source.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| Error::Tls(source.to_string()))?
        // The platform verifier is rustls's documented way to use the OS trust store;
        // "dangerous" only names the custom-verifier entry point.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// [`http_client_with`] without an app-specific user agent.
#[cfg_attr(not(feature = "testing"), allow(dead_code))] // used by the test service
pub(crate) fn http_client() -> Result<reqwest::Client> {
    http_client_with(None, true)
}

/// Sends `request` (to `url`, named in errors); a transport failure becomes
/// [`Error::Transport`] and a status other than 2xx an [`Error::HttpStatus`].
pub(crate) async fn send(url: &str, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
    let response = crate::runtime::with_reactor(request.send())
        .await
        .map_err(|source| Error::transport(url.to_owned(), source))?;
    if !response.status().is_success() {
        return Err(error_from_response(url.to_owned(), response).await);
    }
    Ok(response)
}

/// Turns a non-success response into [`Error::HttpStatus`], with the code and
/// description of a PowerSync error body (`{"error": {"code", "description"}}`) when
/// there is one, else the body text.
pub(crate) async fn error_from_response(url: String, response: reqwest::Response) -> Error {
    let status = response.status().as_u16();
    let text = match read_capped(response, MAX_ERROR_BODY_BYTES).await {
        Ok(Capped::Whole(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(Capped::Truncated(bytes)) => {
            format!("{}… (truncated)", String::from_utf8_lossy(&bytes))
        }
        // The status says what went wrong even when the body cannot be read.
        Err(_) => String::new(),
    };
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Error::HttpStatus {
        url,
        status,
        code: body["error"]["code"].as_str().map(str::to_owned),
        description: body["error"]["description"]
            .as_str()
            .map_or(text.clone(), str::to_owned),
    }
}

/// A body read by [`read_capped`].
pub(crate) enum Capped {
    /// The whole body.
    Whole(Vec<u8>),
    /// The first `limit` bytes of a longer body (the rest was not read).
    Truncated(Vec<u8>),
}

/// Reads at most `limit` bytes of `response`'s body, chunk by chunk (never the whole of
/// a body that a faulty or hostile service makes endless).
pub(crate) async fn read_capped(
    response: reqwest::Response,
    limit: usize,
) -> std::result::Result<Capped, reqwest::Error> {
    use futures::StreamExt;

    let mut body = Vec::new();
    // The byte stream, not `chunk()`: the same on native and in the browser; polled with
    // a reactor for the sockets whatever executor runs it.
    let mut chunks = crate::runtime::stream_with_reactor(response.bytes_stream());
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok(Capped::Truncated(body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Capped::Whole(body))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server on 127.0.0.1 that answers every request with `head` and then `chunk`
    /// repeated without end (chunked encoding): a body no client may read whole.
    pub(crate) async fn endless_server(head: &'static str, chunk: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    if socket.write_all(head.as_bytes()).await.is_err() || chunk.is_empty() {
                        return;
                    }
                    let framed =
                        [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
                    // Stops when the client hangs up.
                    while socket.write_all(&framed).await.is_ok() {}
                });
            }
        });
        format!("http://{address}")
    }

    #[tokio::test]
    async fn an_endless_error_body_is_read_up_to_the_cap() {
        let url = endless_server(
            "HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n",
            &[b'x'; 8192],
        )
        .await;
        let client = http_client().unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), send(&url, client.get(&url)))
            .await
            .expect("the error body is not read to its (missing) end");
        let Err(Error::HttpStatus {
            status,
            description,
            ..
        }) = answer
        else {
            panic!("expected an HTTP status error, got {answer:?}");
        };
        assert_eq!(status, 500);
        assert!(
            description.ends_with("… (truncated)"),
            "{}",
            &description[description.len() - 40..]
        );
        assert!(description.len() <= MAX_ERROR_BODY_BYTES + 20);
    }

    #[tokio::test]
    async fn a_client_leaves_the_process_wide_rustls_provider_to_the_app() {
        let _client = http_client().unwrap();
        // Nothing else in this test binary installs one.
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }

    #[tokio::test]
    async fn capped_reads_keep_a_short_body_whole() {
        let url = endless_server("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", b"").await;
        let response = http_client().unwrap().get(&url).send().await.unwrap();
        let Capped::Whole(body) = read_capped(response, 16).await.unwrap() else {
            panic!("a 5-byte body fits in 16");
        };
        assert_eq!(body, b"hello");
    }
}
