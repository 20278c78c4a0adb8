//! Starting the example server and talking HTTP/1.1 to it, for both tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;

/// Upper bound for the server's start and each request.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// The example server, started with `args`, and the `127.0.0.1:PORT` it listens on.
/// Killed when the `Child` is dropped.
pub(crate) async fn start_server(args: &[&Path]) -> (Child, String) {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_livesync-demo-leptos08-ssr"));
    let mut server = tokio::process::Command::new(binary)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the example starts");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.to_owned();
            }
        }
        panic!("the example exited before listening");
    })
    .await
    .expect("the example listens within a minute");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    (server, addr)
}

/// One HTTP/1.1 request to `addr`; the whole response as text (bounded by [`WAIT`]).
pub(crate) async fn request(addr: &str, method: &str, path: &str, form: Option<&str>) -> String {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = form.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} answered within {WAIT:?}"))
}
