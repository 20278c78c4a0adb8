//! The HTTP backend that needs no tokio reactor (feature `async-io-http`, native only),
//! used for every runtime but `Runtime::tokio()`.
//!
//! **Why this design.** reqwest cannot run without tokio: its connector, its pool and
//! its timeouts are tokio's, so under smol or a custom executor livesync used to keep a
//! tokio runtime on a thread of its own just for reqwest's sockets. Here the layers
//! reqwest adds on top of hyper are replaced by small ones that need no runtime:
//! hyper 1.x's `client::conn::http1` (the HTTP/1.1 state machine alone, no executor)
//! over an `async-io` TCP stream (async-io drives readiness on its own reactor thread,
//! whichever executor polls the future), TLS from `futures-rustls` with the same
//! per-client rustls configuration the reqwest backend builds, gzip and zstd decoded
//! as the bytes arrive with the codecs reqwest uses, and every timeout on the
//! database's runtime timer.
//!
//! One connection per request, no pool: the connection task is driven by the request's
//! and then the body's own polls (no task is spawned), and the requests livesync makes
//! are one long-lived sync stream plus one write checkpoint per upload round, so a
//! connection kept idle would rarely be reused. HTTP/1.1 only: the PowerSync Service and
//! the proxies in front of it speak it, and a sync stream is one request anyway.

mod connect;
mod decode;

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::HeaderValue;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HOST, USER_AGENT};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};

use self::connect::{HyperIo, Target};
use self::decode::Encoding;
use super::{ClientSettings, Request, Response, without_query};
use crate::runtime::{Delay, Runtime};
use crate::{Error, Result, TransportFailure};

/// hyper's side of one connection, driven by whoever polls the request or its body.
type Connection = hyper::client::conn::http1::Connection<HyperIo, Full<Bytes>>;

/// A client of this backend: cheap to clone.
#[derive(Clone)]
pub(super) struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    tls: futures_rustls::TlsConnector,
    user_agent: HeaderValue,
    compressed: bool,
    /// The timers of connect and request timeouts.
    runtime: Runtime,
}

impl Client {
    pub(super) fn new(settings: &ClientSettings, runtime: Runtime) -> Result<Self> {
        let user_agent = HeaderValue::try_from(settings.user_agent.as_str()).map_err(|_| {
            // As the reqwest backend reports it: a client that cannot be built.
            Error::transport_failure(
                String::new(),
                TransportFailure::Other,
                format!(
                    "the user agent {:?} cannot be sent in an HTTP header: remove line breaks and control characters (SyncOptions::user_agent)",
                    settings.user_agent
                ),
            )
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                tls: connect::tls_connector(super::tls_config()?),
                user_agent,
                compressed: settings.compressed,
                runtime,
            }),
        })
    }

    /// Sends `request`: connects, sends it, and returns once the response's head has
    /// arrived; the body streams after that. [`Request::timeout`] covers the whole,
    /// body included.
    pub(super) async fn execute(&self, request: Request) -> Result<Response> {
        let url = without_query(&request.url).to_owned();
        let mut deadline = request
            .timeout
            .map(|limit| (limit, self.inner.runtime.sleep(limit)));
        let opened = {
            let mut opening = pin!(self.open(request, &url));
            poll_fn(|cx| {
                if let Poll::Ready(opened) = opening.as_mut().poll(cx) {
                    return Poll::Ready(Some(opened));
                }
                match &mut deadline {
                    Some((_, delay)) => delay.as_mut().poll(cx).map(|()| None),
                    None => Poll::Pending,
                }
            })
            .await
        };
        let (status, content_type, encoding, body) = match opened {
            Some(opened) => opened?,
            None => {
                let limit = deadline.map_or(Duration::ZERO, |(limit, _)| limit);
                return Err(timed_out(url, limit));
            }
        };
        let body = BodyStream {
            connection: body.0,
            incoming: body.1,
            deadline,
            url: url.clone(),
            done: false,
        }
        .boxed();
        let body = match encoding {
            Some(encoding) => decode::decoded(body, encoding, url.clone()),
            None => body,
        };
        Ok(Response {
            status,
            url,
            content_type,
            body,
        })
    }

    /// Connects and sends `request`; the response's status, its `Content-Type`, the
    /// encoding to decode, and the connection with the body it still carries.
    async fn open(
        &self,
        request: Request,
        url: &str,
    ) -> Result<(
        u16,
        Option<String>,
        Option<Encoding>,
        (Option<Pin<Box<Connection>>>, Incoming),
    )> {
        let failed = |kind, error: io::Error| Error::transport_failure(url, kind, error);
        let uri: http::Uri = request.url.parse().map_err(|error| {
            failed(
                TransportFailure::Other,
                io::Error::new(io::ErrorKind::InvalidInput, error),
            )
        })?;
        let target = target_of(&uri).map_err(|error| failed(TransportFailure::Other, error))?;
        let stream = connect::open(&target, &self.inner.tls, &self.inner.runtime)
            .await
            .map_err(|failure| failed(failure.kind, failure.error))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
            .await
            .map_err(|error| Error::transport_failure(url, TransportFailure::Connect, error))?;

        let mut head = http::Request::builder()
            .method(request.method)
            .uri(uri.path_and_query().map_or("/", |path| path.as_str()));
        if let Some(headers) = head.headers_mut() {
            if let Some(authority) = uri.authority() {
                let host = HeaderValue::try_from(authority.as_str()).map_err(|error| {
                    failed(
                        TransportFailure::Other,
                        io::Error::new(io::ErrorKind::InvalidInput, error),
                    )
                })?;
                headers.insert(HOST, host);
            }
            headers.insert(USER_AGENT, self.inner.user_agent.clone());
            if self.inner.compressed {
                headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip, zstd"));
            }
            for (name, value) in request.headers {
                if let Some(name) = name {
                    headers.insert(name, value);
                }
            }
        }
        let head = head
            .body(Full::new(request.body.unwrap_or_default()))
            .map_err(|error| {
                failed(
                    TransportFailure::Other,
                    io::Error::new(io::ErrorKind::InvalidInput, error),
                )
            })?;

        // The connection is polled alongside the request (nothing else would): it
        // writes the request and reads the response into the channels `sender` listens on.
        let mut connection = Some(Box::pin(connection));
        let mut sending = pin!(sender.send_request(head));
        let response = poll_fn(|cx| {
            poll_connection(&mut connection, cx);
            sending.as_mut().poll(cx)
        })
        .await
        .map_err(|error| Error::transport_failure(url, TransportFailure::Connect, error))?;
        // No more requests on this connection: it closes after this response.
        drop(sender);

        let status = response.status().as_u16();
        let encoding = match response.headers().get(CONTENT_ENCODING) {
            Some(value) if self.inner.compressed => value.to_str().ok().and_then(Encoding::of),
            _ => None,
        };
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok((
            status,
            content_type,
            encoding,
            (connection, response.into_body()),
        ))
    }
}

/// Polls the connection until it ends (it then leaves `connection`). Its outcome needs
/// no handling here: a failure also fails the request or body it carried, which report it.
fn poll_connection(connection: &mut Option<Pin<Box<Connection>>>, cx: &mut Context<'_>) {
    if let Some(driving) = connection
        && driving.as_mut().poll(cx).is_ready()
    {
        *connection = None;
    }
}

/// Host, port and scheme of `uri` (`http` or `https`).
fn target_of(uri: &http::Uri) -> io::Result<Target> {
    let invalid =
        |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: {what}"));
    let tls = match uri.scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
        Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
        _ => return Err(invalid("only http:// and https:// URLs can be requested")),
    };
    let host = uri.host().ok_or_else(|| invalid("the URL names no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(Target { host, port, tls })
}

fn timed_out(url: String, limit: Duration) -> Error {
    Error::transport_failure(
        url,
        TransportFailure::Timeout,
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete answer within {limit:?}"),
        ),
    )
}

/// A response body as it arrives, driving its connection on every poll.
struct BodyStream {
    connection: Option<Pin<Box<Connection>>>,
    incoming: Incoming,
    /// The request's timeout, which covers the body too.
    deadline: Option<(Duration, Delay)>,
    url: String,
    done: bool,
}

impl Stream for BodyStream {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        poll_connection(&mut this.connection, cx);
        if let Some((limit, delay)) = &mut this.deadline
            && delay.as_mut().poll(cx).is_ready()
        {
            this.done = true;
            return Poll::Ready(Some(Err(timed_out(this.url.clone(), *limit))));
        }
        loop {
            match ready!(Pin::new(&mut this.incoming).poll_frame(cx)) {
                None => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Some(Err(error)) => {
                    this.done = true;
                    let error =
                        Error::transport_failure(this.url.clone(), TransportFailure::Body, error);
                    return Poll::Ready(Some(Err(error)));
                }
                Some(Ok(frame)) => {
                    // Trailers carry nothing livesync reads.
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_default_their_port_by_scheme_and_unbracket_ipv6() {
        let target = |url: &str| target_of(&url.parse().unwrap());
        let t = target("https://example.com/x").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("example.com", 443, true));
        let t = target("http://[::1]:8080/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("::1", 8080, false));
        assert!(target("ftp://h/").is_err());
    }

    /// A server on 127.0.0.1 answering one request with `answer` (a std thread, no runtime).
    fn one_answer(answer: &'static [u8]) -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/path?q=1", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = vec![0u8; 4096];
            let read = socket.read(&mut request).unwrap();
            socket.write_all(answer).unwrap();
            String::from_utf8_lossy(&request[..read]).into_owned()
        });
        (url, server)
    }

    fn client() -> Client {
        Client::new(&ClientSettings::new(Some("test/1"), true), Runtime::none()).unwrap()
    }

    #[test]
    fn a_request_completes_with_no_runtime_at_all() {
        let (url, server) =
            one_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        let response = futures::executor::block_on(client().execute(Request::get(&url))).unwrap();
        assert_eq!(response.status, 200);
        assert!(
            response.url.ends_with("/path"),
            "no query in {}",
            response.url
        );
        let body = futures::executor::block_on(super::super::read_capped(response, 16)).unwrap();
        assert!(matches!(body, super::super::Capped::Whole(b) if b == b"ok"));
        let request = server.join().unwrap().to_lowercase();
        assert!(
            request.starts_with("get /path?q=1 http/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nhost: 127.0.0.1:"), "{request}");
        assert!(request.contains("accept-encoding: gzip, zstd"), "{request}");
        assert!(
            request.contains("user-agent: livesync/") && request.contains(" test/1"),
            "{request}"
        );
    }

    #[test]
    fn a_refused_connection_is_a_connect_failure_naming_its_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/x");
        let error = futures::executor::block_on(client().execute(Request::get(&url))).unwrap_err();
        assert!(
            matches!(
                &error,
                Error::Transport {
                    kind: TransportFailure::Connect,
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            error.to_string().to_lowercase().contains("refused"),
            "{error}"
        );
    }

    #[test]
    fn a_silent_server_times_out_on_the_runtime_timer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let request = Request::get(&url).timeout(Duration::from_millis(100));
        let error = futures::executor::block_on(client().execute(request)).unwrap_err();
        assert!(
            matches!(
                &error,
                Error::Transport {
                    kind: TransportFailure::Timeout,
                    ..
                }
            ),
            "{error}"
        );
        drop(listener);
    }

    #[test]
    fn a_body_cut_short_is_a_body_failure() {
        let (url, server) = one_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this");
        futures::executor::block_on(async {
            let response = client().execute(Request::get(&url)).await.unwrap();
            server.join().unwrap();
            let error = super::super::read_capped(response, 1000)
                .await
                .err()
                .unwrap();
            assert!(
                matches!(
                    &error,
                    Error::Transport {
                        kind: TransportFailure::Body,
                        ..
                    }
                ),
                "{error}"
            );
        });
    }
}
