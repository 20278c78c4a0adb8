//! TLS: a service whose certificate this device does not trust is reported as a
//! certificate problem, and livesync leaves rustls's process-wide provider to the app.

use livesync::{Database, Schema};
use tokio_rustls::rustls;

mod common;

use common::tls::{FixedEndpoint, assert_certificate_problem, untrusted_server};
use common::wait::until;

#[tokio::test]
async fn an_untrusted_certificate_is_reported_as_a_certificate_problem() {
    let url = untrusted_server().await;
    let db = Database::in_memory(Schema::default()).await.unwrap();
    db.connect(FixedEndpoint(url), livesync::SyncOptions::default())
        .await
        .unwrap();
    until("the connection attempt failed", || {
        db.status().download_error.is_some()
    })
    .await;
    let error = db.status().download_error.unwrap();
    let message = assert_certificate_problem(&error);
    assert!(!message.contains("running and reachable"), "{message}");

    // Connecting built livesync's HTTP client: the app can still install its own
    // process-wide provider (nothing else in this test binary installs one).
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("the app installs its provider after livesync connected");
    db.close().await;
}
