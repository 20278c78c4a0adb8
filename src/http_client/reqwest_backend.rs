//! The reqwest backend: rustls on the `ring` provider (no OpenSSL, and no aws-lc C
//! build) with the platform verifier, gzip and zstd decoded as the body streams. Its
//! sockets are tokio's: used under `Runtime::tokio()` (whose runtime drives them) and in
//! the browser (where reqwest is `fetch`); without the `async-io-http` feature also under
//! other runtimes, polled inside livesync's own reactor (`runtime/http_io.rs`).

use futures::StreamExt;

use super::{ClientSettings, Request, Response, without_query};
use crate::{Error, Result};

/// A reqwest client with `settings`.
pub(super) fn client(settings: &ClientSettings) -> Result<reqwest::Client> {
    let builder = reqwest::Client::builder().user_agent(settings.user_agent.as_str());
    #[cfg(target_arch = "wasm32")]
    let _ = settings.compressed;
    // In the browser, fetch owns TLS and sockets.
    #[cfg(not(target_arch = "wasm32"))]
    let builder = builder
        // Sends `Accept-Encoding: gzip, zstd` and decodes the body as it streams.
        .gzip(settings.compressed)
        .zstd(settings.compressed)
        .tls_backend_preconfigured(super::tls_config()?)
        // A dead peer must not hold a request forever: bounded connects, and TCP
        // keepalives to notice half-open connections (the sync stream also has its own
        // idle timeout).
        .connect_timeout(std::time::Duration::from_secs(10))
        .tcp_keepalive(std::time::Duration::from_secs(30));
    builder
        .build()
        .map_err(|source| Error::transport(String::new(), source))
}

/// Sends `request` with `client`.
pub(super) async fn execute(client: &reqwest::Client, request: Request) -> Result<Response> {
    let url = without_query(&request.url).to_owned();
    let mut builder = client
        .request(request.method, &request.url)
        .headers(request.headers);
    if let Some(body) = request.body {
        builder = builder.body(body);
    }
    if let Some(timeout) = request.timeout {
        builder = builder.timeout(timeout);
    }
    let response = crate::runtime::with_reactor(builder.send())
        .await
        .map_err(|source| Error::transport(url.clone(), source))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body_url = url.clone();
    // The byte stream, not `chunk()`: the same on native and in the browser; polled with
    // a reactor for the sockets whatever executor runs it.
    let chunks = crate::runtime::stream_with_reactor(response.bytes_stream())
        .map(move |chunk| chunk.map_err(|source| Error::transport(body_url.clone(), source)));
    #[cfg(not(target_arch = "wasm32"))]
    let body = chunks.boxed();
    #[cfg(target_arch = "wasm32")]
    let body = chunks.boxed_local();
    Ok(Response {
        status,
        url,
        content_type,
        body,
    })
}
