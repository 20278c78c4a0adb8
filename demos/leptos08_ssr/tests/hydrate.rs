//! The Leptos 0.8 example in headless Chromium: the test builds the page for wasm32
//! (`hydrate`, then the wasm-bindgen CLI), starts the server with that bundle, opens the
//! page, waits until it has hydrated, and checks that the list, first rendered on the
//! server, updates in the browser when device A writes a todo that syncs to the
//! browser's own database.
//!
//! Needs the wasm32 target, clang, the wasm-bindgen CLI matching Cargo.lock (on PATH or
//! in `$CARGO_TARGET_DIR/tools/bin`, where scripts/test-browser installs it), Debian's
//! `chromium` and `chromium-driver` (override with `CHROMIUM` / `CHROMEDRIVER`). It
//! never skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{request, start_server};
use fantoccini::Client;
use livesync_demo_webdriver::{open_browser, start_chromedriver, wait_for};

/// The wasm build from nothing can take a while on 2 cores.
const BUILD_WAIT: Duration = Duration::from_secs(1800);
const WAIT: Duration = Duration::from_secs(60);
/// What the server's hydration scripts load (`OUTPUT_NAME` in src/main.rs).
const OUTPUT_NAME: &str = "livesync_leptos08";

/// Builds the page for the browser; the directory the bundle was written to.
fn build_bundle() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let target = if target.is_relative() {
        root.join(target)
    } else {
        target
    };
    // A target dir of its own: the hydrate build's features must not mix with the
    // native (`ssr`) build's.
    let build_dir = target.join("leptos08-demo");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "-p", "livesync-demo-leptos08-ssr", "--lib"])
        .args([
            "--target",
            "wasm32-unknown-unknown",
            "--no-default-features",
            "--features",
            "hydrate",
        ])
        .env("CARGO_TARGET_DIR", &build_dir)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "the hydrate build failed (above); it needs the wasm32 target and clang"
    );
    let wasm = build_dir.join("wasm32-unknown-unknown/debug/livesync_demo_leptos08_ssr.wasm");
    let site = build_dir.join("site");
    let bindgen = wasm_bindgen_cli(&root, &target);
    let status = Command::new(&bindgen)
        .args([
            "--target",
            "web",
            "--no-typescript",
            "--out-name",
            OUTPUT_NAME,
            "--out-dir",
        ])
        .arg(&site)
        .arg(&wasm)
        .status()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", bindgen.display()));
    assert!(
        status.success(),
        "{} failed on {}",
        bindgen.display(),
        wasm.display()
    );
    site
}

/// The wasm-bindgen CLI of the version Cargo.lock pins: on PATH, or where
/// scripts/test-browser installs it.
fn wasm_bindgen_cli(root: &Path, target: &Path) -> PathBuf {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock");
    let version = lock
        .split("\n[[package]]\n")
        .find(|p| p.starts_with("name = \"wasm-bindgen\"\n"))
        .and_then(|p| p.lines().nth(1))
        .and_then(|l| l.strip_prefix("version = \"")?.strip_suffix('"'))
        .expect("Cargo.lock pins wasm-bindgen")
        .to_owned();
    let candidates = [
        PathBuf::from("wasm-bindgen"),
        target.join("tools/bin/wasm-bindgen"),
    ];
    candidates
        .into_iter()
        .find(|program| {
            Command::new(program)
                .arg("--version")
                .output()
                .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(&version))
        })
        .unwrap_or_else(|| {
            panic!("wasm-bindgen-cli {version} is neither on PATH nor in {}/tools/bin (scripts/test-browser installs it)", target.display())
        })
}

/// The list as the browser shows it, once the page has hydrated.
async fn hydrated_list(browser: &Client) -> Result<Vec<String>, String> {
    let value = browser
        .execute(
            "if (document.body.dataset.hydrated !== 'true') return null;
             return Array.from(document.querySelectorAll('#todos li')).map(li => li.textContent);",
            vec![],
        )
        .await
        .map_err(|e| e.to_string())?;
    match value {
        serde_json::Value::Array(items) => Ok(items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect()),
        other => Err(format!("not hydrated yet: {other}")),
    }
}

/// What the page's local-resource paragraph says.
async fn local_text(browser: &Client) -> Option<String> {
    let value = browser
        .execute(
            "return document.getElementById('local').textContent",
            vec![],
        )
        .await
        .ok()?;
    value.as_str().map(str::to_owned)
}

#[tokio::test]
async fn the_hydrated_page_updates_when_a_synced_row_arrives() {
    let site = tokio::time::timeout(BUILD_WAIT, tokio::task::spawn_blocking(build_bundle))
        .await
        .expect("the bundle builds in time")
        .expect("the build did not panic");
    let (_server, addr) = start_server(&[Path::new("--site"), &site]).await;
    let (_driver, driver_url) = start_chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = open_browser(&driver_url, profile.path(), (900, 700)).await;
    browser.goto(&format!("http://{addr}/")).await.unwrap();

    let first = wait_for("the page hydrates", WAIT, || hydrated_list(&browser)).await;
    assert_eq!(first, ["milk", "bread", "coffee (written on device A)"]);
    // The local resource, a placeholder in the server's HTML, loads from the browser's
    // database once hydrated.
    let local = wait_for("the local resource loads", WAIT, || async {
        local_text(&browser)
            .await
            .filter(|t| t.contains("milk"))
            .ok_or_else(|| "still the placeholder".to_owned())
    })
    .await;
    assert_eq!(local, "milk, bread, coffee (written on device A)");

    let written = request(
        &addr,
        "POST",
        "/device-a/todos",
        Some("id=t4&description=tea"),
    )
    .await;
    assert!(written.starts_with("HTTP/1.1 204"), "{written}");
    let updated = wait_for(
        "the hydrated list shows device A's new todo",
        WAIT,
        || async {
            let list = hydrated_list(&browser).await?;
            let count = browser
                .execute(
                    "return document.getElementById('count').textContent",
                    vec![],
                )
                .await
                .map_err(|e| e.to_string())?;
            if list.len() == 4 {
                Ok(list)
            } else {
                Err(format!("still {list:?}; count {count}"))
            }
        },
    )
    .await;
    assert_eq!(updated[3], "tea");
    let local = wait_for("the local resource follows too", WAIT, || async {
        local_text(&browser)
            .await
            .filter(|t| t.ends_with("tea"))
            .ok_or_else(|| "no tea yet".to_owned())
    })
    .await;
    assert_eq!(local, "milk, bread, coffee (written on device A), tea");
    // A live update is not a load: the Suspense fallback is not on the page.
    let fallback = browser.source().await.unwrap().contains("Loading todos");
    assert!(
        !fallback,
        "the Suspense fallback is not shown for a live update"
    );
    browser.close().await.unwrap();
}
