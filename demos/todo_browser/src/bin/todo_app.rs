//! The browser demo's app: a Dioxus web todo list whose SQLite database lives in the
//! browser (OPFS, `Database::open` on the page) and syncs with the test service the
//! server (`src/main.rs`) runs. Built for `wasm32-unknown-unknown` by that server; on a
//! native target this binary only says so.
//!
//! What it shows: the todos (a live query), a box to add one, checkboxes, the sync
//! status with the number of local writes waiting for upload, and a button that takes
//! this device offline. The offline choice is kept in `localStorage`, so a reload stays
//! offline and the queued writes are still there (read back from OPFS); going online
//! uploads them. A second tab of the same browser profile cannot open the database
//! (livesync allows one tab per profile) and says so.
//!
//! For the end-to-end test (`tests/browser_demo.rs`), elements carry `data-testid`s, and
//! the list records `data-first-synced-ms`: milliseconds from navigation start until the
//! first render of a list that came through sync (and `data-sync-started-ms`, when the
//! first `connect` of this page load started). The new-todo box carries `data-saving`,
//! the number of its writes not yet saved to OPFS: the list shows a write at its
//! commit, the save follows, and a reload before it ends loses that write.

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "todo-app runs in the browser: build it with --target wasm32-unknown-unknown, or run `cargo run -p livesync-demo-todo-browser`, which builds and serves it"
    );
    std::process::exit(2);
}

#[cfg(target_arch = "wasm32")]
fn main() {
    dioxus_web::launch::launch_cfg(app::App, dioxus_web::Config::new().rootname("main"));
}

#[cfg(target_arch = "wasm32")]
mod app {
    use std::future::Future;
    use std::time::Duration;

    use dioxus::prelude::*;
    use futures::StreamExt as _;
    use js_sys::Reflect;
    use livesync::dioxus::{
        LiveState, provide_database, use_database, use_live_query, use_sync_status,
    };
    use livesync::{
        BackendConnector, Credentials, Database, Error, Row, Schema, SyncOptions, SyncStatus,
    };
    use send_wrapper::SendWrapper;
    use serde_json::{Value, json};
    use wasm_bindgen::JsValue;

    /// The database's name in this browser profile's storage.
    const DATABASE: &str = "todos.db";
    /// `localStorage` key of the user's offline choice.
    const OFFLINE_KEY: &str = "livesync-demo-offline";
    thread_local! {
        /// When this page load's first `connect` started (for the figures: connect →
        /// first rendered synced list, against the same sync natively).
        static SYNC_STARTED_MS: std::cell::Cell<Option<f64>> = const { std::cell::Cell::new(None) };
    }

    /// Todos drawn in the list; more are counted.
    const SHOWN: usize = 200;

    #[derive(Row, Clone, Debug, PartialEq)]
    #[row(table = "todos")]
    struct Todo {
        id: String,
        description: String,
        done: bool,
        created_at: String,
    }

    fn schema() -> Schema {
        Schema::new([Todo::table()])
    }

    /// Where the service is and who we are: the server's `/config.json`.
    #[derive(Clone, Debug, PartialEq, serde::Deserialize)]
    struct Config {
        sync_url: String,
        token: String,
    }

    /// What the page shows before the app can run.
    #[derive(Clone, Debug, PartialEq)]
    enum Startup {
        Opening,
        Failed(String),
        Ready(Database, Config),
    }

    #[component]
    pub(crate) fn App() -> Element {
        let mut startup = use_signal(|| Startup::Opening);
        use_hook(move || {
            spawn(async move {
                startup.set(match start().await {
                    Ok((db, config)) => Startup::Ready(db, config),
                    Err(error) => Startup::Failed(error),
                });
            })
        });
        rsx! {
            header {
                h1 { "livesync todos" }
                p { class: "lead",
                    "This page keeps its own SQLite database in the browser and syncs it. Open it in a second browser (another profile) to see changes arrive; go offline, write, reload: the write waits until you are back online."
                }
            }
            match startup() {
                Startup::Opening => rsx! { p { class: "muted", "data-testid": "opening", "opening the local database…" } },
                Startup::Failed(message) => rsx! { p { class: "error", "data-testid": "open-error", "{message}" } },
                Startup::Ready(db, config) => rsx! { Device { db, config } },
            }
        }
    }

    /// Reads the config and opens the database (connecting unless the user chose offline).
    async fn start() -> Result<(Database, Config), String> {
        let origin = Reflect::get(&js_sys::global(), &"location".into())
            .and_then(|l| Reflect::get(&l, &"origin".into()))
            .ok()
            .and_then(|o| o.as_string())
            .ok_or("the page has no location")?;
        let config: Config = reqwest::get(format!("{origin}/config.json"))
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("could not read the demo's config: {e}"))?
            .json()
            .await
            .map_err(|e| format!("the demo's config is not what the app expects: {e}"))?;
        let db = Database::open(DATABASE, schema())
            .await
            .map_err(|e| format!("could not open the local database: {e}"))?;
        if !offline_chosen() {
            SYNC_STARTED_MS.set(Some(now_ms()));
            db.connect(Connector::new(&config), sync_options())
                .await
                .map_err(|e| format!("could not connect: {e}"))?;
        }
        Ok((db, config))
    }

    fn sync_options() -> SyncOptions {
        SyncOptions::default()
            .retry_delay(Duration::from_millis(500))
            .crud_upload_throttle(Duration::from_millis(50))
    }

    /// The device: status, new todo, the list.
    #[component]
    fn Device(db: Database, config: Config) -> Element {
        provide_database(db);
        rsx! {
            main { class: "device",
                StatusBar { config }
                NewTodo {}
                TodoList {}
            }
        }
    }

    /// Sync status, writes waiting for upload, and the offline/online button.
    #[component]
    fn StatusBar(config: Config) -> Element {
        let db = use_database();
        let status = use_sync_status();
        let mut pending = use_signal(|| None::<u64>);
        let mut offline = use_signal(offline_chosen);
        let mut failure = use_signal(|| None::<String>);
        // The upload queue's size, read after each change to livesync's queue table.
        use_hook({
            let db = db.clone();
            move || {
                spawn(async move {
                    let mut changes = db.watch_tables(["ps_crud"]).with_initial_event();
                    while changes.next().await.is_some() {
                        if let Ok(stats) = db.upload_queue_stats().await {
                            pending.set(Some(stats.count));
                        }
                    }
                })
            }
        });
        let toggle = move |_| {
            let (db, config) = (db.clone(), config.clone());
            async move {
                let go_offline = !offline();
                remember_offline(go_offline);
                offline.set(go_offline);
                let result = if go_offline {
                    db.disconnect().await;
                    Ok(())
                } else {
                    db.connect(Connector::new(&config), sync_options()).await
                };
                failure.set(result.err().map(|e| e.to_string()));
            }
        };
        let current = status.read().clone();
        let pending_text = pending().map(|n| n.to_string()).unwrap_or_default();
        rsx! {
            div { class: "status",
                span {
                    class: if current.connected { "sync-status online" } else { "sync-status offline" },
                    "data-testid": "sync-status",
                    "data-connected": "{current.connected}",
                    "data-pending": "{pending_text}",
                    "{describe(&current, pending(), offline())}"
                }
                button { "data-testid": "toggle-online", onclick: toggle,
                    if offline() { "Go online" } else { "Go offline" }
                }
                if let Some(message) = failure() {
                    p { class: "error", "data-testid": "sync-error", "{message}" }
                }
            }
        }
    }

    fn describe(status: &SyncStatus, pending: Option<u64>, offline: bool) -> String {
        let mut parts = vec![if offline {
            "offline".to_owned()
        } else if status.connected {
            "online".to_owned()
        } else {
            "connecting…".to_owned()
        }];
        match pending {
            Some(0) => parts.push("everything uploaded".to_owned()),
            Some(n) => parts.push(format!("{n} waiting to upload")),
            None => {}
        }
        if let Some(error) = status.any_error() {
            parts.push(format!("error: {error}"));
        }
        parts.join(" · ")
    }

    #[component]
    fn NewTodo() -> Element {
        let db = use_database();
        let mut draft = use_signal(String::new);
        let mut failure = use_signal(|| None::<String>);
        // Writes whose future has not resolved: on a page, a write resolves once its
        // commit is saved to OPFS, so a reload while this is above 0 may lose it.
        let mut saving = use_signal(|| 0u32);
        let add = move || {
            let description = draft.peek().trim().to_owned();
            if description.is_empty() {
                return;
            }
            draft.set(String::new());
            let db = db.clone();
            saving += 1;
            spawn(async move {
                let inserted = db
                    .execute(
                        "INSERT INTO todos(id, description, done, created_at) \
                         VALUES (lower(hex(randomblob(16))), ?1, 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                        (description,),
                    )
                    .await;
                saving -= 1;
                failure.set(inserted.err().map(|e| e.to_string()));
            });
        };
        let mut add_on_enter = add.clone();
        let mut add_on_click = add;
        rsx! {
            div { class: "new",
                input {
                    "data-testid": "new-todo",
                    "data-saving": "{saving}",
                    placeholder: "What needs doing?",
                    value: "{draft}",
                    oninput: move |event| draft.set(event.value()),
                    onkeydown: move |event| {
                        if event.key() == Key::Enter {
                            add_on_enter();
                        }
                    },
                }
                button { "data-testid": "add-todo", onclick: move |_| add_on_click(), "Add" }
                if saving() > 0 {
                    span { class: "muted", "saving…" }
                }
                if let Some(message) = failure() {
                    p { class: "error", "data-testid": "write-error", "could not add the todo: {message}" }
                }
            }
        }
    }

    #[component]
    fn TodoList() -> Element {
        let db = use_database();
        let status = use_sync_status();
        let todos = use_live_query(move || {
            db.query::<Todo>("SELECT * FROM todos ORDER BY created_at DESC, id")
        });
        // Page load → first list that came through sync, for the README's figures.
        let mut first_synced = use_signal(|| None::<f64>);
        if first_synced.peek().is_none()
            && status.read().has_synced
            && matches!(todos.value(), LiveState::Ready(rows) if !rows.is_empty())
        {
            first_synced.set(Some(now_ms()));
        }
        let first = first_synced()
            .map(|ms| format!("{ms:.0}"))
            .unwrap_or_default();
        let sync_started = SYNC_STARTED_MS
            .get()
            .map(|ms| format!("{ms:.0}"))
            .unwrap_or_default();
        let count = match todos.value() {
            LiveState::Ready(rows) => rows.len().to_string(),
            _ => String::new(),
        };
        rsx! {
            div { class: "todos", "data-testid": "todos", "data-count": "{count}", "data-first-synced-ms": "{first}", "data-sync-started-ms": "{sync_started}",
                match todos.value() {
                    LiveState::Loading => rsx! { p { class: "muted", "loading…" } },
                    LiveState::Error(error) => rsx! { p { class: "error", "could not read the todos: {error}" } },
                    LiveState::Ready(rows) if rows.is_empty() => rsx! { p { class: "muted", "nothing to do" } },
                    LiveState::Ready(rows) => rsx! {
                        ul {
                            // The newest first screens' worth; a list of thousands (the
                            // figures' seeded sync) is counted, not all drawn.
                            for todo in rows.iter().take(SHOWN) {
                                TodoItem { key: "{todo.id}", todo: todo.clone() }
                            }
                        }
                        if rows.len() > SHOWN {
                            p { class: "muted", "and {rows.len() - SHOWN} more" }
                        }
                    },
                }
            }
        }
    }

    #[component]
    fn TodoItem(todo: Todo) -> Element {
        let db = use_database();
        let toggle = {
            let (id, done) = (todo.id.clone(), todo.done);
            move |_| {
                let (db, id) = (db.clone(), id.clone());
                async move {
                    if let Err(error) = db
                        .execute("UPDATE todos SET done = ?1 WHERE id = ?2", (!done, id))
                        .await
                    {
                        tracing::warn!(%error, "could not update the todo");
                    }
                }
            }
        };
        rsx! {
            li { class: if todo.done { "todo done" } else { "todo" }, "data-id": "{todo.id}", "data-done": "{todo.done}",
                input { r#type: "checkbox", checked: todo.done, onchange: toggle }
                span { class: "description", "{todo.description}" }
            }
        }
    }

    /// The app's connector: the token from the config; uploads posted with `fetch` to
    /// the test service's `/upload` (standing in for the app's backend). Fetch futures are
    /// `!Send`; the page has one thread, so they are wrapped to meet the trait's bound.
    struct Connector {
        url: String,
        token: String,
        http: reqwest::Client,
    }

    impl Connector {
        fn new(config: &Config) -> Self {
            Self {
                url: config.sync_url.clone(),
                token: config.token.clone(),
                http: reqwest::Client::new(),
            }
        }
    }

    impl BackendConnector for Connector {
        fn fetch_credentials(&self) -> impl Future<Output = livesync::Result<Credentials>> + Send {
            let credentials = Credentials::new(&self.url, &self.token);
            async move { Ok(credentials) }
        }

        fn upload_data(&self, db: &Database) -> impl Future<Output = livesync::Result<()>> + Send {
            SendWrapper::new(async move {
                let client_id = db.client_id().await?;
                while let Some(transaction) = db.get_next_crud_transaction().await? {
                    let batch: Vec<Value> = transaction.crud.iter().map(|e| e.to_json()).collect();
                    let response = self
                        .http
                        .post(format!("{}/upload", self.url))
                        .header("Authorization", format!("Token {}", self.token))
                        .json(&json!({"client_id": client_id, "batch": batch}))
                        .send()
                        .await
                        .map_err(Error::connector)?;
                    if !response.status().is_success() {
                        return Err(Error::connector(format!(
                            "the backend refused the upload: {}",
                            response.status()
                        )));
                    }
                    transaction.complete().await?;
                }
                Ok(())
            })
        }
    }

    fn local_storage() -> Option<JsValue> {
        Reflect::get(&js_sys::global(), &"localStorage".into())
            .ok()
            .filter(|s| !s.is_undefined() && !s.is_null())
    }

    fn offline_chosen() -> bool {
        let Some(storage) = local_storage() else {
            return false;
        };
        let get = Reflect::get(&storage, &"getItem".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        get.and_then(|f| f.call1(&storage, &OFFLINE_KEY.into()).ok())
            .and_then(|v| v.as_string())
            .is_some_and(|v| v == "1")
    }

    fn remember_offline(offline: bool) {
        let Some(storage) = local_storage() else {
            return;
        };
        let method = if offline { "setItem" } else { "removeItem" };
        if let Some(f) = Reflect::get(&storage, &method.into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        {
            let _ = f.call2(&storage, &OFFLINE_KEY.into(), &"1".into());
        }
    }

    /// `performance.now()`: milliseconds since the navigation started.
    fn now_ms() -> f64 {
        Reflect::get(&js_sys::global(), &"performance".into())
            .ok()
            .and_then(|p| {
                let now = Reflect::get(&p, &"now".into()).ok()?;
                now.dyn_into::<js_sys::Function>()
                    .ok()?
                    .call0(&p)
                    .ok()?
                    .as_f64()
            })
            .unwrap_or(f64::NAN)
    }

    use wasm_bindgen::JsCast as _;
}
