//! The HTTP client livesync sends requests with: reqwest on rustls with the `ring`
//! crypto provider (no OpenSSL, and no aws-lc C build).

use crate::{Error, Result, USER_AGENT};

/// A client that sends livesync's `User-Agent`.
///
/// reqwest is built without a default crypto provider, so `ring` is installed as the
/// process-wide rustls provider first; if the app already installed one, that one stays.
#[cfg_attr(not(feature = "testing"), allow(dead_code))] // the sync engine will use it too
pub(crate) fn http_client() -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .build()
        .map_err(|source| Error::Transport {
            url: String::new(),
            source,
        })
}
