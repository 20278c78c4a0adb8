//! HTTP requests to the sync service (docs/sync-protocol.md §1): the `/sync/stream` request, the
//! legacy write checkpoint and checkpoint requests, with the service's error bodies
//! turned into [`Error`]s.

use serde_json::{Map, Value, json};

use super::framing::{ACCEPT_BSON_OR_NDJSON, ACCEPT_NDJSON};
use super::subscriptions::RequestedSubscription;
use http::HeaderValue;
use http::header::{ACCEPT, AUTHORIZATION};

use crate::http_client::{Capped, HttpClient, Request, Response, error_from_response, read_capped};
use crate::{Credentials, Error, Result};

/// `endpoint` + `path`, keeping a path prefix (`http://h/powersync` →
/// `http://h/powersync/sync/stream`) and ignoring trailing slashes.
pub(crate) fn service_url(endpoint: &str, path: &str) -> Result<String> {
    crate::endpoint::check_endpoint(endpoint)?;
    let base = endpoint.trim().trim_end_matches('/');
    Ok(format!("{base}{path}"))
}

fn authorization(credentials: &Credentials) -> Result<HeaderValue> {
    if credentials.token.trim().is_empty() {
        return Err(Error::InvalidCredentials(
            "the connector returned an empty token (is the user signed in?)".into(),
        ));
    }
    HeaderValue::try_from(format!("Token {}", credentials.token)).map_err(|_| {
        Error::InvalidCredentials(
            "the token contains characters an HTTP header cannot carry (line breaks, control characters)".into(),
        )
    })
}

/// What the client sends to open a sync stream (docs/sync-protocol.md §1.3).
pub(crate) struct StreamRequest<'a> {
    pub(crate) buckets: &'a [(String, i64)],
    pub(crate) client_id: &'a str,
    pub(crate) parameters: &'a Map<String, Value>,
    pub(crate) include_default_streams: bool,
    pub(crate) subscriptions: &'a [RequestedSubscription],
    pub(crate) app_metadata: &'a std::collections::BTreeMap<String, String>,
}

impl StreamRequest<'_> {
    pub(crate) fn to_json(&self) -> Value {
        let buckets: Vec<Value> = self
            .buckets
            .iter()
            .map(|(name, after)| json!({"name": name, "after": after.to_string()}))
            .collect();
        let mut body = json!({
            "buckets": buckets,
            "include_checksum": true,
            "raw_data": true,
            "binary_data": true,
            "client_id": self.client_id,
            "parameters": self.parameters,
            "streams": {
                "include_defaults": self.include_default_streams,
                "subscriptions": self.subscriptions.iter().map(RequestedSubscription::to_json).collect::<Vec<_>>(),
            },
        });
        if !self.app_metadata.is_empty() {
            body["app_metadata"] = json!(self.app_metadata);
        }
        body
    }
}

/// Opens the sync stream, offering BSON framing besides NDJSON when `accept_bson`. `Ok`
/// means HTTP 200; its body is the stream, framed as its `Content-Type` says.
pub(crate) async fn open_stream(
    http: &HttpClient,
    credentials: &Credentials,
    request: &StreamRequest<'_>,
    accept_bson: bool,
) -> Result<Response> {
    let url = service_url(&credentials.endpoint, "/sync/stream")?;
    let accept = if accept_bson {
        ACCEPT_BSON_OR_NDJSON
    } else {
        ACCEPT_NDJSON
    };
    let post = Request::post(&url)
        .header(AUTHORIZATION, authorization(credentials)?)
        .header(ACCEPT, HeaderValue::from_static(accept))
        .json(&request.to_json());
    let response = http.send(post).await?;
    // Only 200 carries a stream (as in the official clients); another 2xx is an error.
    if response.status != 200 {
        return Err(error_from_response(response).await);
    }
    Ok(response)
}

/// Asks the service for a write checkpoint covering everything uploaded so far (docs/sync-protocol.md §1.4).
pub(crate) async fn write_checkpoint(
    http: &HttpClient,
    credentials: &Credentials,
    client_id: &str,
) -> Result<i64> {
    let url = service_url(&credentials.endpoint, "/write-checkpoint2.json")?;
    let query: String = client_id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let get = Request::get(format!("{url}?client_id={query}"))
        .header(AUTHORIZATION, authorization(credentials)?)
        .header(ACCEPT, HeaderValue::from_static("application/json"));
    let response = http.send(get).await?;
    let body = small_json_reply(&url, response).await?;
    body["data"]["write_checkpoint"]
        .as_str()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| {
            Error::Protocol(format!(
                "{url} answered without a decimal data.write_checkpoint: {body}"
            ))
        })
}

/// Posts a client-chosen checkpoint request id (docs/sync-protocol.md §1.5); returns the
/// id the service holds afterwards (`id`, or a larger one it acknowledged before). A 404
/// (a service older than 1.24.0) is [`Error::CheckpointRequestsUnsupported`].
pub(crate) async fn checkpoint_request(
    http: &HttpClient,
    credentials: &Credentials,
    client_id: &str,
    id: i64,
) -> Result<i64> {
    let url = service_url(&credentials.endpoint, "/sync/checkpoint-request")?;
    let post = Request::post(&url)
        .header(AUTHORIZATION, authorization(credentials)?)
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .json(&checkpoint_request_body(client_id, id));
    let response = match http.send(post).await {
        Err(Error::HttpStatus { status: 404, .. }) => {
            return Err(Error::CheckpointRequestsUnsupported { url });
        }
        other => other?,
    };
    let body = small_json_reply(&url, response).await?;
    let acknowledged = &body["data"]["checkpoint_request_id"];
    acknowledged
        .as_str()
        .and_then(|text| text.parse::<i64>().ok())
        .or_else(|| acknowledged.as_i64())
        .filter(|acknowledged| *acknowledged > 0)
        .ok_or_else(|| {
            Error::Protocol(format!(
                "{url} answered without a positive data.checkpoint_request_id: {body}"
            ))
        })
}

/// The body of `POST /sync/checkpoint-request`: the id as a decimal string, which every
/// service accepts (a number only up to 2^53).
fn checkpoint_request_body(client_id: &str, id: i64) -> Value {
    json!({"client_id": client_id, "checkpoint_request_id": id.to_string()})
}

/// The largest reply read from the JSON endpoints (`{"data":{"write_checkpoint":"…"}}`
/// is a few dozen bytes).
const MAX_JSON_REPLY_BYTES: usize = 64 * 1024;

/// Reads the JSON reply of a write-checkpoint or checkpoint request, at most
/// [`MAX_JSON_REPLY_BYTES`] of it.
async fn small_json_reply(url: &str, response: Response) -> Result<Value> {
    let body = match read_capped(response, MAX_JSON_REPLY_BYTES).await {
        Ok(Capped::Whole(body)) => body,
        Ok(Capped::Truncated(_)) => {
            return Err(Error::Protocol(format!(
                "{url} answered with more than {MAX_JSON_REPLY_BYTES} bytes; a write \
                 checkpoint reply is a small JSON object"
            )));
        }
        Err(error) => return Err(error),
    };
    serde_json::from_slice(&body)
        .map_err(|source| Error::Protocol(format!("{url} answered with invalid JSON: {source}")))
}

/// Whether an error means the token was refused.
pub(crate) fn is_unauthorized(error: &Error) -> bool {
    matches!(error, Error::HttpStatus { status: 401, .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::subscriptions::StreamKey;

    #[test]
    fn urls_keep_path_prefixes_and_drop_trailing_slashes() {
        let url = |e: &str| service_url(e, "/sync/stream");
        assert_eq!(url("http://h:8080").unwrap(), "http://h:8080/sync/stream");
        assert_eq!(url("http://h:8080/").unwrap(), "http://h:8080/sync/stream");
        assert_eq!(
            url("https://h/powersync//").unwrap(),
            "https://h/powersync/sync/stream"
        );
        assert!(url("localhost:8080").is_err());
        assert!(url("ftp://h").is_err());
        assert!(url("http://").is_err());
    }

    #[tokio::test]
    async fn an_endless_write_checkpoint_reply_is_refused_at_the_cap() {
        let url = crate::http_client::tests::endless_server(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b"{\"data\": {\"write_checkpoint\": \"1\"}}                ",
        )
        .await;
        let http = crate::http_client::HttpClient::ambient().unwrap();
        let credentials = Credentials::new(url, "token");
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            write_checkpoint(&http, &credentials, "client"),
        )
        .await
        .expect("the reply is not read to its (missing) end");
        let error = answer.unwrap_err();
        assert!(
            matches!(&error, Error::Protocol(m) if m.contains("more than 65536 bytes")),
            "{error}"
        );
    }

    #[test]
    fn checkpoint_request_body_has_the_official_shape() {
        assert_eq!(
            checkpoint_request_body("c1", 9_007_199_254_740_993),
            json!({"client_id": "c1", "checkpoint_request_id": "9007199254740993"})
        );
    }

    #[test]
    fn empty_tokens_are_refused_before_any_request() {
        let error = authorization(&Credentials::new("http://h", " ")).unwrap_err();
        assert!(error.to_string().contains("signed in"), "{error}");
    }

    #[test]
    fn request_body_has_the_official_shape() {
        let buckets = vec![("b1".to_owned(), 4)];
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("app_version".to_owned(), "1.2.3".to_owned());
        let subscriptions = [
            RequestedSubscription {
                id: 1,
                key: StreamKey::new("lists", &json!({"owner": "u1"})).unwrap(),
                priority: Some(1),
            },
            RequestedSubscription {
                id: 2,
                key: StreamKey::new("lists", &Value::Null).unwrap(),
                priority: None,
            },
        ];
        let body = StreamRequest {
            buckets: &buckets,
            client_id: "c",
            parameters: &Map::new(),
            include_default_streams: true,
            subscriptions: &subscriptions,
            app_metadata: &metadata,
        }
        .to_json();
        assert_eq!(
            body,
            json!({"buckets":[{"name":"b1","after":"4"}],"include_checksum":true,"raw_data":true,
                   "binary_data":true,"client_id":"c","parameters":{},
                   "streams":{"include_defaults":true,"subscriptions":[
                       {"stream":"lists","parameters":{"owner":"u1"},"override_priority":1},
                       {"stream":"lists","parameters":null,"override_priority":null}]},
                   "app_metadata":{"app_version":"1.2.3"}})
        );
    }
}
