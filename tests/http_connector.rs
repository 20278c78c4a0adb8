//! `HttpConnector`: tokens from an HTTP endpoint, uploads as JSON with a stable
//! idempotency key, and the answer's status deciding between complete, retry and reject.
//! Against the embedded test service (end to end) and a scripted backend on 127.0.0.1
//! (exact requests and error statuses).
#![cfg(feature = "testing")]

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use common::sync::{fast, schema, service};
use common::todo_schema;
use common::wait::{in_time, until};
use livesync::{BackendConnector, Database, Error, HttpConnector, RejectedUpload};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// One request the scripted backend received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// A backend on 127.0.0.1 answering `/token` with `tok-1`, `tok-2`, … and `/upload` with
/// the scripted `(status, body)` answers in order (200 `{}` once they run out).
#[derive(Clone, Default)]
struct ScriptedBackend {
    uploads: Arc<Mutex<VecDeque<(u16, String)>>>,
    received: Arc<Mutex<Vec<Received>>>,
    tokens_issued: Arc<Mutex<usize>>,
}

impl ScriptedBackend {
    async fn start(answers: &[(u16, &str)]) -> (Self, String) {
        let backend = Self::default();
        backend
            .uploads
            .lock()
            .unwrap()
            .extend(answers.iter().map(|(s, b)| (*s, (*b).to_owned())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let serving = backend.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let backend = serving.clone();
                tokio::spawn(async move { backend.answer(socket).await });
            }
        });
        (backend, url)
    }

    async fn answer(&self, socket: tokio::net::TcpStream) {
        let mut reader = BufReader::new(socket);
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.unwrap();
        let received = Received {
            path: path.clone(),
            headers,
            body: String::from_utf8(body).unwrap(),
        };
        self.received.lock().unwrap().push(received);
        let (status, body) = if path.starts_with("/token") {
            let mut issued = self.tokens_issued.lock().unwrap();
            *issued += 1;
            (200, json!({"token": format!("tok-{issued}")}).to_string())
        } else {
            self.uploads
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or((200, "{}".into()))
        };
        let response = format!(
            "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut socket = reader.into_inner();
        let _ = socket.write_all(response.as_bytes()).await;
        let _ = socket.shutdown().await;
    }

    fn uploads_received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == "/upload")
            .cloned()
            .collect()
    }

    fn tokens_issued(&self) -> usize {
        *self.tokens_issued.lock().unwrap()
    }
}

/// A connector to the scripted backend (the service URL is never contacted: these
/// tests call `upload_data` themselves).
fn connector_to(url: &str) -> livesync::HttpConnectorBuilder {
    HttpConnector::builder("http://127.0.0.1:9")
        .token_endpoint(format!("{url}/token"))
        .upload_url(format!("{url}/upload"))
}

async fn queued(db: &Database) -> u64 {
    db.upload_queue_stats().await.unwrap().count
}

async fn write_todo(db: &Database, id: &str) {
    db.execute(
        "INSERT INTO todos(id, description, done) VALUES (?1, 'milk', 0)",
        [id.to_owned()],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_accepted_upload_is_completed_and_carries_the_token_and_a_stable_idempotency_key() {
    let (backend, url) = ScriptedBackend::start(&[(200, r#"{"ok": true}"#)]).await;
    let connector = connector_to(&url)
        .header("X-App-Session", "s1")
        .build()
        .unwrap();
    let db = Database::in_memory(todo_schema()).await.unwrap();
    write_todo(&db, "t1").await;
    let first_op = db.get_next_crud_transaction().await.unwrap().unwrap().crud[0].client_id;

    in_time("upload", connector.upload_data(&db)).await.unwrap();

    assert_eq!(queued(&db).await, 0);
    let uploads = backend.uploads_received();
    assert_eq!(uploads.len(), 1);
    let client_id = db.client_id().await.unwrap();
    let key = uploads[0]
        .header("idempotency-key")
        .expect("an Idempotency-Key header");
    assert!(
        key.starts_with(&format!("{client_id}:{first_op}:")),
        "{key}"
    );
    assert_eq!(uploads[0].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(uploads[0].header("x-app-session"), Some("s1"));
    let body = uploads[0].json();
    assert_eq!(body["idempotency_key"], key);
    assert_eq!(body["client_id"], client_id);
    assert_eq!(body["batch"][0]["op"], "PUT");
    assert_eq!(body["batch"][0]["type"], "todos");
    assert_eq!(body["batch"][0]["data"]["description"], "milk");
    // The token endpoint got the app's header too.
    let token_request = backend.received.lock().unwrap()[0].clone();
    assert_eq!(token_request.path, "/token");
    assert_eq!(token_request.header("x-app-session"), Some("s1"));
}

#[tokio::test]
async fn a_retryable_failure_keeps_the_transaction_and_the_retry_sends_the_same_key() {
    for status in [503, 500, 429, 408] {
        let (backend, url) = ScriptedBackend::start(&[(status, "busy"), (200, "{}")]).await;
        let connector = connector_to(&url).build().unwrap();
        let db = Database::in_memory(todo_schema()).await.unwrap();
        write_todo(&db, "t1").await;

        let error = in_time("failing upload", connector.upload_data(&db))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::HttpStatus { status: s, .. } if *s == status),
            "{status}: {error}"
        );
        assert_eq!(
            queued(&db).await,
            1,
            "{status}: the transaction stays queued"
        );

        in_time("retried upload", connector.upload_data(&db))
            .await
            .unwrap();
        assert_eq!(queued(&db).await, 0);
        let uploads = backend.uploads_received();
        assert_eq!(uploads.len(), 2);
        assert_eq!(
            uploads[0].header("idempotency-key"),
            uploads[1].header("idempotency-key"),
            "{status}: a retry is recognisable as the same transaction"
        );
    }
}

#[tokio::test]
async fn an_unreachable_backend_is_a_transport_error_and_nothing_is_lost() {
    // Port 9 (discard) on loopback: nothing listens there in the test environment.
    let connector = HttpConnector::builder("http://127.0.0.1:9")
        .token("a.b.c")
        .upload_url("http://127.0.0.1:9/upload")
        .build()
        .unwrap();
    let db = Database::in_memory(todo_schema()).await.unwrap();
    write_todo(&db, "t1").await;
    let error = in_time("upload", connector.upload_data(&db))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error}");
    assert_eq!(queued(&db).await, 1);
}

#[tokio::test]
async fn a_permanent_refusal_goes_to_on_rejected_and_no_longer_blocks_the_queue() {
    let (backend, url) =
        ScriptedBackend::start(&[(422, r#"{"error": "description too short"}"#), (200, "{}")])
            .await;
    let rejected: Arc<Mutex<Vec<RejectedUpload>>> = Arc::default();
    let seen = Arc::clone(&rejected);
    let connector = connector_to(&url)
        .on_rejected(move |upload| seen.lock().unwrap().push(upload))
        .build()
        .unwrap();
    let db = Database::in_memory(todo_schema()).await.unwrap();
    write_todo(&db, "refused").await;
    write_todo(&db, "accepted").await;

    in_time("upload", connector.upload_data(&db)).await.unwrap();

    assert_eq!(
        queued(&db).await,
        0,
        "the refused transaction does not block the next"
    );
    assert_eq!(backend.uploads_received().len(), 2);
    let rejected = rejected.lock().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].entries.len(), 1);
    assert_eq!(rejected[0].entries[0].id, "refused");
    assert!(
        matches!(&rejected[0].error, Error::HttpStatus { status: 422, description, .. } if description.contains("too short")),
        "{}",
        rejected[0].error
    );
}

#[tokio::test]
async fn a_401_fetches_a_new_token_and_sends_again_once() {
    let (backend, url) = ScriptedBackend::start(&[(401, "expired"), (200, "{}")]).await;
    let connector = connector_to(&url).build().unwrap();
    let db = Database::in_memory(todo_schema()).await.unwrap();
    write_todo(&db, "t1").await;

    in_time("upload", connector.upload_data(&db)).await.unwrap();

    assert_eq!(queued(&db).await, 0);
    let uploads = backend.uploads_received();
    assert_eq!(uploads.len(), 2);
    assert_eq!(uploads[0].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(uploads[1].header("authorization"), Some("Bearer tok-2"));
    assert_eq!(backend.tokens_issued(), 2);
}

#[tokio::test]
async fn a_second_401_fails_the_round_and_keeps_the_transaction() {
    let (backend, url) = ScriptedBackend::start(&[(401, "no"), (401, "still no")]).await;
    let connector = connector_to(&url).build().unwrap();
    let db = Database::in_memory(todo_schema()).await.unwrap();
    write_todo(&db, "t1").await;

    let error = in_time("upload", connector.upload_data(&db))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::HttpStatus { status: 401, .. }),
        "{error}"
    );
    assert_eq!(queued(&db).await, 1);
    assert_eq!(backend.uploads_received().len(), 2);
}

#[tokio::test]
async fn a_token_endpoint_answer_without_a_token_is_an_error_naming_the_expected_shape() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let body = r#"{"jwt": "x"}"#;
            let _ = socket
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    let connector = HttpConnector::builder("http://127.0.0.1:9")
        .token_endpoint(&url)
        .upload_url("http://127.0.0.1:9/upload")
        .build()
        .unwrap();
    let error = in_time("token", connector.fetch_credentials())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("\"token\""), "{error}");
}

#[tokio::test]
async fn tokens_from_the_endpoint_carry_their_expiry() {
    let service = service().await;
    let connector = HttpConnector::builder(service.url())
        .token_endpoint(format!(
            "{}/token?user_id=u1&lifetime_secs=600",
            service.url()
        ))
        .upload_url(format!("{}/upload", service.url()))
        .build()
        .unwrap();
    let credentials = in_time("token", connector.fetch_credentials())
        .await
        .unwrap();
    assert_eq!(credentials.endpoint, service.url());
    let left = credentials
        .expires_at
        .expect("expires_at from the answer")
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left.as_secs() > 500 && left.as_secs() <= 600, "{left:?}");
}

/// An HttpConnector for `service`'s token and upload endpoints, as user `user`.
fn service_connector(service: &livesync::testing::TestSyncService, user: &str) -> HttpConnector {
    HttpConnector::builder(service.url())
        .token_endpoint(format!("{}/token?user_id={user}", service.url()))
        .upload_url(format!("{}/upload", service.url()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn writes_sync_through_the_service_end_to_end() {
    let service = service().await;
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(service_connector(&service, "u1"), fast())
        .await
        .unwrap();
    common::sync::synced(&db).await;
    db.execute(
        "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'milk', 'u1')",
        (),
    )
    .await
    .unwrap();
    until("the service has the todo", || {
        service.rows("todos").iter().any(|row| row["id"] == "t1")
    })
    .await;
    let client_id = db.client_id().await.unwrap();
    let upload = &service.uploads()[0];
    assert_eq!(upload["client_id"], client_id);
    assert!(
        upload["idempotency_key"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{client_id}:"))
    );
    // The standard write checkpoint was requested, and the gate opens: a server change
    // made afterwards arrives.
    until("the write checkpoint was requested", || {
        service.write_checkpoint_requests() > 0
    })
    .await;
    service.upsert_row(
        "todos",
        "t2",
        json!({"description": "bread", "owner_id": "u2"}),
    );
    service.commit();
    common::wait::eventually(&db, "SELECT id FROM todos ORDER BY id", &["t1", "t2"]).await;
    db.disconnect().await;
}

#[tokio::test]
async fn a_write_checkpoint_in_the_upload_answer_is_used_instead_of_requesting_one() {
    let service = service().await;
    service.answer_uploads_with_write_checkpoints(true);
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(service_connector(&service, "u1"), fast())
        .await
        .unwrap();
    common::sync::synced(&db).await;
    db.execute(
        "INSERT INTO todos(id, description, owner_id) VALUES ('t1', 'milk', 'u1')",
        (),
    )
    .await
    .unwrap();
    until("the service has the todo", || !service.uploads().is_empty()).await;
    // Data committed after the upload is applied only once the gate opened, which needs
    // the upload's write checkpoint to arrive in a checkpoint.
    service.upsert_row(
        "todos",
        "t2",
        json!({"description": "bread", "owner_id": "u2"}),
    );
    service.commit();
    common::wait::eventually(&db, "SELECT id FROM todos ORDER BY id", &["t1", "t2"]).await;
    assert_eq!(
        service.write_checkpoint_requests(),
        0,
        "complete_with_checkpoint made the /write-checkpoint2.json request unnecessary"
    );
    db.disconnect().await;
}
