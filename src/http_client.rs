//! The HTTP client livesync sends requests with: reqwest on rustls with the `ring`
//! crypto provider (no OpenSSL, and no aws-lc C build).

use serde_json::Value;

use crate::{Error, Result, USER_AGENT};

/// A client that sends livesync's `User-Agent`, followed by `extra` when given.
///
/// reqwest is built without a default crypto provider, so `ring` is installed as the
/// process-wide rustls provider first; if the app already installed one, that one stays.
pub(crate) fn http_client_with(extra: Option<&str>) -> Result<reqwest::Client> {
    let user_agent = match extra {
        Some(extra) => format!("{USER_AGENT} {extra}"),
        None => USER_AGENT.to_owned(),
    };
    let builder = reqwest::Client::builder().user_agent(user_agent);
    // In the browser, fetch owns TLS and sockets.
    #[cfg(not(target_arch = "wasm32"))]
    let builder = {
        let _ = rustls::crypto::ring::default_provider().install_default();
        builder
            // A dead peer must not hold a request forever: bounded connects, and TCP
            // keepalives to notice half-open connections (the sync stream also has its
            // own idle timeout).
            .connect_timeout(std::time::Duration::from_secs(10))
            .tcp_keepalive(std::time::Duration::from_secs(30))
    };
    builder
        .build()
        .map_err(|source| Error::transport(String::new(), source))
}

/// [`http_client_with`] without an app-specific user agent.
#[cfg_attr(not(feature = "testing"), allow(dead_code))] // used by the test service
pub(crate) fn http_client() -> Result<reqwest::Client> {
    http_client_with(None)
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
    let text = crate::runtime::with_reactor(response.text())
        .await
        .unwrap_or_default();
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
