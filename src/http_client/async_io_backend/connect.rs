//! Opening a connection without tokio: the name lookup, a TCP connection on `async-io`
//! (whose reactor thread drives it, whatever executor polls it), TCP keepalives, TLS
//! through `futures-rustls`, and the adapter from `futures`' I/O traits to hyper's.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_io::Async;
use futures::io::{AsyncRead, AsyncWrite};
use futures_rustls::TlsConnector;
use rustls::pki_types::ServerName;

use crate::TransportFailure;

/// How long a TCP connect (one address) may take, as in the reqwest backend.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle time before the first TCP keepalive probe, as in the reqwest backend: a
/// half-open connection is noticed even while the sync stream waits for its idle
/// deadline.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// A connection's byte stream: plain TCP or TLS over it.
pub(super) trait Connection: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Connection for T {}

/// Where a request goes.
pub(super) struct Target {
    /// The host without the brackets of an IPv6 literal.
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) tls: bool,
}

/// A failed step of opening a connection.
pub(super) struct Failed {
    pub(super) kind: TransportFailure,
    pub(super) error: io::Error,
}

impl Failed {
    fn connect(error: io::Error) -> Self {
        Self {
            kind: TransportFailure::Connect,
            error,
        }
    }
}

/// Opens a connection to `target`: each address the name resolves to in turn, each
/// within [`CONNECT_TIMEOUT`] on `runtime`'s timer, then TLS when `target.tls`.
pub(super) async fn open(
    target: &Target,
    tls: &TlsConnector,
    runtime: &crate::runtime::Runtime,
) -> Result<Box<dyn Connection>, Failed> {
    let addresses = resolve(&target.host, target.port)
        .await
        .map_err(Failed::connect)?;
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} resolved to no address", target.host),
    );
    let mut socket = None;
    for address in addresses {
        match runtime
            .timeout(CONNECT_TIMEOUT, Async::<TcpStream>::connect(address))
            .await
        {
            Ok(Ok(connected)) => {
                socket = Some(connected);
                break;
            }
            Ok(Err(error)) => last = error,
            Err(_) => {
                last = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {address} took longer than {CONNECT_TIMEOUT:?}"),
                );
            }
        }
    }
    let socket = socket.ok_or_else(|| Failed::connect(last))?;
    configure(socket.get_ref()).map_err(Failed::connect)?;
    if !target.tls {
        return Ok(Box::new(socket));
    }
    let name = ServerName::try_from(target.host.clone()).map_err(|error| Failed {
        kind: TransportFailure::Other,
        error: io::Error::new(io::ErrorKind::InvalidInput, error),
    })?;
    // A refused certificate is told apart by `Error::transport_failure` from the
    // rustls error inside.
    let stream = tls.connect(name, socket).await.map_err(Failed::connect)?;
    Ok(Box::new(stream))
}

/// Keepalives and no Nagle delay (requests are small and written whole).
fn configure(socket: &TcpStream) -> io::Result<()> {
    socket.set_nodelay(true)?;
    socket2::SockRef::from(socket)
        .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(KEEPALIVE))
}

/// The addresses of `host`. An IP literal needs no lookup; a name is looked up on a
/// short-lived thread (`livesync-dns`), since the system's resolver blocks and there
/// is no executor of livesync's own to block instead. Requests are few (the sync
/// stream, one write checkpoint per upload round), so a thread per lookup is cheap.
async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (answer, answered) = futures::channel::oneshot::channel();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("livesync-dns".into())
        .spawn(move || {
            let found = (name.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect::<Vec<_>>);
            let _ = answer.send(found);
        })?;
    answered
        .await
        .map_err(|_| io::Error::other(format!("the lookup of {host} stopped without an answer")))?
}

/// A client TLS configuration for HTTP/1.1 (the only protocol this backend speaks),
/// from the one every livesync client builds.
pub(super) fn tls_connector(mut config: rustls::ClientConfig) -> TlsConnector {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// `futures`' I/O traits as hyper's. Reads go through a buffer of its own, since
/// hyper's read cursor hands out uninitialised memory only to `unsafe` code (which this
/// crate forbids); the copy is small next to what a sync line costs to parse.
pub(super) struct HyperIo {
    inner: Box<dyn Connection>,
    buffer: Box<[u8]>,
}

impl HyperIo {
    pub(super) fn new(inner: Box<dyn Connection>) -> Self {
        Self {
            inner,
            buffer: vec![0; 16 * 1024].into_boxed_slice(),
        }
    }
}

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let room = buf.remaining().min(this.buffer.len());
        let read = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut this.buffer[..room]))?;
        buf.put_slice(&this.buffer[..read]);
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}
