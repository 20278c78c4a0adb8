//! TLS: a service whose certificate this device does not trust is reported as a
//! certificate problem, and livesync leaves rustls's process-wide provider to the app.

use std::sync::Arc;

use livesync::{BackendConnector, Credentials, Database, Error, Schema, TransportFailure};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

mod common;

use common::wait::until;

/// Credentials for `endpoint`; uploads nothing.
struct Endpoint(String);

impl BackendConnector for Endpoint {
    async fn fetch_credentials(&self) -> livesync::Result<Credentials> {
        Ok(Credentials::new(self.0.clone(), "token"))
    }

    async fn upload_data(&self, _db: &Database) -> livesync::Result<()> {
        Ok(())
    }
}

/// A TLS server on 127.0.0.1 with a self-signed certificate (for 127.0.0.1, valid for a
/// century): only its issuer is unknown. It completes no handshake with a client that
/// checks certificates.
async fn untrusted_server() -> String {
    let certificate =
        CertificateDer::from_pem_slice(include_bytes!("fixtures/untrusted_cert.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("fixtures/untrusted_key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certificate], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(socket).await;
            });
        }
    });
    format!("https://{address}")
}

#[tokio::test]
async fn an_untrusted_certificate_is_reported_as_a_certificate_problem() {
    let url = untrusted_server().await;
    let db = Database::in_memory(Schema::default()).await.unwrap();
    db.connect(Endpoint(url), livesync::SyncOptions::default())
        .await
        .unwrap();
    until("the connection attempt failed", || {
        db.status().download_error.is_some()
    })
    .await;
    let error = db.status().download_error.unwrap();
    let message = error.to_string();
    assert!(
        message.contains("invalid peer certificate") && message.contains("UnknownIssuer"),
        "the root cause is in the message: {message}"
    );
    assert!(message.contains("TLS certificate problem"), "{message}");
    assert!(!message.contains("running and reachable"), "{message}");
    assert!(
        matches!(
            error.error(),
            Error::Transport {
                kind: TransportFailure::Certificate,
                ..
            }
        ),
        "{message}"
    );

    // Connecting built livesync's HTTP client: the app can still install its own
    // process-wide provider (nothing else in this test binary installs one).
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("the app installs its provider after livesync connected");
    db.close().await;
}
