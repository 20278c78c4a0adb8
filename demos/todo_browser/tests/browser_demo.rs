//! The browser demo end to end: the test starts the demo binary (which builds the wasm
//! app and starts the test service), then drives two headless Chromium sessions through
//! chromedriver, each with its own profile, so each is a device with its own SQLite
//! database in its own OPFS:
//! - a todo added in A shows up in B;
//! - A goes offline, adds a todo, reloads: the todo and its queued upload are still
//!   there (read back from storage), and A is still offline;
//! - A goes online: the write uploads and both devices show it;
//! - a second tab of A (same profile) gets the documented error: the database is open
//!   in another tab;
//! - figures for the README: bundle size, page load → first synced list, and a first
//!   sync of 10,000 rows in the browser against the same sync by native livesync.
//!
//! Needs the wasm32 target, clang, Debian's `chromium` and `chromium-driver` (`.ci/run`
//! installs them; override with `CHROMIUM` / `CHROMEDRIVER`). It never skips.

use std::future::Future;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use livesync::{Column, Database, Schema, SyncOptions, Table};
use livesync_demo_webdriver::{Running, start_chromedriver};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Upper bound for each thing the test waits for once the demo runs.
const WAIT: Duration = Duration::from_secs(60);
/// The demo builds the wasm app (profile wasm-release) before it listens: minutes on a cold cache.
const BUILD_WAIT: Duration = Duration::from_secs(1800);
/// Todos the figures run seeds into the service.
const SEED: usize = 10_000;

/// The running demo: its page, its sync service, the bundle size it printed.
struct Demo {
    _process: Running,
    url: String,
    sync_url: String,
    bundle: String,
}

async fn start_demo(seed: usize) -> Demo {
    let mut process = Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_livesync-demo-todo-browser"))
            .args(["--port", "0", "--seed", &seed.to_string()])
            .stdout(Stdio::piped()),
    );
    let stdout = process.child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut bundle, mut sync_url) = (String::new(), String::new());
    let url = tokio::time::timeout(BUILD_WAIT, async {
        while let Some(line) = lines.next_line().await.expect("the demo's stdout") {
            if let Some(rest) = line.strip_prefix("bundle: ") {
                bundle = rest.to_owned();
            } else if let Some(rest) = line.strip_prefix("sync service at ") {
                sync_url = rest.to_owned();
            } else if let Some(rest) = line.strip_prefix("listening on ") {
                return rest.to_owned();
            }
        }
        panic!("the demo exited before it listened (its stderr is above)");
    })
    .await
    .expect("the demo builds and listens within the time limit");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    Demo {
        _process: process,
        url,
        sync_url,
        bundle,
    }
}

/// [`livesync_demo_webdriver::wait_for`] with this test's limit.
async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    livesync_demo_webdriver::wait_for(what, WAIT, check).await
}

/// One device: a headless Chromium with its own profile.
async fn open_browser(driver_url: &str, profile: &std::path::Path) -> Client {
    livesync_demo_webdriver::open_browser(driver_url, profile, (900, 700)).await
}

/// What the page shows, read in one script run.
#[derive(Debug, Clone, PartialEq)]
struct View {
    connected: bool,
    status: String,
    pending: u64,
    todos: Vec<(String, bool)>,
    /// All rows of the list, drawn or not.
    count: usize,
    first_synced_ms: Option<f64>,
    /// When the page's `connect` started (same clock).
    sync_started_ms: Option<f64>,
    /// Added todos whose write has not resolved (not yet saved to OPFS).
    saving: u64,
}

impl View {
    fn has(&self, description: &str) -> bool {
        self.todos.iter().any(|(text, _)| text == description)
    }
}

const READ_VIEW: &str = r#"
const error = document.querySelector('[data-testid=open-error]');
if (error) return { error: error.textContent };
const status = document.querySelector('[data-testid=sync-status]');
const list = document.querySelector('[data-testid=todos]');
const input = document.querySelector('[data-testid=new-todo]');
if (!status || !status.dataset.pending || !list || !input) return null;
return {
  connected: status.dataset.connected === 'true',
  status: status.textContent,
  pending: Number(status.dataset.pending),
  todos: Array.from(list.querySelectorAll('li.todo')).map(li =>
    [li.querySelector('.description').textContent, li.dataset.done === 'true']),
  count: Number(list.dataset.count || 0),
  first_synced_ms: list.dataset.firstSyncedMs ? Number(list.dataset.firstSyncedMs) : null,
  sync_started_ms: list.dataset.syncStartedMs ? Number(list.dataset.syncStartedMs) : null,
  saving: Number(input.dataset.saving || 0),
};
"#;

/// The page now: `Ok(None)` while loading, `Err` with the app's open error.
async fn read_view(browser: &Client) -> Result<Option<View>, String> {
    let value = browser
        .execute(READ_VIEW, vec![])
        .await
        .map_err(|e| format!("the read script failed: {e}"))?;
    if value.is_null() {
        return Ok(None);
    }
    if let Some(error) = value["error"].as_str() {
        return Err(error.to_owned());
    }
    let todos = value["todos"]
        .as_array()
        .map(|todos| {
            todos
                .iter()
                .filter_map(|t| Some((t[0].as_str()?.to_owned(), t[1].as_bool()?)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(View {
        connected: value["connected"].as_bool().unwrap_or(false),
        status: value["status"].as_str().unwrap_or_default().to_owned(),
        pending: value["pending"].as_u64().unwrap_or(0),
        todos,
        count: value["count"].as_u64().unwrap_or(0) as usize,
        first_synced_ms: value["first_synced_ms"].as_f64(),
        sync_started_ms: value["sync_started_ms"].as_f64(),
        saving: value["saving"].as_u64().unwrap_or(0),
    }))
}

async fn wait_for_view(browser: &Client, what: &str, ready: impl Fn(&View) -> bool) -> View {
    wait_for(what, || async {
        match read_view(browser).await {
            Ok(Some(view)) if ready(&view) => Ok(view),
            Ok(Some(view)) => Err(format!("{view:?}")),
            Ok(None) => Err("still loading".to_owned()),
            Err(error) => Err(format!("the app failed to start: {error}")),
        }
    })
    .await
}

async fn add_todo(browser: &Client, text: &str) {
    let input = browser
        .find(Locator::Css("[data-testid=new-todo]"))
        .await
        .expect("a new-todo input");
    input.click().await.expect("focus the input");
    input.send_keys(text).await.expect("type the todo");
    browser
        .find(Locator::Css("[data-testid=add-todo]"))
        .await
        .expect("an Add button")
        .click()
        .await
        .expect("click Add");
}

async fn toggle_online(browser: &Client) {
    browser
        .find(Locator::Css("[data-testid=toggle-online]"))
        .await
        .expect("the online/offline button")
        .click()
        .await
        .expect("click it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_sync_offline_writes_survive_a_reload_and_a_second_tab_is_refused() {
    let demo = start_demo(0).await;
    eprintln!("bundle: {}", demo.bundle);
    let (_driver, driver_url) = start_chromedriver().await;
    let profiles = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open_browser(&driver_url, profiles.0.path()).await;
    let b = open_browser(&driver_url, profiles.1.path()).await;
    a.goto(&demo.url).await.unwrap();
    b.goto(&demo.url).await.unwrap();
    let seeded = |v: &View| v.connected && v.has("milk") && v.has("bread") && v.pending == 0;
    let first = wait_for_view(&a, "A's first sync", |v| {
        seeded(v) && v.first_synced_ms.is_some()
    })
    .await;
    wait_for_view(&b, "B's first sync", seeded).await;
    eprintln!(
        "figures: 3 rows: page load to first rendered synced list {:.0} ms (navigation start to render)",
        first.first_synced_ms.unwrap_or(f64::NAN)
    );

    // A → B through the service.
    add_todo(&a, "from A").await;
    wait_for_view(&b, "A's todo in B", |v| v.has("from A")).await;
    wait_for_view(&a, "A's upload done", |v| v.has("from A") && v.pending == 0).await;

    // A offline: the write waits in A's queue, B does not get it.
    toggle_online(&a).await;
    wait_for_view(&a, "A offline", |v| {
        !v.connected && v.status.contains("offline")
    })
    .await;
    add_todo(&a, "written offline").await;
    // The list shows the write at its commit; its future resolves once the page has
    // saved it to OPFS. A reload before that may lose it (a CI run did), so wait.
    wait_for_view(&a, "the offline write queued and saved", |v| {
        v.has("written offline") && v.pending == 1 && v.saving == 0
    })
    .await;

    // Reload A: the database comes back from OPFS with the queued write; still offline.
    a.refresh().await.unwrap();
    let reloaded = wait_for_view(&a, "A after the reload", |v| v.has("written offline")).await;
    assert_eq!(
        reloaded.pending, 1,
        "the write is still queued: {reloaded:?}"
    );
    assert!(
        !reloaded.connected,
        "still offline after the reload: {reloaded:?}"
    );
    assert!(
        reloaded.has("from A") && reloaded.has("milk"),
        "{reloaded:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b_now = read_view(&b).await.unwrap().unwrap();
    assert!(
        !b_now.has("written offline"),
        "B cannot have it yet: {b_now:?}"
    );

    // A second tab of A: same profile, same storage; the app says why it cannot open.
    let first_tab = a.window().await.unwrap();
    let second = a.new_window(true).await.unwrap();
    a.switch_to_window(second.handle.clone()).await.unwrap();
    a.goto(&demo.url).await.unwrap();
    let refused = wait_for("the second tab's message", || async {
        match read_view(&a).await {
            Err(message) => Ok(message),
            Ok(view) => Err(format!("{view:?}")),
        }
    })
    .await;
    assert!(
        refused.contains("open in another tab"),
        "the second tab names the cause: {refused}"
    );
    a.close_window().await.unwrap();
    a.switch_to_window(first_tab).await.unwrap();

    // A online: the queued write uploads, both converge.
    toggle_online(&a).await;
    wait_for_view(&a, "A uploaded", |v| v.connected && v.pending == 0).await;
    let final_b = wait_for_view(&b, "the offline write in B", |v| v.has("written offline")).await;
    let final_a = read_view(&a).await.unwrap().unwrap();
    let names = |v: &View| {
        let mut names: Vec<_> = v.todos.iter().map(|(t, _)| t.clone()).collect();
        names.sort();
        names
    };
    assert_eq!(names(&final_a), names(&final_b), "A and B converge");

    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Figures for the README (printed; never asserted on speed): the bundle, page load →
/// first rendered synced list, and a first sync of 10,000 rows in the browser against
/// native livesync syncing the same rows from the same service in the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_first_sync_of_ten_thousand_rows_in_the_browser_and_natively() {
    let demo = start_demo(SEED).await;
    let (_driver, driver_url) = start_chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = open_browser(&driver_url, profile.path()).await;

    let started = Instant::now();
    browser.goto(&demo.url).await.unwrap();
    let total = SEED + 3;
    let view = wait_for_view(
        &browser,
        "the browser's first sync of the seeded rows",
        |v| v.count == total && v.first_synced_ms.is_some(),
    )
    .await;
    let in_browser = started.elapsed();
    let first_synced_ms = view.first_synced_ms.unwrap();
    // Connect → first rendered synced list, on the page's clock: the browser's sync,
    // comparable with the native connect → first sync below.
    let browser_sync_ms = first_synced_ms - view.sync_started_ms.expect("the page connected");
    browser.close().await.unwrap();

    // Native livesync: the same service, the same rows, a file database.
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("native.db"), native_schema())
        .await
        .unwrap();
    let token = page_token(&demo.url).await;
    let started = Instant::now();
    let connector = livesync::HttpConnector::builder(demo.sync_url.clone())
        .token(token)
        .upload_url(format!("{}/upload", demo.sync_url))
        .build()
        .unwrap();
    db.connect(connector, SyncOptions::default()).await.unwrap();
    tokio::time::timeout(WAIT, db.wait_for_first_sync())
        .await
        .expect("native first sync in time")
        .unwrap();
    let native = started.elapsed();
    let rows: i64 = db
        .query::<i64>("SELECT count(*) FROM todos")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows as usize, total);
    db.close().await;

    let native_ms = native.as_secs_f64() * 1000.0;
    eprintln!(
        "figures: bundle {}; {total} rows: page load to first rendered synced list {first_synced_ms:.0} ms (navigation start to render; {:.0} ms from goto); connect to rendered synced list in the browser {browser_sync_ms:.0} ms vs native connect to first sync {native_ms:.0} ms ({:.2}x)",
        demo.bundle,
        in_browser.as_secs_f64() * 1000.0,
        browser_sync_ms / native_ms
    );
}

fn native_schema() -> Schema {
    Schema::new([Table::new(
        "todos",
        [
            Column::text("description"),
            Column::integer("done"),
            Column::text("created_at"),
        ],
    )])
}

/// The page's token, from the demo's `/config.json` (plain HTTP over a TCP stream).
async fn page_token(page: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = page.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!("GET /config.json HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let body = response.split("\r\n\r\n").nth(1).expect("a body");
    let config: Value = serde_json::from_str(body).expect("JSON config");
    config["token"].as_str().expect("a token").to_owned()
}
