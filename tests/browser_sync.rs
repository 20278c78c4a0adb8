//! Sync from the browser (headless Chromium, the page's main thread): `connect` over
//! `fetch` to the embedded test service running natively on 127.0.0.1, the NDJSON body
//! parsed as it arrives, local writes uploaded through the app's backend and synced
//! back down, and `disconnect` leaving no task behind.
//!
//! The service is `examples/test_service.rs`, started by `scripts/test-browser`, which
//! passes its URL and a token for user `u1` to this build in
//! `LIVESYNC_BROWSER_SYNC_URL` / `LIVESYNC_BROWSER_SYNC_TOKEN` (read at compile time: the
//! test runs in a browser, which has no environment). The page is served from another
//! port than the service, so every request crosses origins (CORS, with the
//! `Authorization` preflight).
#![cfg(target_arch = "wasm32")]

mod browser_common;

use std::future::Future;
use std::time::Duration;

use browser_common::{in_time, next_tick};
use livesync::{
    BackendConnector, Column, Credentials, Database, Error, Result, Schema, SyncOptions, Table,
};
use send_wrapper::SendWrapper;
use serde_json::{Value, json};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The service's URL and token, baked in by `scripts/test-browser`.
fn service() -> (&'static str, &'static str) {
    match (
        option_env!("LIVESYNC_BROWSER_SYNC_URL"),
        option_env!("LIVESYNC_BROWSER_SYNC_TOKEN"),
    ) {
        (Some(url), Some(token)) => (url, token),
        _ => panic!(
            "built without LIVESYNC_BROWSER_SYNC_URL / _TOKEN: run the browser tests with scripts/test-browser, which starts the test service"
        ),
    }
}

/// The tables of `examples/test_service.rs`.
fn schema() -> Schema {
    Schema::new([
        Table::new("lists", [Column::text("name"), Column::text("owner_id")]),
        Table::new(
            "todos",
            [
                Column::text("list_id"),
                Column::text("description"),
                Column::integer("done"),
                Column::text("owner_id"),
            ],
        ),
    ])
}

/// A browser app's connector: a fixed token, uploads posted with `fetch` to the
/// service's `/upload` endpoint (standing in for the app's backend). Fetch futures are
/// `!Send`; the page has one thread, so they are wrapped to meet the trait's `Send`.
struct BrowserConnector {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl BrowserConnector {
    fn new() -> Self {
        let (url, token) = service();
        Self {
            url: url.to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }
}

impl BackendConnector for BrowserConnector {
    fn fetch_credentials(&self) -> impl Future<Output = Result<Credentials>> + Send {
        let credentials = Credentials::new(&self.url, &self.token);
        async move { Ok(credentials) }
    }

    fn upload_data(&self, db: &Database) -> impl Future<Output = Result<()>> + Send {
        SendWrapper::new(async move {
            let client_id = db.client_id().await?;
            while let Some(transaction) = db.get_next_crud_transaction().await? {
                let batch: Vec<Value> = transaction.crud.iter().map(|e| e.to_json()).collect();
                let response = self
                    .http
                    .post(format!("{}/upload", self.url))
                    .header("Authorization", format!("Token {}", self.token))
                    .json(&json!({"client_id": client_id, "batch": batch}))
                    .send()
                    .await
                    .map_err(Error::connector)?;
                if !response.status().is_success() {
                    return Err(Error::connector(format!(
                        "the backend refused the upload: {}",
                        response.status()
                    )));
                }
                transaction.complete().await?;
            }
            Ok(())
        })
    }
}

fn options() -> SyncOptions {
    SyncOptions::default()
        .retry_delay(Duration::from_millis(100))
        .crud_upload_throttle(Duration::from_millis(5))
}

async fn strings(db: &Database, sql: &str) -> Vec<String> {
    db.query::<String>(sql).fetch_all().await.unwrap()
}

#[wasm_bindgen_test]
async fn a_page_syncs_uploads_and_gets_its_write_back_over_fetch() {
    let db = Database::in_memory(schema()).await.unwrap();
    assert_eq!(db.background_tasks(), 0);
    db.connect(BrowserConnector::new(), options())
        .await
        .unwrap();
    assert_eq!(db.background_tasks(), 2, "the download and upload loops");
    in_time("the first sync", db.wait_for_first_sync())
        .await
        .unwrap();
    // The sync stream never ends on its own: the first sync completed from lines
    // parsed while the response was still open.
    assert!(db.status().connected, "{:?}", db.status());
    assert_eq!(
        strings(
            &db,
            "SELECT name FROM lists WHERE id IN ('l1', 'l2') ORDER BY id"
        )
        .await,
        ["Groceries", "Chores"]
    );
    assert_eq!(
        strings(
            &db,
            "SELECT description FROM todos WHERE id IN ('t1', 't2', 't3') ORDER BY id"
        )
        .await,
        ["milk", "dishes"],
        "only u1's todos (t3 belongs to u2)"
    );

    // A local write is uploaded through the connector.
    let list_id = format!("b-{}", db.client_id().await.unwrap());
    db.execute(
        "INSERT INTO lists(id, name, owner_id) VALUES (?1, 'from the browser', 'u1')",
        [list_id.clone()],
    )
    .await
    .unwrap();
    in_time("the upload queue to drain", async {
        while db.upload_queue_stats().await.unwrap().count > 0 {
            next_tick().await;
        }
    })
    .await;

    // Proof that it reached the service: forget everything local, sync again, and
    // the row comes back down.
    db.disconnect_and_clear(true).await.unwrap();
    assert!(strings(&db, "SELECT id FROM lists").await.is_empty());
    db.connect(BrowserConnector::new(), options())
        .await
        .unwrap();
    in_time("the second first sync", db.wait_for_first_sync())
        .await
        .unwrap();
    assert_eq!(
        strings(
            &db,
            &format!("SELECT name FROM lists WHERE id = '{list_id}'")
        )
        .await,
        ["from the browser"]
    );

    db.disconnect().await;
    assert_eq!(
        db.background_tasks(),
        0,
        "disconnect leaves no task running"
    );
    assert!(!db.status().connected);
    db.close().await;
}

#[wasm_bindgen_test]
async fn an_unreachable_service_is_a_download_error_and_local_work_goes_on() {
    struct Nowhere;
    impl BackendConnector for Nowhere {
        fn fetch_credentials(&self) -> impl Future<Output = Result<Credentials>> + Send {
            // Port 9 (discard) on this machine: nothing listens there.
            async { Ok(Credentials::new("http://127.0.0.1:9", "token")) }
        }
        fn upload_data(&self, _db: &Database) -> impl Future<Output = Result<()>> + Send {
            async { Ok(()) }
        }
    }
    let db = Database::in_memory(schema()).await.unwrap();
    db.connect(Nowhere, options()).await.unwrap();
    let error = in_time("a download error", async {
        loop {
            if let Some(error) = db.status().download_error {
                return error;
            }
            next_tick().await;
        }
    })
    .await;
    assert!(!error.to_string().is_empty());
    db.execute("INSERT INTO lists(id, name) VALUES ('l', 'offline')", ())
        .await
        .unwrap();
    assert_eq!(strings(&db, "SELECT name FROM lists").await, ["offline"]);
    db.disconnect().await;
    assert_eq!(db.background_tasks(), 0);
    db.close().await;
}
