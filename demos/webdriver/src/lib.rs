//! What the demos' browser tests (`demos/*/tests/`) share: starting chromedriver and
//! headless Chromium sessions (each with its own profile, so each is a device with its
//! own storage), child processes that are killed when the test ends however it ends,
//! and bounded polling that fails naming what it waited for and what it saw instead.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); the paths
//! can be overridden with `CHROMIUM` and `CHROMEDRIVER`. Without them a test fails with
//! what to install; it never skips.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! let (_driver, driver_url) = livesync_demo_webdriver::start_chromedriver().await;
//! let profile = std::env::temp_dir().join("profile-a");
//! let browser = livesync_demo_webdriver::open_browser(&driver_url, &profile, (900, 700)).await;
//! browser.goto("http://127.0.0.1:8090").await.unwrap();
//! let title = livesync_demo_webdriver::wait_for("a title", Duration::from_secs(30), || async {
//!     browser.title().await.map_err(|e| e.to_string())
//! })
//! .await;
//! # }
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// How often [`wait_for`] looks again.
pub const POLL: Duration = Duration::from_millis(50);
/// How long chromedriver may take to listen.
const DRIVER_WAIT: Duration = Duration::from_secs(30);

/// A browser or driver program from the environment or Debian's default path; fails
/// with what to install when it is not there.
pub fn program(variable: &str, default: &str, package: &str) -> PathBuf {
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
#[derive(Debug)]
pub struct Running {
    /// The process (its piped streams can be taken from it).
    pub child: Child,
}

impl Running {
    /// Starts `command`; fails the test naming the program if it cannot start.
    pub fn spawn(command: &mut Command) -> Self {
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

/// A port that was free a moment ago (chromedriver needs a number, not port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
        .port()
}

/// Starts chromedriver on 127.0.0.1 and waits until it accepts connections; returns it
/// with its URL.
pub async fn start_chromedriver() -> (Running, String) {
    let chromedriver = program("CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver");
    let port = free_port();
    let driver = Running::spawn(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_for("chromedriver to listen", DRIVER_WAIT, || async move {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(_) => Ok(()),
            Err(error) => Err(error.to_string()),
        }
    })
    .await;
    (driver, format!("http://127.0.0.1:{port}"))
}

/// A headless Chromium session: flags for a machine without a GPU or outside network,
/// a window of `(width, height)`, and the profile (its storage: OPFS, localStorage) in
/// `profile`.
pub async fn open_browser(driver_url: &str, profile: &Path, (width, height): (u32, u32)) -> Client {
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
        format!("--window-size={width},{height}"),
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

/// Polls `check` every [`POLL`] until it returns `Ok`, for at most `limit`; on timeout
/// fails naming `what` and the last `Err` (what was seen instead).
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut seen = "nothing yet".to_owned();
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(now)) => seen = now,
            // The deadline passed during a check: report the last one that finished.
            Err(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}; last seen: {seen}");
        }
        tokio::time::sleep(POLL).await;
    }
}
