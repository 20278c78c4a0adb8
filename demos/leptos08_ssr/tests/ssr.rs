//! The Leptos 0.8 example over HTTP: the server-rendered page lists the synced rows
//! inside `<Suspense>` (resolved on the server, not the fallback), carries the resource's
//! value for hydration and the hydration scripts, and each request renders the database
//! as it is then.

mod common;

use common::{request, start_server};

#[tokio::test]
async fn the_server_rendered_page_lists_the_synced_rows() {
    let (mut server, addr) = start_server(&[]).await;

    let page = request(&addr, "GET", "/", None).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        !page.contains("Loading todos"),
        "resolved on the server: {page}"
    );
    assert_eq!(
        list_items(&page),
        ["milk", "bread", "coffee (written on device A)"],
        "{page}"
    );
    assert!(page.contains("data-id=\"t3\""), "{page}");
    assert!(page.contains(">synced<"), "{page}");
    // The local resource loads in the browser only: its placeholder is on the page.
    assert!(page.contains("loading on this device…"), "{page}");
    // The hydration scripts load the bundle, and the resource's value travels with the
    // page (serialized as JSON) so the browser does not load it again.
    assert!(page.contains("/pkg/livesync_leptos08.js"), "{page}");
    assert!(
        page.contains(
            r#"__RESOLVED_RESOURCES[0] = "{\"Ok\":[{\"id\":\"t1\",\"description\":\"milk\"}"#
        ),
        "the serialized resource: {page}"
    );

    // Device A writes; the server's database receives it, so the next render shows it.
    let written = request(
        &addr,
        "POST",
        "/device-a/todos",
        Some("id=t4&description=tea"),
    )
    .await;
    assert!(written.starts_with("HTTP/1.1 204"), "{written}");
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let again = request(&addr, "GET", "/", None).await;
        if list_items(&again).len() == 4 {
            assert_eq!(list_items(&again)[3], "tea", "{again}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "t4 never rendered: {again}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.kill().await.unwrap();
}

/// The texts of the page's `<li>` elements, in order.
fn list_items(page: &str) -> Vec<&str> {
    page.split("<li ")
        .skip(1)
        .map(|item| {
            let text = &item[item.find('>').unwrap() + 1..];
            &text[..text.find("</li>").unwrap()]
        })
        .collect()
}
