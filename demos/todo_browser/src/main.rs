//! livesync browser demo: one native command that builds the Dioxus web todo app for
//! wasm (`src/bin/todo_app.rs`), starts the embedded PowerSync-protocol test service,
//! and serves the app. Each browser (or browser profile) that opens the page is a device
//! with its own SQLite database in its own storage; they sync through the service.
//!
//! ```sh
//! cargo run -p livesync-demo-todo-browser              # http://127.0.0.1:8090
//! cargo run -p livesync-demo-todo-browser -- --port 0  # any free port
//! ```
//!
//! Flags: `--port N` (else `TODO_BROWSER_PORT`, else 8090); `--seed N` adds N todos to
//! the service (for measuring a large first sync). Building needs the wasm32 target
//! (`rustup target add wasm32-unknown-unknown`), clang (SQLite's C source for wasm) and
//! the `wasm-bindgen` CLI matching Cargo.lock, which is installed into
//! `<target>/tools` when missing (once, a few minutes). The wasm build goes to
//! `<target>/browser-demo`, apart from the workspace's own builds.
//!
//! Output: build progress on stderr, then the bundle size (`bundle: … bytes, … gzip`)
//! and, as the last line before serving, `listening on http://127.0.0.1:<port>` on
//! stdout (tests/browser_demo.rs reads both).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;

use axum::extract::Path as UrlPath;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use livesync::testing::{BucketRule, TestStream, TestSyncService};
use serde_json::json;

const DEFAULT_PORT: u16 = 8090;
/// The user every device signs in as: same data, one database per browser.
const USER: &str = "u1";
/// The app's binary (its wasm file and wasm-bindgen's output are named after it).
const APP: &str = "todo-app";
/// The cargo profile of the wasm build (the workspace's Cargo.toml: release, optimised
/// for size, with LTO).
const PROFILE: &str = "wasm-release";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("livesync-demo-todo-browser: {error}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    port: u16,
    seed: usize,
}

fn args() -> Result<Args, String> {
    let mut parsed = Args {
        port: match std::env::var("TODO_BROWSER_PORT") {
            Ok(text) => number(&text, "port")?,
            Err(_) => DEFAULT_PORT,
        },
        seed: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            value
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value"))
        };
        match name.as_str() {
            "--port" => parsed.port = number(&value()?, "port")?,
            "--seed" => parsed.seed = number(&value()?, "seed")?,
            other => return Err(format!("unknown argument {other:?} (--port N, --seed N)")),
        }
    }
    Ok(parsed)
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{what} {text:?} is not a number in range"))
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    // First, so a busy port is reported at once, not after a build of minutes.
    let address = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "port {} is in use: run with --port N (or TODO_BROWSER_PORT=N); --port 0 picks any free port",
                args.port
            ),
            _ => format!("could not listen on {address}: {error}"),
        })?;

    let site = tokio::task::spawn_blocking(build_app).await??;
    let (raw, gzip) = bundle_size(&site.join(format!("{APP}_bg.wasm")))?;
    println!("bundle: {raw} bytes, {gzip} gzip");

    let service = Arc::new(start_service(args.seed).await?);
    let config = json!({"sync_url": service.url(), "token": service.token(USER)}).to_string();
    let app = axum::Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route(
            "/config.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], config) }),
        )
        .route(
            "/pkg/{*file}",
            get(move |UrlPath(file): UrlPath<String>| serve_file(site.clone(), file)),
        );
    let address = listener.local_addr()?;
    println!("sync service at {}", service.url());
    println!("listening on http://{address}");
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// A file of wasm-bindgen's output: the module, its wasm, and the `snippets/…` it
/// imports. No path leaves the directory (no `..`, no hidden or empty components).
async fn serve_file(site: PathBuf, file: String) -> Response {
    let inside = file
        .split('/')
        .all(|part| !part.is_empty() && !part.starts_with('.') && !part.contains('\\'));
    if !inside {
        return StatusCode::NOT_FOUND.into_response();
    }
    let content_type = match Path::new(&file).extension().and_then(|e| e.to_str()) {
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    };
    match tokio::fs::read(site.join(&file)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The service: one global bucket of todos, synced to every device by default.
async fn start_service(seed: usize) -> livesync::Result<TestSyncService> {
    let service = TestSyncService::builder()
        .stream(TestStream::new("todos", BucketRule::global("todos", ["todos"])).auto_subscribe())
        .start()
        .await?;
    let seeded = [
        ("t1", "milk", 1),
        ("t2", "bread", 0),
        ("t3", "wash the dishes", 0),
    ];
    for (index, (id, description, done)) in seeded.into_iter().enumerate() {
        service.upsert_row(
            "todos",
            id,
            json!({"description": description, "done": done, "created_at": format!("2026-01-01T00:00:0{index}.000Z")}),
        );
    }
    for n in 0..seed {
        service.upsert_row(
            "todos",
            &format!("seed{n:06}"),
            json!({"description": format!("seeded todo {n}"), "done": 0, "created_at": format!("2026-01-02T00:00:00.{n:06}Z")}),
        );
    }
    service.commit();
    Ok(service)
}

/// Builds the app for wasm32 (profile [`PROFILE`]) and runs wasm-bindgen on it; returns the
/// directory to serve.
fn build_app() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let build_dir = target.join("browser-demo");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "building the app for wasm32 (profile {PROFILE}) into {}…",
        build_dir.display()
    );
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "build",
            "--profile",
            PROFILE,
            "-p",
            "livesync-demo-todo-browser",
            "--bin",
            APP,
        ])
        .args(["--target", "wasm32-unknown-unknown"])
        .env("CARGO_TARGET_DIR", &build_dir)
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !status.success() {
        return Err("building the app for wasm32 failed (above). It needs `rustup target add wasm32-unknown-unknown` and clang".into());
    }
    let wasm = build_dir.join(format!("wasm32-unknown-unknown/{PROFILE}/{APP}.wasm"));
    let site = build_dir.join("site");
    let bindgen = wasm_bindgen(&root, &target)?;
    let status = Command::new(&bindgen)
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(&site)
        .arg(&wasm)
        .status()
        .map_err(|e| format!("could not run {}: {e}", bindgen.display()))?;
    if !status.success() {
        return Err(format!(
            "{} failed on {}",
            bindgen.display(),
            wasm.display()
        ));
    }
    Ok(site)
}

/// The `wasm-bindgen` CLI of Cargo.lock's wasm-bindgen version: on PATH, in
/// `<target>/tools/bin` (where scripts/test-browser installs it too), or installed there.
fn wasm_bindgen(root: &Path, target: &Path) -> Result<PathBuf, String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock"))
        .map_err(|e| format!("could not read Cargo.lock: {e}"))?;
    let version = lock
        .split("\n[[package]]\n")
        .find(|p| p.starts_with("name = \"wasm-bindgen\"\n"))
        .and_then(|p| p.lines().nth(1))
        .and_then(|l| l.strip_prefix("version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .ok_or("Cargo.lock names no wasm-bindgen version")?
        .to_owned();
    let matches = |program: &Path| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(&version))
    };
    let tools = target.join("tools");
    let installed = tools.join("bin/wasm-bindgen");
    for candidate in [PathBuf::from("wasm-bindgen"), installed.clone()] {
        if matches(&candidate) {
            return Ok(candidate);
        }
    }
    // Two demos started at once (the demo's tests run in parallel) would both install
    // into one directory, and one install then fails copying its binary: the first to
    // take this lock installs, the others find its binary once they get the lock.
    std::fs::create_dir_all(&tools)
        .map_err(|e| format!("could not create {}: {e}", tools.display()))?;
    let lock = std::fs::File::create(tools.join(".install-lock")).map_err(|e| {
        format!(
            "could not create the install lock in {}: {e}",
            tools.display()
        )
    })?;
    lock.lock()
        .map_err(|e| format!("could not lock {}: {e}", tools.display()))?;
    if matches(&installed) {
        return Ok(installed);
    }
    eprintln!(
        "installing wasm-bindgen-cli {version} into {} (once)…",
        tools.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Not --locked: the CLI's own lock file names a crate version the registry no
    // longer has (docs/browser.md).
    let status = Command::new(cargo)
        .args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &version,
            "--root",
        ])
        .arg(&tools)
        .status()
        .map_err(|e| format!("could not run cargo install: {e}"))?;
    if status.success() && matches(&installed) {
        Ok(installed)
    } else {
        Err(format!("could not install wasm-bindgen-cli {version}"))
    }
}

/// The wasm file's size, raw and gzip-compressed (what a server with compression sends).
fn bundle_size(wasm: &Path) -> Result<(usize, usize), String> {
    let bytes =
        std::fs::read(wasm).map_err(|e| format!("could not read {}: {e}", wasm.display()))?;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&bytes).map_err(|e| e.to_string())?;
    let compressed = gzip.finish().map_err(|e| e.to_string())?;
    Ok((bytes.len(), compressed.len()))
}

const INDEX: &str = r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>livesync todos (in the browser)</title>
<style>
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.4 system-ui, sans-serif; color: #1d2330; background: #eef1f5; }
header { padding: 18px 28px 6px; }
h1 { margin: 0 0 4px; font-size: 22px; }
.lead { margin: 0; color: #556; max-width: 70ch; }
.device { background: #fff; border-radius: 10px; padding: 14px 18px; margin: 16px 28px; box-shadow: 0 1px 3px #0002; max-width: 640px; }
.status { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin-bottom: 12px; }
.sync-status { padding: 2px 10px; border-radius: 12px; font-size: 13px; }
.sync-status.online { background: #dff5e3; color: #17692c; }
.sync-status.offline { background: #fde6e2; color: #922; }
.new { display: flex; gap: 6px; margin-bottom: 8px; }
.new input { flex: 1; min-width: 0; padding: 6px 8px; border: 1px solid #ccd; border-radius: 6px; font: inherit; }
button { font: inherit; padding: 4px 12px; border-radius: 6px; border: 1px solid #ccd; background: #fff; cursor: pointer; }
ul { list-style: none; margin: 0; padding: 0; }
.todo { display: flex; align-items: center; gap: 8px; padding: 6px 2px; border-bottom: 1px solid #eef; }
.todo.done .description { text-decoration: line-through; color: #889; }
.muted { color: #889; }
.error { color: #a22; margin: 16px 28px; }
</style></head>
<body><div id="main"></div>
<script type="module">import init from "./pkg/todo-app.js"; init();</script>
</body>
</html>
"#;
