//! The server of the Leptos 0.8 example: the embedded PowerSync-protocol test service,
//! a database synced from it that pages are rendered from (leptos_axum, `ssr`), the
//! browser bundle (`/pkg`, when built) and the browser's sync config.
//!
//! Two devices sync through the service: device A (in this process) writes todos, the
//! server's database receives them, and so does the browser's database after hydration.
//! `POST /device-a/todos` (form fields `id`, `description`) makes device A write one, so
//! the hydrated page can be watched updating.
//!
//! `cargo run -p livesync-demo-leptos08-ssr -- --site DIR` serves the bundle the
//! wasm-bindgen CLI wrote to `DIR` (see `tests/hydrate.rs` for the two build commands);
//! without `--site` the page is server-rendered only. The address is printed as
//! `listening on http://127.0.0.1:PORT/`.

use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Form, Path as UrlPath};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use leptos::prelude::LeptosOptions;
use livesync::leptos08::provide_database;
use livesync::testing::{BucketRule, TestSyncService};
use livesync::{Database, SyncOptions};
use livesync_demo_leptos08_ssr::{schema, shell};

/// Upper bound for every wait before serving (the example never hangs at start-up).
const WAIT: Duration = Duration::from_secs(10);
/// The bundle's name: `/pkg/livesync_leptos08.js` and `/pkg/livesync_leptos08_bg.wasm`.
const OUTPUT_NAME: &str = "livesync_leptos08";
/// Who the browser syncs as.
const BROWSER_USER: &str = "browser";

/// A database connected to `service`, once it holds its first checkpoint.
async fn device(service: &TestSyncService, user: &str) -> livesync::Result<Database> {
    let db = Database::in_memory(schema()).await?;
    let options = SyncOptions::default().crud_upload_throttle(Duration::from_millis(10));
    db.connect(service.connector(user), options).await?;
    tokio::time::timeout(WAIT, db.wait_for_first_sync())
        .await
        .map_err(|_| livesync::Error::connector("no first sync within 10 s"))??;
    Ok(db)
}

/// Waits (bounded) until `db` holds `count` todos.
async fn until_todos(db: &Database, count: i64) -> livesync::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while db
        .query::<i64>("SELECT count(*) FROM todos")
        .fetch_one()
        .await?
        != count
    {
        if tokio::time::Instant::now() > deadline {
            return Err(livesync::Error::connector(
                "device A's todo did not reach the server's database in time",
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// `--site DIR`, if given.
fn site_dir() -> Result<Option<PathBuf>, String> {
    let mut args = std::env::args().skip(1);
    let mut site = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--site" => {
                site = Some(PathBuf::from(
                    args.next().ok_or("--site needs a directory")?,
                ))
            }
            other => return Err(format!("unknown argument {other:?} (--site DIR)")),
        }
    }
    Ok(site)
}

/// A todo for device A to write.
#[derive(serde::Deserialize)]
struct NewTodo {
    id: String,
    description: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let site = site_dir()?;
    // Leptos' executor (effects, resources) on this tokio runtime.
    let _ = any_spawner::Executor::init_tokio();
    let service = TestSyncService::builder()
        .rule(BucketRule::global("todos", ["todos"]))
        .start()
        .await?;
    service.upsert_row("todos", "t1", serde_json::json!({"description": "milk"}));
    service.upsert_row("todos", "t2", serde_json::json!({"description": "bread"}));
    service.commit();

    // The database the pages are rendered from, and another device writing to it.
    let db = device(&service, "server").await?;
    let device_a = device(&service, "device-a").await?;
    device_a
        .execute(
            "INSERT INTO todos(id, description) VALUES ('t3', 'coffee (written on device A)')",
            (),
        )
        .await?;
    until_todos(&db, 3).await?;

    let options = LeptosOptions::builder().output_name(OUTPUT_NAME).build();
    // Each request renders under its own owner; the database goes into its context.
    // Async mode: the page is sent once every resource has resolved, so it always holds
    // the rows (out-of-order streaming may send the <Suspense> fallback first and the
    // rows in a later chunk, whenever the snapshot is not ready at the first poll).
    let render = leptos_axum::render_app_async_with_context(
        move || provide_database(db.clone()),
        move || shell(options.clone()),
    );
    let config =
        serde_json::json!({"sync_url": service.url(), "token": service.token(BROWSER_USER)})
            .to_string();
    let write = move |Form(todo): Form<NewTodo>| {
        let device_a = device_a.clone();
        async move {
            match device_a
                .execute(
                    "INSERT INTO todos(id, description) VALUES (?1, ?2)",
                    [todo.id, todo.description],
                )
                .await
            {
                Ok(_) => StatusCode::NO_CONTENT.into_response(),
                Err(error) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
                }
            }
        }
    };
    let app = axum::Router::new()
        .route("/", get(render))
        .route(
            "/config.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], config) }),
        )
        .route("/device-a/todos", post(write))
        .route(
            "/pkg/{*file}",
            get(move |UrlPath(file): UrlPath<String>| serve_file(site.clone(), file)),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    // The tests read this line to find the page.
    println!("listening on http://{}/", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// A file of the bundle, if `--site` was given and the name stays inside it.
async fn serve_file(site: Option<PathBuf>, file: String) -> axum::response::Response {
    let inside = file
        .split('/')
        .all(|part| !part.is_empty() && !part.starts_with('.') && !part.contains('\\'));
    let Some(site) = site.filter(|_| inside) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let content_type = match file.rsplit('.').next() {
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    };
    match tokio::fs::read(site.join(&file)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
