//! livesync web demo: a todo app served with Dioxus liveview, two "devices" side by side.
//!
//! The server runs everything: an embedded PowerSync-protocol [`TestSyncService`] and two
//! livesync databases (device A and device B, both signed in as user `u1`). The browser
//! only shows the two panes; Dioxus liveview renders them on the server and sends DOM
//! edits over a websocket, so no wasm is built.
//!
//! Each pane lists the lists (the default stream `lists`), opens one list at a time (its
//! todos come through the `list_todos` stream, subscribed by the open list's component
//! with [`use_sync_stream`]) and can add, complete and delete todos. A change in one pane
//! is uploaded to the service and synced down to the other. "Go offline" disconnects a
//! device: its writes wait in its upload queue until "Go online" reconnects it.
//!
//! ```sh
//! cargo run -p livesync-demo-todo-web              # http://127.0.0.1:8080
//! cargo run -p livesync-demo-todo-web -- --port 0  # any free port
//! ```
//!
//! The port comes from `--port`, else `TODO_WEB_PORT`, else 8080; a port that is taken
//! ends the demo at once with a message naming it (exit code 1). The first line on
//! stdout is `listening on http://127.0.0.1:<port>` (tests/web_demo.rs reads it).
//!
//! The page is only a view of the server: if the server goes away (the process was
//! stopped), a script in the page notices the closed websocket and shows a banner
//! instead of leaving a page that looks alive but no longer reacts.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::WebSocketUpgrade;
use axum::response::Html;
use axum::routing::get;
use dioxus::prelude::*;
use dioxus_liveview::{LiveViewPool, axum_socket, interpreter_glue};
use futures::StreamExt as _;
use livesync::dioxus::{
    LiveState, provide_database, use_database, use_live_query, use_sync_status, use_sync_stream,
};
use livesync::testing::{BucketRule, TestStream, TestSyncService};
use livesync::{Database, Row, Schema, SyncOptions, SyncStatus, UploadQueueStats};
use serde_json::json;

/// The user both devices sign in as: same data, two local databases.
const USER: &str = "u1";
/// Upper bound for the start-up waits (the demo never hangs before it listens).
const STARTUP_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_PORT: u16 = 8080;

#[derive(Row, Clone, Debug, PartialEq)]
#[row(table = "lists")]
struct List {
    id: String,
    name: String,
}

#[derive(Row, Clone, Debug, PartialEq)]
#[row(table = "todos")]
struct Todo {
    id: String,
    list_id: String,
    description: String,
    done: bool,
    created_at: String,
}

fn schema() -> Schema {
    Schema::new([List::table(), Todo::table()])
}

/// Everything a page needs, shared by every browser connection (each websocket gets its
/// own `VirtualDom`, but they all show the same two devices).
#[derive(Clone)]
struct Demo {
    devices: [Device; 2],
    service: Arc<TestSyncService>,
    /// The main runtime. Liveview runs each page on a thread of its own pool; the sync
    /// tasks `connect` starts must not live there, or they would share that page's thread.
    runtime: tokio::runtime::Handle,
}

/// One "device": a local database and the names the page uses for it.
#[derive(Clone)]
struct Device {
    /// `a` or `b`: element ids (`#pane-a`) and `data-testid`s are built from it.
    key: &'static str,
    label: &'static str,
    db: Database,
    /// The user's choice, set by the Online/Offline button. The sync status alone can't
    /// tell: between two connection attempts a device that should be online is neither
    /// connected nor connecting.
    wants_online: Arc<AtomicBool>,
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.db == other.db
    }
}

/// The pane's last action (a write, going online or offline) if it failed, shown under
/// its status line and logged. Pane context, so every component in it can report.
#[derive(Clone, Copy)]
struct Failure(Signal<Option<String>>);

impl Failure {
    fn record<T, E: std::fmt::Display>(mut self, action: &str, result: Result<T, E>) {
        match result {
            Ok(_) => self.0.set(None),
            Err(error) => {
                tracing::warn!(%error, action, "an action of the demo failed");
                self.0.set(Some(format!("could not {action}: {error}")));
            }
        }
    }
}

/// Short retry and upload delays, so a reconnect shows up in the page at once.
fn sync_options() -> SyncOptions {
    SyncOptions::default()
        .retry_delay(Duration::from_millis(500))
        .crud_upload_throttle(Duration::from_millis(50))
}

// ---------------------------------------------------------------------------------------
// Components
// ---------------------------------------------------------------------------------------

/// The page: a title and one pane per device.
#[component]
fn App() -> Element {
    let demo = use_context::<Demo>();
    rsx! {
        header {
            h1 { "livesync todos" }
            p { class: "lead",
                "Two devices, two local SQLite databases, one sync service. Changes in one pane reach the other through sync; take a device offline and its writes wait until it is back."
            }
        }
        main { class: "panes",
            for device in demo.devices.iter() {
                Pane { key: "{device.key}", device: device.clone() }
            }
        }
    }
}

/// One device: its sync status, its lists and the open list's todos.
#[component]
fn Pane(device: Device) -> Element {
    // Everything below this pane reads *this* device's database from context.
    provide_database(device.db.clone());
    let failure = use_context_provider(|| Failure(Signal::new(None)));
    let db = use_database();
    let lists = use_live_query(move || db.query::<List>("SELECT * FROM lists ORDER BY name, id"));
    // `None` until the user picks a list: then the first list is open.
    let selected = use_signal(|| None::<String>);
    let open = selected().or_else(|| {
        lists
            .rows()
            .and_then(|rows| rows.first().map(|list| list.id.clone()))
    });

    rsx! {
        section { id: "pane-{device.key}", class: "pane", "data-testid": "pane-{device.key}",
            h2 { "Device {device.label}" }
            StatusBar { device: device.clone() }
            if let Some(message) = failure.0() {
                p { class: "error", "data-testid": "write-error", "{message}" }
            }
            match lists.value() {
                LiveState::Loading => rsx! { p { class: "muted", "loading lists…" } },
                LiveState::Error(error) => rsx! { p { class: "error", "could not load lists: {error}" } },
                LiveState::Ready(lists) => rsx! { ListPicker { lists, open: open.clone(), selected } },
            }
            if let Some(list_id) = open {
                // Keyed by the list: opening another list mounts a new TodoList, which
                // subscribes to that list's stream (and releases the previous one).
                TodoList { key: "{list_id}", list_id }
            }
        }
    }
}

/// What [`use_upload_queue`] knows: nothing yet, the queue's size, or why it could not
/// be read.
type QueueState = Option<Result<UploadQueueStats, String>>;

/// The device's upload queue (local writes the service has not accepted yet), from
/// [`Database::upload_queue_stats`], read again after every change to `ps_crud`
/// (livesync's upload queue table). `None` until the first read.
fn use_upload_queue() -> ReadSignal<QueueState> {
    let db = use_database();
    let mut queue = use_signal::<QueueState>(|| None);
    // A task of this scope: unmounting the pane stops it and drops the watcher.
    use_hook(move || {
        spawn(async move {
            // Watching starts before the first read (the initial event), so a write
            // between the two cannot be missed.
            let mut changes = db.watch_tables(["ps_crud"]).with_initial_event();
            while changes.next().await.is_some() {
                let read = db
                    .upload_queue_stats()
                    .await
                    .map_err(|error| error.to_string());
                if let Err(error) = &read {
                    tracing::warn!(%error, "could not read the upload queue");
                }
                // Most changes to `ps_crud` don't change the count: no re-render then.
                if queue.peek().as_ref() != Some(&read) {
                    queue.set(Some(read));
                }
            }
        })
    });
    queue.into()
}

/// The device's sync status and upload queue in words, and the button that takes it
/// offline or back online.
#[component]
fn StatusBar(device: Device) -> Element {
    let db = use_database();
    let demo = use_context::<Demo>();
    let failure = use_context::<Failure>();
    let status = use_sync_status();
    let queue = use_upload_queue();
    let queue = queue.read().clone();
    // For the test and the tooltip: empty until the queue was read.
    let (pending, title) = match &queue {
        Some(Ok(stats)) if stats.count == 0 => (
            "0".to_owned(),
            "every local write was accepted by the service".to_owned(),
        ),
        Some(Ok(stats)) => (
            stats.count.to_string(),
            format!(
                "{} local write(s), {} bytes, not accepted by the service yet",
                stats.count, stats.size_bytes
            ),
        ),
        Some(Err(error)) => (
            String::new(),
            format!("could not read the upload queue: {error}"),
        ),
        None => (String::new(), "reading the upload queue…".to_owned()),
    };
    // Disables the button while a connect or disconnect is under way.
    let mut switching = use_signal(|| false);

    let current = status.read().clone();
    let online = device.wants_online.load(Ordering::Relaxed);
    let toggle = move |_| {
        let (demo, db, wants_online) = (demo.clone(), db.clone(), device.wants_online.clone());
        async move {
            switching.set(true);
            wants_online.store(!online, Ordering::Relaxed);
            let action = if online { "go offline" } else { "go online" };
            failure.record(action, set_online(&demo, db, !online).await);
            switching.set(false);
        }
    };
    rsx! {
        div { class: "status",
            span {
                class: if current.connected { "sync-status online" } else { "sync-status offline" },
                "data-testid": "sync-status",
                "data-connected": "{current.connected}",
                "data-pending": "{pending}",
                title: "{title}",
                "{describe(&current, queue.as_ref())}"
            }
            button {
                class: "toggle-online",
                "data-testid": "toggle-online",
                disabled: switching(),
                onclick: toggle,
                if online { "Go offline" } else { "Go online" }
            }
        }
    }
}

/// The lists (all of them: `lists` is a stream every client gets by default).
#[component]
fn ListPicker(
    lists: Arc<[List]>,
    open: Option<String>,
    selected: Signal<Option<String>>,
) -> Element {
    rsx! {
        nav { class: "lists",
            for list in lists.iter() {
                button {
                    key: "{list.id}",
                    class: if open.as_deref() == Some(list.id.as_str()) { "list open" } else { "list" },
                    "data-list-id": "{list.id}",
                    onclick: {
                        let id = list.id.clone();
                        move |_| selected.set(Some(id.clone()))
                    },
                    "{list.name}"
                }
            }
        }
    }
}

/// One open list: keeps its `list_todos` stream subscribed while mounted and shows its
/// todos live.
#[component]
fn TodoList(list_id: String) -> Element {
    let db = use_database();
    // The service sends a list's todos only to clients subscribed to it with its id.
    let stream = use_sync_stream("list_todos", Some(json!({ "list_id": list_id.clone() })));
    let query_list = list_id.clone();
    let todos = use_live_query(move || {
        db.query::<Todo>("SELECT * FROM todos WHERE list_id = ? ORDER BY created_at, id")
            .bind(query_list.clone())
    });

    let body = match todos.value() {
        LiveState::Loading => rsx! { p { class: "muted", "loading todos…" } },
        LiveState::Error(error) => rsx! { p { class: "error", "could not load todos: {error}" } },
        LiveState::Ready(rows) if rows.is_empty() => rsx! { p { class: "muted", "nothing to do" } },
        LiveState::Ready(rows) => rsx! {
            ul { class: "todos",
                for todo in rows.iter() {
                    TodoItem { key: "{todo.id}", todo: todo.clone() }
                }
            }
        },
    };
    // Errors the service reported for this subscription (an unknown stream, a missing
    // parameter) are in its status; `error()` is a subscription that failed locally.
    let service_errors = stream
        .status()
        .map(|status| status.errors)
        .unwrap_or_default();
    let stream_note = if let Some(error) = stream.error() {
        format!("could not subscribe: {error}")
    } else if !service_errors.is_empty() {
        format!(
            "the service refused this list: {}",
            service_errors.join("; ")
        )
    } else if stream.has_synced() {
        "list synced".to_owned()
    } else {
        "waiting for this list's first sync".to_owned()
    };
    rsx! {
        div { class: "todo-list", "data-list-id": "{list_id}",
            p { class: "stream", "data-testid": "stream", "data-synced": "{stream.has_synced()}",
                "{stream_note}"
            }
            NewTodo { list_id: list_id.clone() }
            {body}
        }
    }
}

/// The text box and button that add a todo to the open list.
#[component]
fn NewTodo(list_id: String) -> Element {
    let db = use_database();
    let failure = use_context::<Failure>();
    let mut draft = use_signal(String::new);
    // Bumped after each add: the input is keyed by it, so a fresh, empty one replaces it
    // (and takes the focus, see `onmounted`).
    let mut added = use_signal(|| 0_u32);
    let add = use_callback(move |()| {
        let description = draft.peek().trim().to_owned();
        if description.is_empty() {
            return;
        }
        draft.set(String::new());
        added += 1;
        let (db, list_id) = (db.clone(), list_id.clone());
        spawn(async move {
            let inserted = db
                .execute(
                    // Ids must be unique across devices: random, made by SQLite.
                    "INSERT INTO todos(id, list_id, description, done, created_at) \
                     VALUES (lower(hex(randomblob(16))), ?1, ?2, 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    (list_id, description),
                )
                .await;
            failure.record("add the todo", inserted);
        });
    });
    rsx! {
        div { class: "new",
            // The input is not controlled (no `value` from `draft`): liveview sends each
            // keystroke to the server, and writing values back while the user keeps
            // typing would drop characters. Clearing it is a remount (see `added`).
            for generation in std::iter::once(added()) {
                input {
                    key: "{generation}",
                    class: "new-todo",
                    "data-testid": "new-todo",
                    placeholder: "What needs doing?",
                    oninput: move |event| draft.set(event.value()),
                    // The input a todo was just added from is gone: its replacement
                    // takes the focus, so the next todo can be typed right away. Not
                    // on the first mount (a page load focuses nothing).
                    onmounted: move |event: MountedEvent| async move {
                        if generation > 0 && let Err(error) = event.set_focus(true).await {
                            tracing::debug!(?error, "could not focus the new-todo input");
                        }
                    },
                    onkeydown: move |event| {
                        if event.key() == Key::Enter {
                            add(());
                        }
                    },
                }
            }
            button { class: "add-todo", "data-testid": "add-todo", onclick: move |_| add(()), "Add" }
        }
    }
}

/// One todo: a checkbox that completes it and a button that deletes it.
#[component]
fn TodoItem(todo: Todo) -> Element {
    let db = use_database();
    let failure = use_context::<Failure>();
    let toggle = {
        let (db, id, done) = (db.clone(), todo.id.clone(), todo.done);
        move |_| {
            let (db, id) = (db.clone(), id.clone());
            async move {
                let updated = db
                    .execute("UPDATE todos SET done = ?1 WHERE id = ?2", (!done, id))
                    .await;
                failure.record("update the todo", updated);
            }
        }
    };
    let delete = {
        let id = todo.id.clone();
        move |_| {
            let (db, id) = (db.clone(), id.clone());
            async move {
                let deleted = db.execute("DELETE FROM todos WHERE id = ?1", (id,)).await;
                failure.record("delete the todo", deleted);
            }
        }
    };
    rsx! {
        li {
            class: if todo.done { "todo done" } else { "todo" },
            "data-id": "{todo.id}",
            "data-done": "{todo.done}",
            input { class: "toggle", r#type: "checkbox", checked: todo.done, onchange: toggle }
            span { class: "description", "{todo.description}" }
            button { class: "delete", title: "Delete", onclick: delete, "✕" }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sync and server
// ---------------------------------------------------------------------------------------

/// Connects `db` to the service (as [`USER`]) or disconnects it. Runs on the main
/// runtime, so the sync tasks outlive the page that clicked the button.
async fn set_online(demo: &Demo, db: Database, online: bool) -> Result<(), String> {
    let connector = demo.service.connector(USER);
    let switched = demo
        .runtime
        .spawn(async move {
            if online {
                db.connect(connector, sync_options()).await
            } else {
                db.disconnect().await;
                Ok(())
            }
        })
        .await;
    match switched {
        Ok(connected) => connected.map_err(|error| error.to_string()),
        Err(error) => Err(format!("the connect task failed: {error}")),
    }
}

/// The status line: online or not, synced or how many writes wait for upload,
/// downloading, errors. "Synced" only when nothing waits in the upload queue.
fn describe(status: &SyncStatus, queue: Option<&Result<UploadQueueStats, String>>) -> String {
    let mut parts = vec![
        if status.connected {
            "online"
        } else if status.connecting {
            "connecting…"
        } else {
            "offline"
        }
        .to_owned(),
    ];
    if !status.has_synced {
        parts.push("not synced yet".to_owned());
    }
    match queue {
        None => parts.push("checking uploads…".to_owned()),
        Some(Err(_)) => parts.push("upload queue unknown".to_owned()),
        Some(Ok(stats)) if stats.count > 0 && status.uploading => {
            parts.push(format!("uploading {}", stats.count));
        }
        Some(Ok(stats)) if stats.count > 0 => {
            parts.push(format!("{} waiting to upload", stats.count));
        }
        Some(Ok(_)) if status.has_synced => parts.push("synced".to_owned()),
        Some(Ok(_)) => {}
    }
    if let Some(progress) = &status.downloading {
        parts.push(format!(
            "downloading {}/{}",
            progress.downloaded, progress.total
        ));
    }
    if let Some(error) = status.any_error() {
        parts.push(format!("error: {error}"));
    }
    parts.join(" · ")
}

/// The service: every client gets every list (default stream `lists`); a list's todos
/// go only to clients subscribed to `list_todos` with that list's id.
async fn start_service() -> livesync::Result<TestSyncService> {
    let service = TestSyncService::builder()
        .stream(TestStream::new("lists", BucketRule::global("lists", ["lists"])).auto_subscribe())
        .stream(TestStream::per_parameter(
            "list_todos",
            "todos",
            "list_id",
            "list_id",
        ))
        .start()
        .await?;
    service.upsert_row("lists", "groceries", json!({ "name": "Groceries" }));
    service.upsert_row("lists", "household", json!({ "name": "Household" }));
    let seed = [
        ("t1", "groceries", "milk", 1),
        ("t2", "groceries", "bread", 0),
        ("t3", "household", "wash the dishes", 0),
    ];
    for (index, (id, list_id, description, done)) in seed.into_iter().enumerate() {
        service.upsert_row(
            "todos",
            id,
            json!({
                "list_id": list_id,
                "description": description,
                "done": done,
                "created_at": format!("2026-01-01T00:00:0{index}.000Z"),
            }),
        );
    }
    service.commit();
    Ok(service)
}

/// Opens a device's database and connects it; returns once the lists have synced.
async fn start_device(
    dir: &std::path::Path,
    key: &'static str,
    label: &'static str,
    service: &TestSyncService,
) -> livesync::Result<Device> {
    let db = Database::open(dir.join(format!("device-{key}.db")), schema()).await?;
    db.connect(service.connector(USER), sync_options()).await?;
    tokio::time::timeout(STARTUP_WAIT, db.wait_for_first_sync())
        .await
        .map_err(|_| livesync::Error::connector("the first sync did not finish in time"))??;
    Ok(Device {
        key,
        label,
        db,
        wants_online: Arc::new(AtomicBool::new(true)),
    })
}

/// `--port N`, else `TODO_WEB_PORT`, else [`DEFAULT_PORT`].
fn port() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let mut from_args = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => from_args = Some(args.next().ok_or("--port needs a value")?),
            other => match other.strip_prefix("--port=") {
                Some(value) => from_args = Some(value.to_owned()),
                None => return Err(format!("unknown argument {other:?} (only --port N)")),
            },
        }
    }
    match from_args.or_else(|| std::env::var("TODO_WEB_PORT").ok()) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("port {text:?} is not a number from 0 to 65535")),
        None => Ok(DEFAULT_PORT),
    }
}

/// The page the browser loads: styles, the connection watcher, the (hidden) banner it
/// shows, a root element and liveview's script, which opens the websocket at `/ws` and
/// applies the server's DOM edits.
fn index_page() -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>livesync todos</title><style>{STYLE}</style>\
         <script>{CONNECTION_WATCH}</script></head>\n\
         <body><div id=\"connection-lost\" role=\"alert\" hidden>{CONNECTION_LOST}</div>\
         <div id=\"main\"></div>{}</body>\n</html>\n",
        interpreter_glue("/ws")
    )
}

/// The banner's text.
const CONNECTION_LOST: &str = "Lost the connection to the demo server — restart it and reload";

/// Liveview renders on the server, so only the page can tell that the server is gone.
/// Liveview's script (at the end of the body) keeps its websocket in `window.ipc.ws`;
/// once the document is parsed this watches it and, when it closes or fails, shows the
/// banner and dims the panes (they would not react any more). A reload or navigation
/// closes the socket too, and shows nothing.
const CONNECTION_WATCH: &str = r#"
(() => {
  let leaving = false;
  addEventListener("pagehide", () => { leaving = true; });
  addEventListener("beforeunload", () => { leaving = true; });
  function lost() {
    const banner = document.getElementById("connection-lost");
    if (leaving || !banner || !banner.hidden) return;
    banner.hidden = false;
    document.body.classList.add("disconnected");
  }
  addEventListener("DOMContentLoaded", () => {
    const ws = window.ipc && window.ipc.ws;
    if (!ws) return lost();
    ws.addEventListener("close", lost);
    ws.addEventListener("error", lost);
    if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) lost();
  });
})();
"#;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("livesync-demo-todo-web: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Listens on 127.0.0.1:`port`; a port in use (the demo already runs, or another
/// program) gets a message that says how to pick another one.
async fn listen(port: u16) -> Result<tokio::net::TcpListener, String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "port {port} is in use: run with --port N (or TODO_WEB_PORT=N); \
                 --port 0 picks any free port"
            ),
            _ => format!("could not listen on {address}: {error}"),
        })
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let port = port()?;
    // First, so a busy port is reported at once, not after the devices' first sync.
    let listener = listen(port).await?;
    let service = Arc::new(start_service().await?);
    let dir = tempfile::tempdir()?;
    let devices = [
        start_device(dir.path(), "a", "A", &service).await?,
        start_device(dir.path(), "b", "B", &service).await?,
    ];
    let demo = Demo {
        devices,
        service,
        runtime: tokio::runtime::Handle::current(),
    };

    let pool = LiveViewPool::new();
    let app = axum::Router::new()
        .route("/", get(|| async { Html(index_page()) }))
        .route(
            "/ws",
            get(move |upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(move |socket| async move {
                    let launched = pool
                        .launch_virtualdom(axum_socket(socket), move || {
                            VirtualDom::new(App).with_root_context(demo)
                        })
                        .await;
                    // A closed tab ends its websocket that way; nothing to report.
                    if let Err(error) = launched {
                        tracing::debug!(%error, "liveview session ended");
                    }
                })
            }),
        );

    let address = listener.local_addr()?;
    // The first stdout line: tests and scripts read the address from it.
    println!("listening on http://{address}");
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}

const STYLE: &str = r#"
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.4 system-ui, sans-serif; color: #1d2330; background: #eef1f5; }
header { padding: 18px 28px 6px; }
h1 { margin: 0 0 4px; font-size: 22px; }
.lead { margin: 0; color: #556; max-width: 70ch; }
.panes { display: grid; grid-template-columns: 1fr 1fr; gap: 20px; padding: 16px 28px 28px; }
.pane { background: #fff; border-radius: 10px; padding: 14px 18px; box-shadow: 0 1px 3px #0002; }
.pane h2 { margin: 0 0 8px; font-size: 18px; }
.status { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin-bottom: 12px; }
.sync-status { padding: 2px 10px; border-radius: 12px; font-size: 13px; }
.sync-status.online { background: #dff5e3; color: #17692c; }
.sync-status.offline { background: #fde6e2; color: #922; }
.toggle-online { margin-left: auto; }
.lists { display: flex; gap: 6px; margin-bottom: 10px; }
.list { border: 1px solid #ccd; background: #f7f8fb; border-radius: 6px; padding: 4px 12px; cursor: pointer; }
.list.open { background: #2f5bd3; border-color: #2f5bd3; color: #fff; }
.stream { margin: 0 0 8px; font-size: 12px; color: #778; }
.new { display: flex; gap: 6px; margin-bottom: 8px; }
.new-todo { flex: 1; min-width: 0; padding: 6px 8px; border: 1px solid #ccd; border-radius: 6px; font: inherit; }
button { font: inherit; padding: 4px 12px; border-radius: 6px; border: 1px solid #ccd; background: #fff; cursor: pointer; }
.todos { list-style: none; margin: 0; padding: 0; }
.todo { display: flex; align-items: center; gap: 8px; padding: 6px 2px; border-bottom: 1px solid #eef; }
.todo .description { flex: 1; }
.todo.done .description { text-decoration: line-through; color: #889; }
.todo .delete { border: none; color: #a44; padding: 2px 8px; }
.muted { color: #889; }
.error { color: #a22; }
#connection-lost { position: sticky; top: 0; z-index: 1; padding: 10px 28px; background: #922; color: #fff; font-weight: 600; }
body.disconnected .panes { opacity: 0.5; pointer-events: none; }
/* Narrow windows (phones): one pane above the other. */
@media (max-width: 480px) {
  header { padding: 14px 14px 4px; }
  #connection-lost { padding: 10px 14px; }
  .panes { grid-template-columns: 1fr; gap: 14px; padding: 12px 14px 20px; }
  .pane { padding: 12px 14px; }
}
"#;
