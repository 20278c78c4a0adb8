//! Validation of a PowerSync Service endpoint: the base URL an app gives in
//! [`Credentials::endpoint`](crate::Credentials::endpoint), to which livesync appends
//! the protocol's paths itself.

use crate::{Error, Result};

/// The request paths livesync appends to an endpoint. An endpoint that already ends
/// with one of them was copied from a request URL (a log line, the browser's network
/// tab) and would produce `…/sync/stream/sync/stream`, which the service answers with
/// a 404 that says nothing about the cause.
const PROTOCOL_PATHS: [&str; 3] = [
    "/sync/stream",
    "/write-checkpoint2.json",
    "/sync/checkpoint-request",
];

/// Refuses an endpoint that is not an `http(s)://` URL, or that already ends with a
/// path livesync adds itself (`/sync/stream`, `/write-checkpoint2.json`,
/// `/sync/checkpoint-request`). The message
/// says what to remove. A trailing `/` and a path prefix (`https://h/powersync`) are
/// fine.
pub(crate) fn check_endpoint(endpoint: &str) -> Result<()> {
    let base = endpoint.trim().trim_end_matches('/');
    let has_scheme = base
        .split_once("://")
        .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && !rest.is_empty());
    if !has_scheme {
        return Err(Error::InvalidCredentials(format!(
            "endpoint {endpoint:?} must be an http:// or https:// URL"
        )));
    }
    // Only the path counts (a query string has no place in an endpoint either).
    let path_end = base.find(['?', '#']).unwrap_or(base.len());
    let path = base[..path_end].trim_end_matches('/');
    if let Some(suffix) = PROTOCOL_PATHS.iter().find(|suffix| path.ends_with(*suffix)) {
        let fixed = &path[..path.len() - suffix.len()];
        return Err(Error::InvalidCredentials(format!(
            "endpoint {endpoint:?} already ends with {suffix}: give the service's base URL \
             ({fixed:?}) instead; livesync adds {suffix} itself"
        )));
    }
    if path_end < base.len() {
        return Err(Error::InvalidCredentials(format!(
            "endpoint {endpoint:?} has a query string or fragment: give the service's base URL \
             ({:?}) instead",
            &base[..path_end]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_with_or_without_a_prefix_are_accepted() {
        for endpoint in [
            "http://127.0.0.1:8080",
            "https://abc.powersync.journeyapps.com/",
            "https://h/powersync",
            "https://h/sync",
        ] {
            check_endpoint(endpoint).unwrap();
        }
    }

    #[test]
    fn an_endpoint_ending_with_a_protocol_path_is_refused_saying_what_to_remove() {
        let error = check_endpoint("https://h/powersync/sync/stream/").unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("already ends with /sync/stream"),
            "{message}"
        );
        assert!(message.contains("\"https://h/powersync\""), "{message}");
        let error = check_endpoint("http://h:8080/write-checkpoint2.json").unwrap_err();
        assert!(error.to_string().contains("\"http://h:8080\""), "{error}");
        let error = check_endpoint("http://h:8080/sync/checkpoint-request").unwrap_err();
        assert!(error.to_string().contains("\"http://h:8080\""), "{error}");
    }

    #[test]
    fn query_strings_and_other_schemes_are_refused() {
        assert!(check_endpoint("https://h/?x=1").is_err());
        assert!(check_endpoint("https://h/sync/stream?x=1").is_err());
        assert!(check_endpoint("h:8080").is_err());
        assert!(check_endpoint("ftp://h").is_err());
        assert!(check_endpoint("http://").is_err());
    }
}
