//! The reactor reqwest needs on native targets without the `async-io-http` feature
//! (with it, other runtimes use the backend that needs no tokio, and this file is not
//! compiled). reqwest (through hyper) does its
//! network I/O with tokio's sockets, which register with the tokio runtime current
//! while they are polled. Under tokio that is the app's runtime; under any other
//! executor livesync enters a tokio runtime of its own, started on first use on one
//! thread (`livesync-http-io`) that only drives sockets and timers of HTTP requests.
//! Everything else still runs on the app's executor: the requests are polled there,
//! only their I/O readiness comes from that thread.

use std::future::{Future, poll_fn};
use std::sync::OnceLock;

use futures::Stream;
use tokio::runtime::{EnterGuard, Handle};

/// Polls `future` inside a tokio runtime: the current one, or livesync's I/O runtime.
pub(crate) fn with_reactor<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let mut future = Box::pin(future);
    poll_fn(move |cx| {
        let _entered = enter();
        future.as_mut().poll(cx)
    })
}

/// Polls `stream` inside a tokio runtime, like [`with_reactor`].
pub(crate) fn stream_with_reactor<S: Stream>(stream: S) -> impl Stream<Item = S::Item> {
    let mut stream = Box::pin(stream);
    futures::stream::poll_fn(move |cx| {
        let _entered = enter();
        stream.as_mut().poll_next(cx)
    })
}

/// Enters livesync's I/O runtime unless a tokio runtime is current already.
fn enter() -> Option<EnterGuard<'static>> {
    if Handle::try_current().is_ok() {
        return None;
    }
    io_runtime().map(Handle::enter)
}

/// The handle of the I/O runtime, started once per process. `None` if its thread could
/// not be started; requests then fail with reqwest's own "no reactor" error.
fn io_runtime() -> Option<&'static Handle> {
    static IO: OnceLock<Option<Handle>> = OnceLock::new();
    IO.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .inspect_err(|error| tracing::error!(%error, "cannot build the HTTP I/O runtime"))
            .ok()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("livesync-http-io".into())
            // Parked in the reactor until the process exits; hyper's connection tasks
            // are spawned onto it too.
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .inspect_err(|error| tracing::error!(%error, "cannot start the HTTP I/O thread"))
            .ok()?;
        Some(handle)
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_request_completes_without_any_tokio_runtime_around() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).unwrap();
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .unwrap();
        });
        // The reqwest backend, polled by an executor that knows nothing of tokio.
        let client = crate::http_client::HttpClient::ambient().unwrap();
        let body = futures::executor::block_on(async move {
            let response = client
                .execute(crate::http_client::Request::get(url))
                .await
                .unwrap();
            crate::http_client::read_capped(response, 16).await.unwrap()
        });
        assert!(matches!(body, crate::http_client::Capped::Whole(b) if b == b"ok"));
        server.join().unwrap();
    }
}
