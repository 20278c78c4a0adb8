//! The server-rendered Leptos example serves its synced rows over HTTP: it runs the
//! example binary, loads the page from 127.0.0.1 and checks the list inside `<Suspense>`.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const WAIT: Duration = Duration::from_secs(60);

/// The example binary, which cargo builds for this package's integration tests.
fn example_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_livesync-demo-leptos-ssr"))
}

/// `GET /` over HTTP/1.1 on `addr`; the whole response as text.
async fn get_page(addr: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn the_server_rendered_page_lists_the_synced_rows() {
    let mut server = tokio::process::Command::new(example_binary())
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

    let page = tokio::time::timeout(WAIT, get_page(&addr))
        .await
        .expect("the page renders in time");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    // Rendered inside <Suspense> once the resource resolved: rows, not the fallback.
    assert!(!page.contains("Loading todos"), "{page}");
    let items: Vec<&str> = page
        .split("<li ")
        .skip(1)
        .map(|item| {
            let text = &item[item.find('>').unwrap() + 1..];
            &text[..text.find("</li>").unwrap()]
        })
        .collect();
    assert_eq!(
        items,
        ["milk", "bread", "coffee (written on device A)"],
        "{page}"
    );
    assert!(page.contains("data-id=\"t3\""), "{page}");
    assert!(page.contains(">synced<"), "{page}");

    // Every request renders the database as it is: a second load is the same page.
    let again = get_page(&addr).await;
    assert_eq!(again.matches("<li ").count(), 3, "{again}");
    server.kill().await.unwrap();
}
