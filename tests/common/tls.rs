//! A TLS server whose certificate this device does not trust.

use std::sync::Arc;

use livesync::{BackendConnector, Credentials, Database, Error, SyncError, TransportFailure};

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::SERVICE_THREAD_PREFIX;
use super::wait::WAIT;

/// A TLS server on 127.0.0.1 with a self-signed certificate (for 127.0.0.1, valid for a
/// century): only its issuer is unknown. It completes no handshake with a client that
/// checks certificates. Runs on the current tokio runtime; returns its `https://` URL.
pub async fn untrusted_server() -> String {
    let certificate =
        CertificateDer::from_pem_slice(include_bytes!("../fixtures/untrusted_cert.pem")).unwrap();
    let key =
        PrivateKeyDer::from_pem_slice(include_bytes!("../fixtures/untrusted_key.pem")).unwrap();
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

/// [`untrusted_server`] on a tokio runtime of its own thread (named with
/// [`SERVICE_THREAD_PREFIX`]), for a client on another executor. The server lives as
/// long as the test process.
pub fn untrusted_server_thread() -> String {
    let (started, url) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(SERVICE_THREAD_PREFIX.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .thread_name(format!("{SERVICE_THREAD_PREFIX}-blocking"))
                .enable_all()
                .build()
                .expect("a runtime for the TLS server");
            runtime.block_on(async move {
                started
                    .send(untrusted_server().await)
                    .expect("the test waits for the server");
                std::future::pending::<()>().await;
            });
        })
        .expect("the TLS server thread starts");
    url.recv_timeout(WAIT)
        .expect("the TLS server started in time")
}

/// A connector whose credentials name `endpoint` (with a dummy token); it uploads
/// nothing.
pub struct FixedEndpoint(pub String);

impl BackendConnector for FixedEndpoint {
    async fn fetch_credentials(&self) -> livesync::Result<Credentials> {
        Ok(Credentials::new(self.0.clone(), "token"))
    }

    async fn upload_data(&self, _db: &Database) -> livesync::Result<()> {
        Ok(())
    }
}

/// Checks that `error` reports a refused certificate: the root cause (rustls's
/// `UnknownIssuer`) and livesync's advice in the message, `TransportFailure::Certificate`
/// as its kind. Returns the message for further checks.
pub fn assert_certificate_problem(error: &SyncError) -> String {
    let message = error.to_string();
    assert!(
        message.contains("invalid peer certificate") && message.contains("UnknownIssuer"),
        "the root cause is in the message: {message}"
    );
    assert!(message.contains("TLS certificate problem"), "{message}");
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
    message
}
