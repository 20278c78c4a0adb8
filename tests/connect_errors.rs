//! The mistakes people make when moving from the embedded service to a real one, and
//! what livesync says about them: an endpoint with `/sync/stream` already on it, a token
//! for another audience or key, and schema tables the service never sends.
#![cfg(feature = "testing")]

mod common;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use common::sync::{fast, schema, synced};
use common::wait::{eventually, until};
use livesync::testing::{BucketRule, TestSyncService};
use livesync::{BackendConnector, Credentials, Database, HttpConnector, Result};
use serde_json::json;

/// Credentials exactly as given, for mistakes that `HttpConnector` refuses up front.
struct FixedCredentials(Credentials);

impl BackendConnector for FixedCredentials {
    async fn fetch_credentials(&self) -> Result<Credentials> {
        Ok(self.0.clone())
    }

    async fn upload_data(&self, _db: &Database) -> Result<()> {
        Ok(())
    }
}

/// The download error's message once there is one.
async fn download_error(db: &Database) -> String {
    until("a download error", || db.status().download_error.is_some()).await;
    db.status().download_error.unwrap().to_string()
}

#[tokio::test]
async fn an_endpoint_with_sync_stream_on_it_is_refused_saying_what_to_remove() {
    let service = TestSyncService::start().await.unwrap();
    let endpoint = format!("{}/sync/stream", service.url());

    let built = HttpConnector::builder(&endpoint)
        .token(service.token("u1"))
        .upload_url(format!("{}/upload", service.url()))
        .build();
    let message = built.unwrap_err().to_string();
    assert!(
        message.contains("already ends with /sync/stream"),
        "{message}"
    );

    let db = Database::in_memory(schema()).await.unwrap();
    let credentials = Credentials::new(&endpoint, service.token("u1"));
    db.connect(FixedCredentials(credentials), fast())
        .await
        .unwrap();
    let message = download_error(&db).await;
    assert!(
        message.contains("already ends with /sync/stream"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{:?}", service.url())),
        "names the base URL to use instead: {message}"
    );
    assert!(service.sync_requests().is_empty(), "no request was sent");
    db.disconnect().await;
}

async fn connect_with_token(service: &TestSyncService, token: String) -> Database {
    let connector = HttpConnector::builder(service.url())
        .token(token)
        .upload_url(format!("{}/upload", service.url()))
        .build()
        .unwrap();
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(connector, fast()).await.unwrap();
    db
}

#[tokio::test]
async fn a_token_for_another_audience_shows_psync_s2105_with_a_hint() {
    let service = TestSyncService::start().await.unwrap();
    let elsewhere = TestSyncService::builder()
        .audience("another-instance")
        .start()
        .await
        .unwrap();
    let db = connect_with_token(&service, elsewhere.token("u1")).await;
    let message = download_error(&db).await;
    assert!(message.contains("HTTP 401 (PSYNC_S2105)"), "{message}");
    assert!(
        message.contains("hint: the token's `aud` claim"),
        "{message}"
    );
    db.disconnect().await;
}

#[tokio::test]
async fn a_token_signed_for_an_unknown_key_shows_psync_s2102_with_a_hint() {
    let service = TestSyncService::start().await.unwrap();
    let other_key = TestSyncService::builder()
        .key_id("rotated-key")
        .start()
        .await
        .unwrap();
    let db = connect_with_token(&service, other_key.token("u1")).await;
    let message = download_error(&db).await;
    assert!(message.contains("HTTP 401 (PSYNC_S2102)"), "{message}");
    assert!(message.contains("`kid`"), "{message}");
    db.disconnect().await;
}

/// Warnings and errors logged in this test binary, as `message field=value …` lines.
fn logged() -> &'static Mutex<Vec<String>> {
    static LOGGED: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();
    LOGGED.get_or_init(|| {
        let logged = Arc::<Mutex<Vec<String>>>::default();
        tracing::subscriber::set_global_default(Capture(Arc::clone(&logged)))
            .expect("no other subscriber in this test binary");
        logged
    })
}

/// A subscriber keeping the text of WARN and ERROR events.
struct Capture(Arc<Mutex<Vec<String>>>);

struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let _ = write!(self.0, "{}={value} ", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = Text(String::new());
        event.record(&mut text);
        self.0.lock().unwrap().push(text.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

fn warnings_containing(text: &str) -> Vec<String> {
    logged()
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains(text))
        .cloned()
        .collect()
}

#[tokio::test]
async fn schema_tables_the_service_never_sends_are_named_once_after_the_first_sync() {
    logged();
    // The schema has `todos` and `lists`; the service sends `todos` and rows of a type
    // spelled `todo_list`, which no schema table stores.
    let service = TestSyncService::builder()
        .rule(BucketRule::global("todos", ["todos"]))
        .start()
        .await
        .unwrap();
    service.upsert_row("todos", "t1", json!({"description": "milk"}));
    service.put(
        "misspelled",
        "todo_list",
        "l1",
        json!({"name": "groceries"}),
    );
    service.commit();
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(service.connector("u1"), fast()).await.unwrap();
    synced(&db).await;

    until("the empty-table warning", || {
        !warnings_containing("have no rows").is_empty()
            && !warnings_containing("types the schema has no table for").is_empty()
    })
    .await;
    let empty = warnings_containing("have no rows");
    assert_eq!(empty.len(), 1, "{empty:?}");
    assert!(empty[0].contains("tables=lists "), "{}", empty[0]);
    let untyped = warnings_containing("types the schema has no table for");
    assert!(untyped[0].contains("todo_list (1 rows)"), "{}", untyped[0]);

    // Later checkpoints say nothing more.
    service.upsert_row("todos", "t2", json!({"description": "bread"}));
    service.commit();
    eventually(&db, "SELECT id FROM todos ORDER BY id", &["t1", "t2"]).await;
    assert_eq!(warnings_containing("have no rows").len(), 1);
    assert_eq!(
        warnings_containing("types the schema has no table for").len(),
        1
    );
    db.disconnect().await;
}
