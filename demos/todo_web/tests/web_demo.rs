//! The web demo (`src/main.rs`) in a real browser: the test starts the demo binary on
//! 127.0.0.1, drives headless Chromium through chromedriver (WebDriver, with
//! fantoccini) like a person would — typing and clicking in the two device panes — and
//! checks that the panes converge through sync, also after a device was offline.
//! Once everything passed it saves the repository's `docs/web-demo.png`, the screenshot
//! the README shows (taken while device A was offline with a write queued).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); override
//! the paths with `CHROMIUM` and `CHROMEDRIVER`. Without them the test fails, it never
//! skips.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Upper bound for each thing the test waits for (start-up, a sync round trip).
const WAIT: Duration = Duration::from_secs(30);
/// How often a waiting step looks at the page again.
const POLL: Duration = Duration::from_millis(50);

/// The demo binary, which cargo builds for this package's integration tests.
fn demo_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_livesync-demo-todo-web"))
}

/// A browser or driver program from the environment or Debian's default path; fails
/// with what to install when it is not there.
fn program(variable: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: this browser test needs Debian's `chromium` and `chromium-driver` \
         (apt-get install chromium chromium-driver; .ci/run installs them), or set {variable} \
         to a {package} binary",
        path.display()
    );
    path
}

/// A child process that is killed when the test ends, however it ends.
struct Running {
    child: Child,
}

impl Running {
    fn spawn(command: &mut Command) -> Self {
        let program = format!("{:?}", command.as_std().get_program());
        let child = command
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("could not start {program}: {error}"));
        Self { child }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // `kill_on_drop` sends the signal; this also reaps the process when possible.
        let _ = self.child.start_kill();
        let _ = self.child.try_wait();
    }
}

/// Starts the demo on a free port and returns it with its address (read from its
/// first stdout line, `listening on http://127.0.0.1:<port>`).
async fn start_demo() -> (Running, String) {
    let mut demo = Running::spawn(
        Command::new(demo_binary())
            .args(["--port", "0"])
            .stdout(Stdio::piped()),
    );
    let stdout = demo.child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the demo prints its address within the time limit")
        .expect("the demo's stdout is readable")
        .expect("the demo printed its address before exiting");
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from the demo: {first:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // Keep reading, so the demo never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (demo, url)
}

/// A port that was free a moment ago (chromedriver needs a number, not port 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
        .port()
}

/// Starts chromedriver on 127.0.0.1 and waits until it accepts connections.
async fn start_chromedriver() -> (Running, String) {
    let chromedriver = program("CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver");
    let port = free_port();
    let driver = Running::spawn(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_for("chromedriver to listen", || async move {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(_) => Ok(()),
            Err(error) => Err(error.to_string()),
        }
    })
    .await;
    (driver, format!("http://127.0.0.1:{port}"))
}

/// A headless Chromium session: flags for a machine without a GPU or outside network,
/// and a fresh profile in `profile`.
async fn open_browser(driver_url: &str, profile: &Path) -> Client {
    let chromium = program("CHROMIUM", "/usr/bin/chromium", "Chromium");
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-quic".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--window-size=1200,640".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("a JSON object literal")
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(driver_url)
        .await
        .unwrap_or_else(|error| panic!("chromedriver could not start Chromium: {error}"))
}

/// Polls `check` until it returns `Ok`, for at most [`WAIT`]; on timeout fails naming
/// `what` and the last `Err` (what was seen instead).
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = "nothing yet".to_owned();
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(now)) => seen = now,
            // The deadline passed during a check: report the last one that finished.
            Err(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {WAIT:?} waiting for {what}; last seen: {seen}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What a pane shows, read in one script run (so it is one consistent moment, and no
/// element can go stale between two WebDriver calls while liveview patches the page).
#[derive(Debug, Clone, PartialEq)]
struct PaneView {
    connected: bool,
    status: String,
    pending: u64,
    open_list: String,
    list_synced: bool,
    /// The open list's stream line ("list synced", or why not).
    stream: String,
    /// `(description, done)` in display order.
    todos: Vec<(String, bool)>,
    /// The pane's error line (a failed write or connect), if shown.
    error: Option<String>,
}

impl PaneView {
    fn descriptions(&self) -> Vec<&str> {
        self.todos.iter().map(|(text, _)| text.as_str()).collect()
    }

    fn has(&self, description: &str) -> bool {
        self.descriptions().contains(&description)
    }

    fn done(&self, description: &str) -> Option<bool> {
        self.todos
            .iter()
            .find(|(text, _)| text == description)
            .map(|(_, done)| *done)
    }
}

const READ_PANE: &str = r#"
const pane = document.querySelector('#pane-' + arguments[0]);
if (!pane) return null;
const status = pane.querySelector('[data-testid=sync-status]');
const pending = pane.querySelector('[data-testid=pending]');
const list = pane.querySelector('.todo-list');
const stream = pane.querySelector('[data-testid=stream]');
if (!status || !pending || !list || !stream) return null;
return {
  connected: status.dataset.connected === 'true',
  status: status.textContent,
  pending: Number(pending.dataset.count),
  open_list: list.dataset.listId,
  list_synced: stream.dataset.synced === 'true',
  stream: stream.textContent,
  todos: Array.from(list.querySelectorAll('li.todo')).map(li =>
    [li.querySelector('.description').textContent, li.dataset.done === 'true']),
  error: pane.querySelector('[data-testid=write-error]')?.textContent ?? null,
};
"#;

/// The pane `a` or `b` as shown now; `None` while it is still loading.
async fn read_pane(browser: &Client, pane: &str) -> Option<PaneView> {
    let value = browser
        .execute(READ_PANE, vec![json!(pane)])
        .await
        .expect("the page runs the read script");
    if value.is_null() {
        return None;
    }
    let todos = value["todos"]
        .as_array()?
        .iter()
        .map(|todo| Some((todo[0].as_str()?.to_owned(), todo[1].as_bool()?)))
        .collect::<Option<Vec<_>>>()?;
    Some(PaneView {
        connected: value["connected"].as_bool()?,
        status: value["status"].as_str()?.to_owned(),
        pending: value["pending"].as_u64()?,
        open_list: value["open_list"].as_str()?.to_owned(),
        list_synced: value["list_synced"].as_bool()?,
        stream: value["stream"].as_str()?.to_owned(),
        todos,
        error: value["error"].as_str().map(str::to_owned),
    })
}

/// Waits until pane `pane` satisfies `ready`; returns what it showed then.
async fn wait_for_pane(
    browser: &Client,
    pane: &str,
    what: &str,
    ready: impl Fn(&PaneView) -> bool,
) -> PaneView {
    wait_for(&format!("pane {pane}: {what}"), || async {
        match read_pane(browser, pane).await {
            Some(view) if ready(&view) => Ok(view),
            Some(view) => Err(format!("{view:?}")),
            None => Err("the pane still loading".to_owned()),
        }
    })
    .await
}

/// Types `text` into a pane's new-todo box and clicks Add, as a user would.
async fn add_todo(browser: &Client, pane: &str, text: &str) {
    let input = browser
        .find(Locator::Css(&format!("#pane-{pane} .new-todo")))
        .await
        .expect("the pane has a new-todo input");
    input.click().await.expect("focus the input");
    input.send_keys(text).await.expect("type the todo");
    click(browser, &format!("#pane-{pane} .add-todo")).await;
}

async fn click(browser: &Client, selector: &str) {
    browser
        .find(Locator::Css(selector))
        .await
        .unwrap_or_else(|error| panic!("no element {selector}: {error}"))
        .click()
        .await
        .unwrap_or_else(|error| panic!("could not click {selector}: {error}"));
}

/// Clicks the checkbox or delete button of the todo `description` in `pane`.
async fn click_on_todo(browser: &Client, pane: &str, description: &str, control: &str) {
    let items = browser
        .find_all(Locator::Css(&format!("#pane-{pane} li.todo")))
        .await
        .expect("the pane lists todos");
    for item in items {
        let text = item
            .find(Locator::Css(".description"))
            .await
            .expect("a todo has a description")
            .text()
            .await
            .expect("the description's text");
        if text == description {
            item.find(Locator::Css(control))
                .await
                .unwrap_or_else(|error| panic!("todo {description:?} has no {control}: {error}"))
                .click()
                .await
                .expect("click the todo's control");
            return;
        }
    }
    panic!("pane {pane} shows no todo {description:?}");
}

/// The scenario, in the page. Returns a screenshot taken while device A was offline.
async fn drive(browser: &Client, url: &str) -> Vec<u8> {
    browser.goto(url).await.expect("the demo page loads");

    // Both devices start online, synced, with the first list open and its todos there.
    for pane in ["a", "b"] {
        wait_for_pane(browser, pane, "online with the seeded groceries", |view| {
            view.connected
                && view.open_list == "groceries"
                && view.list_synced
                && view.stream == "list synced"
                && view.descriptions() == ["milk", "bread"]
        })
        .await;
    }

    // Opening another list subscribes to its `list_todos` stream: its todos arrive.
    click(browser, "#pane-b .list[data-list-id=household]").await;
    wait_for_pane(browser, "b", "the household list, synced", |view| {
        view.open_list == "household"
            && view.list_synced
            && view.descriptions() == ["wash the dishes"]
    })
    .await;
    click(browser, "#pane-b .list[data-list-id=groceries]").await;
    wait_for_pane(browser, "b", "back on groceries", |view| {
        view.open_list == "groceries" && view.descriptions() == ["milk", "bread"]
    })
    .await;

    // Adding in A shows up in B after syncing.
    add_todo(browser, "a", "oat milk").await;
    wait_for_pane(browser, "a", "the new todo, uploaded", |view| {
        view.has("oat milk") && view.pending == 0
    })
    .await;
    wait_for_pane(browser, "b", "A's new todo", |view| view.has("oat milk")).await;

    // Completing in B and deleting in A reach the other pane too.
    click_on_todo(browser, "b", "bread", "input.toggle").await;
    wait_for_pane(browser, "a", "bread done (completed in B)", |view| {
        view.done("bread") == Some(true)
    })
    .await;
    click_on_todo(browser, "a", "milk", "button.delete").await;
    wait_for_pane(browser, "b", "milk gone (deleted in A)", |view| {
        !view.has("milk")
    })
    .await;

    // A goes offline and writes: the write is local and waits in A's upload queue.
    click(browser, "#pane-a .toggle-online").await;
    wait_for_pane(browser, "a", "offline", |view| !view.connected).await;
    add_todo(browser, "a", "written offline").await;
    let a = wait_for_pane(browser, "a", "the offline todo, queued", |view| {
        view.has("written offline") && view.pending == 1
    })
    .await;
    assert!(!a.connected, "A stayed offline: {a:?}");
    // B keeps syncing meanwhile: its own new todo makes a full round trip (uploaded,
    // then back in B through a checkpoint), and A's offline write is still not in B.
    add_todo(browser, "b", "added on B meanwhile").await;
    let b = wait_for_pane(browser, "b", "its own todo, uploaded", |view| {
        view.has("added on B meanwhile") && view.pending == 0
    })
    .await;
    assert!(
        !b.has("written offline"),
        "B got A's offline write before A reconnected: {b:?}"
    );
    let a = read_pane(browser, "a").await.expect("pane A is shown");
    assert!(
        a.pending == 1 && !a.has("added on B meanwhile"),
        "offline A neither uploaded nor downloaded: {a:?}"
    );
    // The README's picture: A offline with a queued write, B without it. Without a
    // focused input (whose caret blinks) the picture is the same on every run.
    browser
        .execute("document.activeElement?.blur()", vec![])
        .await
        .expect("the page runs the blur script");
    let screenshot = browser.screenshot().await.expect("a screenshot");

    // A reconnects: its queued write is uploaded, and both panes converge.
    click(browser, "#pane-a .toggle-online").await;
    wait_for_pane(browser, "a", "online with its queue uploaded", |view| {
        view.connected && view.pending == 0 && view.has("added on B meanwhile")
    })
    .await;
    wait_for_pane(browser, "b", "A's offline write", |view| {
        view.has("written offline")
    })
    .await;
    let expected = [
        ("bread", true),
        ("oat milk", false),
        ("written offline", false),
        ("added on B meanwhile", false),
    ];
    let converged = |view: &PaneView| {
        let mut shown = view.todos.clone();
        shown.sort();
        let mut wanted: Vec<(String, bool)> = expected
            .iter()
            .map(|(text, done)| ((*text).to_owned(), *done))
            .collect();
        wanted.sort();
        shown == wanted
    };
    let a = wait_for_pane(browser, "a", "converged", converged).await;
    let b = wait_for_pane(browser, "b", "converged", |view| {
        converged(view) && view.todos == a.todos
    })
    .await;
    assert_eq!(
        a.todos, b.todos,
        "both panes show the same list in the same order"
    );
    assert!(
        a.status.starts_with("online") && b.status.starts_with("online"),
        "{a:?} {b:?}"
    );
    assert!(
        a.error.is_none() && b.error.is_none(),
        "no action failed: {a:?} {b:?}"
    );
    screenshot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_converge_in_a_real_browser_also_after_offline_writes() {
    let (_demo, url) = start_demo().await;
    let (_driver, driver_url) = start_chromedriver().await;
    let profile = tempfile::tempdir().expect("a temporary browser profile");
    let browser = open_browser(&driver_url, profile.path()).await;

    // Close the browser whatever happens in the scenario, then report its outcome: a
    // panic in `drive` must not leave Chromium running.
    let outcome = AssertUnwindSafe(drive(&browser, &url)).catch_unwind().await;
    let closed = browser.close().await;
    let screenshot = match outcome {
        Ok(screenshot) => screenshot,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    closed.expect("the browser session closes");

    assert!(
        screenshot.starts_with(b"\x89PNG"),
        "the screenshot is a PNG"
    );
    // The repository root's docs/, two levels above this package.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/web-demo.png");
    std::fs::create_dir_all(path.parent().expect("docs/")).expect("create docs/");
    std::fs::write(&path, screenshot).expect("save docs/web-demo.png");
}
