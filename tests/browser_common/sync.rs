//! Syncing from the browser tests: the test service started natively by
//! `scripts/test-browser` (`examples/test_service.rs`), whose URL and a token for user
//! `u1` reach the wasm build in `LIVESYNC_BROWSER_SYNC_URL` / `LIVESYNC_BROWSER_SYNC_TOKEN`
//! (read at compile time: the test runs in a browser, which has no environment).

use std::future::Future;
use std::time::Duration;

use livesync::{
    BackendConnector, Column, Credentials, Database, Error, Result, Schema, SyncOptions, Table,
};
use send_wrapper::SendWrapper;
use serde_json::{Value, json};

/// The service's URL and token, baked in by `scripts/test-browser`.
pub fn service() -> (&'static str, &'static str) {
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
pub fn schema() -> Schema {
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
pub struct BrowserConnector {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl BrowserConnector {
    pub fn new() -> Self {
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

pub fn options() -> SyncOptions {
    SyncOptions::default()
        .retry_delay(Duration::from_millis(100))
        .crud_upload_throttle(Duration::from_millis(5))
}
