//! A Leptos 0.8 page showing a synced live query inside `<Suspense>`: rendered on the
//! server by leptos_axum (`ssr`, [`main.rs`](../src/main.rs)), hydrated in the browser
//! (`hydrate`, [`hydrate`]) and live there.
//!
//! Both sides use the same [`App`] and [`livesync::leptos08::use_live_query`]: on the
//! server the resource resolves once from the server's database and is serialized into
//! the page; in the browser the hydrated resource starts from that value and follows the
//! browser's own database (in memory, synced with the same test service over fetch).
//! The page also shows two client-only values, a [`use_live_signal`] count and a
//! [`use_live_local_query`] list: placeholders on the server, live in the browser.

use leptos::prelude::*;
use livesync::leptos08::{
    use_database, use_live_local_query, use_live_query, use_live_signal, use_sync_status,
};
use livesync::{Column, Row, Schema, Table};
use serde::{Deserialize, Serialize};

/// One row of the list.
#[derive(Row, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Todo {
    /// The row id.
    pub id: String,
    /// What to do.
    pub description: String,
}

/// The tables the server and the browser sync.
pub fn schema() -> Schema {
    Schema::new([Table::new("todos", [Column::text("description")])])
}

/// The page: the todos as a live resource read inside `<Suspense>`, and the sync status.
/// Needs a database from `provide_database`.
#[component]
pub fn App() -> impl IntoView {
    let db = use_database().expect("the server and the client provide the database");
    let todos =
        use_live_query(move || db.query::<Todo>("SELECT id, description FROM todos ORDER BY id"));
    let status = use_sync_status();
    // The same count as a plain live signal: client-only, so "…" on the server.
    let db = use_database().expect("provided");
    let count = use_live_signal(move || db.query::<i64>("SELECT count(*) FROM todos"));
    // The descriptions as a local resource: loaded in the browser only (nothing is
    // serialized), so the server renders the placeholder and the hydrated page fills it.
    let db = use_database().expect("provided");
    let local = use_live_local_query(move || {
        db.query::<String>("SELECT description FROM todos ORDER BY id")
    });
    view! {
        <h1>"Todos"</h1>
        <p id="status">
            {move || if status.get().has_synced { "synced" } else { "not synced yet" }}
        </p>
        <p id="count">
            {move || match count.get() {
                Some(Ok(rows)) => format!("{} todos in this device's database", rows.first().copied().unwrap_or(0)),
                _ => "…".to_owned(),
            }}
        </p>
        <p id="local">
            {move || match local.get() {
                Some(Ok(descriptions)) => descriptions.join(", "),
                Some(Err(error)) => error.to_string(),
                None => "loading on this device…".to_owned(),
            }}
        </p>
        <Suspense fallback=|| view! { <p>"Loading todos…"</p> }>
            // Awaited inside <Suspense>: the server waits for the rows (no fallback in
            // the page), and every live update re-runs this block.
            {move || Suspend::new(async move {
                match todos.await {
                    Ok(rows) => view! {
                        <ul id="todos">
                            {rows
                                .into_iter()
                                .map(|todo| view! { <li data-id=todo.id>{todo.description}</li> })
                                .collect_view()}
                        </ul>
                    }
                    .into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The HTML document around [`App`], rendered on the server (hydration scripts
/// included: they load `/pkg/<output_name>.js` and call [`hydrate`]).
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <title>"livesync todos (Leptos 0.8)"</title>
                <HydrationScripts options/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The browser side: where the service is and who we are (`/config.json` of the server).
#[cfg(feature = "hydrate")]
#[derive(Clone, Debug, Deserialize)]
struct Config {
    sync_url: String,
    token: String,
}

/// Called by the hydration script: opens the browser's database, syncs it with the
/// service, then hydrates the server-rendered page with it in context.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Leptos' executor on the browser's microtasks (hydrate_body would set it up too, but
    // the database opens before hydrating).
    let _ = any_spawner::Executor::init_wasm_bindgen();
    leptos::task::spawn_local(async {
        match client_database().await {
            Ok(db) => {
                leptos::mount::hydrate_body(move || {
                    livesync::leptos08::provide_database(db);
                    view! { <App/> }
                });
                // For tests/hydrate.rs: the page is hydrated from here on.
                if let Some(body) = leptos::prelude::document().body() {
                    let _ = body.set_attribute("data-hydrated", "true");
                }
            }
            Err(error) => leptos::logging::error!("livesync demo: {error}"),
        }
    });
}

#[cfg(feature = "hydrate")]
async fn client_database() -> Result<livesync::Database, String> {
    let origin = web_origin().ok_or("the page has no location")?;
    let config: Config = reqwest::get(format!("{origin}/config.json"))
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("could not read the config: {e}"))?
        .json()
        .await
        .map_err(|e| format!("unexpected config: {e}"))?;
    let db = livesync::Database::in_memory(schema())
        .await
        .map_err(|e| format!("could not open the database: {e}"))?;
    db.connect(client::Connector(config), livesync::SyncOptions::default())
        .await
        .map_err(|e| format!("could not connect: {e}"))?;
    db.wait_for_first_sync()
        .await
        .map_err(|e| format!("no first sync: {e}"))?;
    Ok(db)
}

#[cfg(feature = "hydrate")]
fn web_origin() -> Option<String> {
    leptos::prelude::window().location().origin().ok()
}

/// The browser's connector: read-only (this page does not write), credentials from the
/// config.
#[cfg(feature = "hydrate")]
mod client {
    use std::future::Future;

    use livesync::{BackendConnector, Credentials, Database};

    pub(crate) struct Connector(pub(crate) super::Config);

    impl BackendConnector for Connector {
        fn fetch_credentials(&self) -> impl Future<Output = livesync::Result<Credentials>> + Send {
            let credentials = Credentials::new(&self.0.sync_url, &self.0.token);
            async move { Ok(credentials) }
        }

        async fn upload_data(&self, _db: &Database) -> livesync::Result<()> {
            Ok(())
        }
    }
}
