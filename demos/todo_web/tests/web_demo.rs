//! The web demo (`src/main.rs`) in a real browser: the test starts the demo binary on
//! 127.0.0.1, drives headless Chromium through chromedriver (WebDriver, with
//! fantoccini) like a person would — typing and clicking in the two device panes — and
//! checks that the panes converge through sync, also after a device was offline; that
//! the status badge counts the writes waiting for upload, the input keeps the focus
//! after an add, a narrow window stacks the panes, and a stopped server gets a banner.
//! Once everything passed it saves the repository's `docs/web-demo.png`, the screenshot
//! the README shows (taken while device A was offline with a write queued). A second
//! test starts the demo on a port that is taken and checks what it says.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); override
//! the paths with `CHROMIUM` and `CHROMEDRIVER`. Without them the test fails, it never
//! skips.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use futures::FutureExt;
use livesync_demo_webdriver::{Running, start_chromedriver};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Upper bound for each thing the test waits for (start-up, a sync round trip).
const WAIT: Duration = Duration::from_secs(30);

/// The demo binary, which cargo builds for this package's integration tests.
fn demo_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_livesync-demo-todo-web"))
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

/// [`livesync_demo_webdriver::wait_for`] with this test's limit.
async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    livesync_demo_webdriver::wait_for(what, WAIT, check).await
}

/// A headless Chromium session with a fresh profile in `profile`.
async fn open_browser(driver_url: &str, profile: &Path) -> Client {
    livesync_demo_webdriver::open_browser(driver_url, profile, (1200, 640)).await
}

/// What a pane shows, read in one script run (so it is one consistent moment, and no
/// element can go stale between two WebDriver calls while liveview patches the page).
#[derive(Debug, Clone, PartialEq)]
struct PaneView {
    connected: bool,
    /// The status badge's text, e.g. `offline · 1 waiting to upload`.
    status: String,
    /// Writes in the upload queue (the badge's `data-pending`).
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
const list = pane.querySelector('.todo-list');
const stream = pane.querySelector('[data-testid=stream]');
// `data-pending` is empty until the pane has read its upload queue.
if (!status || !status.dataset.pending || !list || !stream) return null;
return {
  connected: status.dataset.connected === 'true',
  status: status.textContent,
  pending: Number(status.dataset.pending),
  open_list: list.dataset.listId,
  list_synced: stream.dataset.synced === 'true',
  stream: stream.textContent,
  todos: Array.from(list.querySelectorAll('li.todo')).map(li =>
    [li.querySelector('.description').textContent, li.dataset.done === 'true']),
  error: pane.querySelector('[data-testid=write-error]')?.textContent ?? null,
};
"#;

/// Blurs the focused element and repaints the whole page (a background flip over two
/// frames), then waits for that paint.
const SETTLE_FOR_SCREENSHOT: &str = r#"
const done = arguments[arguments.length - 1];
const frames = (count, then) =>
  count === 0 ? then() : requestAnimationFrame(() => frames(count - 1, then));
document.activeElement?.blur();
document.body.style.backgroundColor = '#000';
frames(2, () => {
  document.body.style.backgroundColor = '';
  frames(2, () => done(true));
});
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
    type_new_todo(browser, pane, text).await;
    click(browser, &format!("#pane-{pane} .add-todo")).await;
}

/// Types `text` into a pane's new-todo box and presses Enter.
async fn add_todo_with_enter(browser: &Client, pane: &str, text: &str) {
    type_new_todo(browser, pane, &format!("{text}{}", char::from(Key::Enter))).await;
}

async fn type_new_todo(browser: &Client, pane: &str, keys: &str) {
    let input = browser
        .find(Locator::Css(&format!("#pane-{pane} .new-todo")))
        .await
        .expect("the pane has a new-todo input");
    input.click().await.expect("focus the input");
    input.send_keys(keys).await.expect("type the todo");
}

/// Waits until the focus is in pane `pane`'s new-todo input, and that input is empty
/// (ready for the next todo).
async fn wait_for_focus_in_new_todo(browser: &Client, pane: &str, after: &str) {
    let script = r#"
        const focused = document.activeElement;
        if (!focused || focused === document.body) return 'nothing';
        const wanted = focused.matches('#pane-' + arguments[0] + ' .new-todo');
        return wanted && focused.value === '' ? 'ok'
            : focused.tagName.toLowerCase() + '.' + focused.className + ' value=' + JSON.stringify(focused.value ?? null);
    "#;
    wait_for(
        &format!("the focus in pane {pane}'s empty new-todo input after {after}"),
        || async {
            let focused = browser
                .execute(script, vec![json!(pane)])
                .await
                .map_err(|error| error.to_string())?;
            match focused.as_str() {
                Some("ok") => Ok(()),
                other => Err(format!("focused: {other:?}")),
            }
        },
    )
    .await;
}

/// The connection-lost banner: `Ok(None)` while hidden, `Ok(Some(text))` once shown
/// (with the panes dimmed), `Err` when the page has no banner at all.
async fn connection_banner(browser: &Client) -> Result<Option<String>, String> {
    let script = r#"
        const banner = document.getElementById('connection-lost');
        if (!banner) return { missing: true };
        const box = banner.getBoundingClientRect();
        return {
            shown: !banner.hidden && getComputedStyle(banner).display !== 'none' && box.height > 0,
            top: box.top,
            text: banner.textContent,
            dimmed: document.body.classList.contains('disconnected'),
        };
    "#;
    let banner = browser
        .execute(script, vec![])
        .await
        .map_err(|error| error.to_string())?;
    if banner["missing"] == json!(true) {
        return Err("the page has no #connection-lost banner".to_owned());
    }
    if banner["shown"] != json!(true) {
        return Ok(None);
    }
    // Shown means in sight: at the top of the window, with the panes dimmed.
    let at_top = banner["top"].as_f64().is_some_and(|top| top.abs() < 1.0);
    if !at_top || banner["dimmed"] != json!(true) {
        return Err(format!(
            "banner shown, but not in sight or panes not dimmed: {banner}"
        ));
    }
    Ok(banner["text"].as_str().map(str::to_owned))
}

/// Where the two panes are: `[left, top, right, bottom]` of each, the viewport's width
/// and the page's scroll width.
async fn pane_boxes(browser: &Client) -> Value {
    let script = r#"
        const edges = id => {
            const box = document.getElementById(id).getBoundingClientRect();
            return [box.left, box.top, box.right, box.bottom];
        };
        return {
            a: edges('pane-a'),
            b: edges('pane-b'),
            viewport: document.documentElement.clientWidth,
            scroll_width: document.documentElement.scrollWidth,
        };
    "#;
    browser
        .execute(script, vec![])
        .await
        .expect("the page runs the layout script")
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

/// The scenario, in the page; ends by stopping `demo`, the server. Returns a
/// screenshot taken while device A was offline.
async fn drive(browser: &Client, url: &str, demo: &mut Running) -> Vec<u8> {
    browser.goto(url).await.expect("the demo page loads");

    // Both devices start online, synced, with the first list open and its todos there.
    for pane in ["a", "b"] {
        wait_for_pane(browser, pane, "online with the seeded groceries", |view| {
            view.connected
                && view.status == "online · synced"
                && view.pending == 0
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

    assert_eq!(
        connection_banner(browser).await,
        Ok(None),
        "no connection-lost banner while the server runs"
    );

    // Adding in A (with Enter) shows up in B after syncing. The focus stays in A's input,
    // so the next todo can be typed at once.
    add_todo_with_enter(browser, "a", "oat milk").await;
    wait_for_focus_in_new_todo(browser, "a", "Enter").await;
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
    // The badge says what waits: not "synced" while a write is not uploaded.
    let a = wait_for_pane(browser, "a", "the offline todo, queued", |view| {
        view.has("written offline")
            && view.pending == 1
            && view.status == "offline · 1 waiting to upload"
    })
    .await;
    assert!(!a.connected, "A stayed offline: {a:?}");
    // B keeps syncing meanwhile: its own new todo makes a full round trip (uploaded,
    // then back in B through a checkpoint), and A's offline write is still not in B.
    add_todo(browser, "b", "added on B meanwhile").await;
    // Adding with the Add button also leaves the focus in the input.
    wait_for_focus_in_new_todo(browser, "b", "clicking Add").await;
    let b = wait_for_pane(browser, "b", "its own todo, uploaded", |view| {
        view.has("added on B meanwhile") && view.pending == 0 && view.status == "online · synced"
    })
    .await;
    assert!(
        !b.has("written offline"),
        "B got A's offline write before A reconnected: {b:?}"
    );
    let a = read_pane(browser, "a").await.expect("pane A is shown");
    assert!(
        a.pending == 1
            && a.status == "offline · 1 waiting to upload"
            && !a.has("added on B meanwhile"),
        "offline A neither uploaded nor downloaded: {a:?}"
    );
    // The README's picture: A offline with a queued write, B without it. The same on
    // every run: no focused input (its caret blinks), and the whole page painted afresh
    // (after partial repaints, rounded corners can differ by a shade from run to run).
    browser
        .execute_async(SETTLE_FOR_SCREENSHOT, vec![])
        .await
        .expect("the page runs the settle script");
    let screenshot = browser.screenshot().await.expect("a screenshot");

    // A reconnects: its queued write is uploaded, and both panes converge.
    click(browser, "#pane-a .toggle-online").await;
    wait_for_pane(browser, "a", "online with its queue uploaded", |view| {
        view.connected
            && view.pending == 0
            && view.status == "online · synced"
            && view.has("added on B meanwhile")
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
        a.status == "online · synced" && b.status == "online · synced",
        "{a:?} {b:?}"
    );
    assert!(
        a.error.is_none() && b.error.is_none(),
        "no action failed: {a:?} {b:?}"
    );

    // A narrow window (a phone) shows one pane above the other, and nothing sticks out
    // sideways. (At 1200 px they stand side by side.)
    let wide = pane_boxes(browser).await;
    assert!(
        wide["a"][3].as_f64() > wide["b"][1].as_f64(),
        "side by side when wide: {wide}"
    );
    browser
        .set_window_size(400, 900)
        .await
        .expect("resize the window");
    wait_for("the panes stacked in a 400 px window", || async {
        let boxes = pane_boxes(browser).await;
        let edge = |pane: &str, index: usize| boxes[pane][index].as_f64().unwrap_or(f64::NAN);
        let viewport = boxes["viewport"].as_f64().unwrap_or(f64::NAN);
        let stacked = edge("a", 3) <= edge("b", 1)
            && (edge("a", 0) - edge("b", 0)).abs() < 1.0
            && edge("a", 2) <= viewport
            && viewport <= 480.0
            && boxes["scroll_width"].as_f64() <= Some(viewport);
        if stacked {
            Ok(())
        } else {
            Err(boxes.to_string())
        }
    })
    .await;

    // The server goes away: the page says so (it can't know otherwise, liveview renders
    // on the server) instead of looking alive.
    assert_eq!(
        connection_banner(browser).await,
        Ok(None),
        "no banner before the stop"
    );
    demo.child.kill().await.expect("stop the demo server");
    let banner = wait_for("the connection-lost banner", || async {
        match connection_banner(browser).await {
            Ok(Some(text)) => Ok(text),
            Ok(None) => Err("banner hidden".to_owned()),
            Err(error) => Err(error),
        }
    })
    .await;
    assert_eq!(
        banner,
        "Lost the connection to the demo server — restart it and reload"
    );
    screenshot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_converge_in_a_real_browser_also_after_offline_writes() {
    let (mut demo, url) = start_demo().await;
    let (_driver, driver_url) = start_chromedriver().await;
    let profile = tempfile::tempdir().expect("a temporary browser profile");
    let browser = open_browser(&driver_url, profile.path()).await;

    // Close the browser whatever happens in the scenario, then report its outcome: a
    // panic in `drive` must not leave Chromium running.
    let outcome = AssertUnwindSafe(drive(&browser, &url, &mut demo))
        .catch_unwind()
        .await;
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

/// A port that is taken (by another demo, or anything else) ends the demo at once with
/// a message that names the port and the way out, and a failing exit code; both ways
/// of choosing the port.
#[tokio::test]
async fn a_busy_port_is_reported_with_how_to_pick_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free local port");
    let port = taken.local_addr().expect("the bound address").port();
    for choice in ["--port", "TODO_WEB_PORT"] {
        let mut command = Command::new(demo_binary());
        command
            .env_remove("TODO_WEB_PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if choice == "--port" {
            command.args(["--port", &port.to_string()]);
        } else {
            command.env("TODO_WEB_PORT", port.to_string());
        }
        let output = tokio::time::timeout(WAIT, command.output())
            .await
            .unwrap_or_else(|_| panic!("the demo ({choice}) did not exit within {WAIT:?}"))
            .expect("the demo runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("port {port} is in use"))
                && stderr.contains("--port N")
                && stderr.contains("TODO_WEB_PORT=N"),
            "the demo ({choice}) should name the port and --port: {stderr:?}"
        );
        assert!(
            !output.status.success(),
            "the demo ({choice}) should fail: {:?}",
            output.status
        );
        assert!(
            output.stdout.is_empty(),
            "the demo ({choice}) must not claim to listen: {:?}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    drop(taken);
}
