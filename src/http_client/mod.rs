//! The HTTP seam livesync sends its requests through: one [`HttpClient`] with two
//! native backends behind it, so the sync engine and the connectors never know which one
//! they talk to, and capped reads of the small answers a service gives besides the sync
//! stream.
//!
//! - `reqwest_backend.rs`: reqwest on rustls (`ring`). Its sockets are tokio's, so it
//!   is used where a tokio runtime drives the requests: under [`Runtime::tokio`], and
//!   in the browser (where reqwest is `fetch`).
//! - `async_io_backend.rs` (feature `async-io-http`, implied by `smol`; native only):
//!   HTTP/1.1 on hyper's client over `async-io` sockets, for every other runtime, so a
//!   smol or custom-executor app runs no tokio runtime at all. Without the feature those
//!   runtimes use reqwest too, on a tokio reactor thread of livesync's own
//!   (`runtime/http_io.rs`).
//!
//! Both build the same per-client TLS configuration ([`tls_config`]), ask for gzip and
//! zstd when told to and decode as the bytes arrive, and report failures as
//! [`Error::Transport`] with the same [`TransportFailure`](crate::TransportFailure)
//! classification and the root cause in the message.

#[cfg(all(feature = "async-io-http", not(target_arch = "wasm32")))]
mod async_io_backend;
mod reqwest_backend;

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::Value;

use crate::runtime::Runtime;
use crate::{Error, Result, USER_AGENT};

/// How much of an error response's body is read (the rest is dropped: a description
/// longer than this is not one a user reads).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// A response body: its bytes as they arrive (already decompressed), each failure an
/// [`Error::Transport`] naming the request's URL.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Body = futures::stream::BoxStream<'static, Result<Bytes>>;
/// A response body: its bytes as they arrive, each failure an [`Error::Transport`]
/// naming the request's URL. (`fetch`'s streams are `!Send`.)
#[cfg(target_arch = "wasm32")]
pub(crate) type Body = futures::stream::LocalBoxStream<'static, Result<Bytes>>;

/// A request to send with an [`HttpClient`].
#[derive(Debug)]
pub(crate) struct Request {
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Option<Bytes>,
    timeout: Option<Duration>,
}

impl Request {
    pub(crate) fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url.into())
    }

    pub(crate) fn post(url: impl Into<String>) -> Self {
        Self::new(Method::POST, url.into())
    }

    fn new(method: Method, url: String) -> Self {
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
        }
    }

    pub(crate) fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Adds `headers` (replacing those of the same name).
    // Used by `HttpConnector`, which is native only.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn headers(mut self, headers: HeaderMap) -> Self {
        for (name, value) in headers {
            if let Some(name) = name {
                self.headers.insert(name, value);
            }
        }
        self
    }

    /// `body` as JSON, with its content type.
    pub(crate) fn json(mut self, body: &Value) -> Self {
        self.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.body = Some(Bytes::from(body.to_string()));
        self
    }

    /// Fails the request with [`TransportFailure::Timeout`](crate::TransportFailure) when
    /// it has not completed (response read included) within `timeout`.
    // Used by `HttpConnector`, which is native only.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A response: its status, the URL it answers (named in errors), its `Content-Type`
/// and its body.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) url: String,
    /// The `Content-Type` header, when it is present and text (it picks the sync
    /// stream's framing).
    pub(crate) content_type: Option<String>,
    pub(crate) body: Body,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("url", &self.url)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// livesync's HTTP client: cheap to clone, one TLS configuration per client (the
/// process-wide rustls provider stays the app's to install).
#[derive(Clone)]
pub(crate) struct HttpClient {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Reqwest(reqwest::Client),
    /// No tokio: the async-io backend.
    #[cfg(all(feature = "async-io-http", not(target_arch = "wasm32")))]
    AsyncIo(async_io_backend::Client),
    /// Decided per request: reqwest when a tokio runtime is current, else the async-io
    /// backend (for connectors, which are not told the database's runtime).
    #[cfg(all(feature = "async-io-http", not(target_arch = "wasm32")))]
    Ambient {
        reqwest: reqwest::Client,
        async_io: async_io_backend::Client,
    },
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.backend {
            Backend::Reqwest(_) => "reqwest",
            #[cfg(all(feature = "async-io-http", not(target_arch = "wasm32")))]
            Backend::AsyncIo(_) => "async-io",
            #[cfg(all(feature = "async-io-http", not(target_arch = "wasm32")))]
            Backend::Ambient { .. } => "reqwest under tokio, else async-io",
        };
        f.debug_struct("HttpClient")
            .field("backend", &backend)
            .finish()
    }
}

/// What every client of livesync's sends and accepts.
struct ClientSettings {
    user_agent: String,
    /// Ask for gzip and zstd bodies (native only: in the browser fetch decides).
    compressed: bool,
}

impl ClientSettings {
    fn new(extra: Option<&str>, compressed: bool) -> Self {
        let user_agent = match extra {
            Some(extra) => format!("{USER_AGENT} {extra}"),
            None => USER_AGENT.to_owned(),
        };
        Self {
            user_agent,
            compressed,
        }
    }
}

impl HttpClient {
    /// The client for a database's sync requests: sends livesync's `User-Agent`,
    /// followed by `extra` when given, asks for compressed bodies when `compressed`,
    /// and uses the backend that fits `runtime` (reqwest under tokio, the async-io
    /// backend under any other runtime when it is compiled in). Its timers are the
    /// runtime's.
    pub(crate) fn for_runtime(
        runtime: &Runtime,
        extra: Option<&str>,
        compressed: bool,
    ) -> Result<Self> {
        let settings = ClientSettings::new(extra, compressed);
        #[cfg(all(feature = "async-io-http", not(target_arch = "wasm32")))]
        if !runtime.is_tokio() {
            let client = async_io_backend::Client::new(&settings, runtime.clone())?;
            return Ok(Self {
                backend: Backend::AsyncIo(client),
            });
        }
        let _ = runtime;
        Ok(Self {
            backend: Backend::Reqwest(reqwest_backend::client(&settings)?),
        })
    }

    /// A client for code that is not told a database's runtime (the connectors): each
    /// request goes through reqwest when a tokio runtime is current, else through the
    /// async-io backend when it is compiled in (else reqwest on livesync's reactor
    /// thread).
    // Used by `HttpConnector` (native only) and the test service's connector.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn ambient() -> Result<Self> {
        let settings = ClientSettings::new(None, true);
        let reqwest = reqwest_backend::client(&settings)?;
        #[cfg(all(feature = "async-io-http", not(target_arch = "wasm32")))]
        return Ok(Self {
            backend: Backend::Ambient {
                reqwest,
                async_io: async_io_backend::Client::new(&settings, Runtime::none())?,
            },
        });
        #[cfg(not(all(feature = "async-io-http", not(target_arch = "wasm32"))))]
        Ok(Self {
            backend: Backend::Reqwest(reqwest),
        })
    }

    /// Sends `request` and returns the response whatever its status; a transport
    /// failure is [`Error::Transport`].
    pub(crate) async fn execute(&self, request: Request) -> Result<Response> {
        match &self.backend {
            Backend::Reqwest(client) => reqwest_backend::execute(client, request).await,
            // Boxed: the connect, TLS and handshake futures inside are large, and would
            // otherwise be part of every future awaiting a request (the download loop's
            // among them, whose polls then need a deep stack in debug builds).
            #[cfg(all(feature = "async-io-http", not(target_arch = "wasm32")))]
            Backend::AsyncIo(client) => Box::pin(client.execute(request)).await,
            #[cfg(all(feature = "async-io-http", not(target_arch = "wasm32")))]
            Backend::Ambient { reqwest, async_io } => {
                if tokio::runtime::Handle::try_current().is_ok() {
                    reqwest_backend::execute(reqwest, request).await
                } else {
                    Box::pin(async_io.execute(request)).await
                }
            }
        }
    }

    /// Sends `request`; a transport failure becomes [`Error::Transport`] and a status
    /// other than 2xx an [`Error::HttpStatus`].
    pub(crate) async fn send(&self, request: Request) -> Result<Response> {
        let response = self.execute(request).await?;
        if !(200..300).contains(&response.status) {
            return Err(error_from_response(response).await);
        }
        Ok(response)
    }
}

/// rustls on `ring`, verifying servers against the platform's roots: the TLS
/// configuration of every client, built for that client alone (rustls's process-wide
/// default provider is left untouched).
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

/// Turns a non-success response into [`Error::HttpStatus`], with the code and
/// description of a PowerSync error body (`{"error": {"code", "description"}}`) when
/// there is one, else the body text.
pub(crate) async fn error_from_response(response: Response) -> Error {
    let status = response.status;
    let url = response.url.clone();
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
pub(crate) async fn read_capped(response: Response, limit: usize) -> Result<Capped> {
    let mut body = Vec::new();
    let mut chunks = response.body;
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

/// The URL of `url` for error messages: without its query string (which may carry ids).
fn without_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(base, _)| base)
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
        let client = HttpClient::ambient().unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), client.send(Request::get(&url)))
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
        let _client = HttpClient::ambient().unwrap();
        // Nothing else in this test binary installs one.
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }

    #[tokio::test]
    async fn capped_reads_keep_a_short_body_whole() {
        let url = endless_server("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", b"").await;
        let response = HttpClient::ambient()
            .unwrap()
            .execute(Request::get(&url))
            .await
            .unwrap();
        let Capped::Whole(body) = read_capped(response, 16).await.unwrap() else {
            panic!("a 5-byte body fits in 16");
        };
        assert_eq!(body, b"hello");
    }
}
